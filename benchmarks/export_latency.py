"""On-device formats on this CPU: LiteRT (fp32, fp16, dynamic, int8), ONNX Runtime, Keras.

    python benchmarks/export_latency.py [--models MobileViT_XXS MobileViT_S MobileViTV2_100]
        [--threads 2] [--repeats 20] [--rounds 3]

Batch 1, 256x256, random weights (speed does not depend on their values; int8 is calibrated
on random images). Every runtime gets the same input and thread count; the runs are
interleaved over several rounds and the medians printed, with the speed-up over Keras.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["MobileViT_XXS", "MobileViT_S", "MobileViTV2_100"]
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import onnxruntime
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from ai_edge_litert.interpreter import Interpreter

    import keras_mobilevit
    from keras_mobilevit import export

    print(
        f"batch 1, 256x256, {args.threads} threads, {args.rounds} rounds x {args.repeats} runs, "
        f"medians; python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    print("\n| model | runtime | file (MiB) | latency (ms) | speed-up vs Keras |")
    print("|---|---|---|---|---|")
    image = np.random.default_rng(0).uniform(0, 255, (1, 256, 256, 3)).astype(np.float32)
    calibration = lambda: (  # noqa: E731
        np.random.default_rng(i).uniform(0, 255, (1, 256, 256, 3)).astype(np.float32)
        for i in range(16)
    )
    with tempfile.TemporaryDirectory() as directory:
        for variant in args.models:
            model = getattr(keras_mobilevit, variant)(weights=None, input_shape=(256, 256, 3))
            runners, sizes = {"Keras (TensorFlow, graph)": None}, {}
            predict = tf.function(lambda x, m=model: m(x, training=False))
            runners["Keras (TensorFlow, graph)"] = lambda x, f=predict: f(x)
            for quantization in (None, "float16", "dynamic", "int8", "int8_full"):
                path = os.path.join(directory, f"{variant}-{quantization}.tflite")
                integer = quantization in ("int8", "int8_full")
                export.export_litert(
                    model, path, quantization=quantization,
                    representative_dataset=calibration if integer else None,
                    verify=not integer,
                )  # fmt: skip
                interpreter = Interpreter(model_path=path, num_threads=args.threads)
                interpreter.allocate_tensors()
                name = f"LiteRT {quantization or 'fp32'} (XNNPACK)"
                sizes[name] = os.path.getsize(path)

                def run(x, i=interpreter):
                    i.set_tensor(i.get_input_details()[0]["index"], x)
                    i.invoke()
                    return i.get_tensor(i.get_output_details()[0]["index"])

                runners[name] = run
            onnx_path = export.export_onnx(model, os.path.join(directory, f"{variant}.onnx"))
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = args.threads
            session = onnxruntime.InferenceSession(
                onnx_path, options, providers=["CPUExecutionProvider"]
            )
            name = session.get_inputs()[0].name
            runners["ONNX Runtime fp32"] = lambda x, s=session, n=name: s.run(None, {n: x})
            sizes["ONNX Runtime fp32"] = os.path.getsize(onnx_path)

            times = {name: [] for name in runners}
            for run in runners.values():
                for _ in range(3):
                    run(image)  # warm-up
            for _ in range(args.rounds):
                for name, run in runners.items():
                    for _ in range(args.repeats):
                        start = time.perf_counter()
                        run(image)
                        times[name].append(time.perf_counter() - start)
            keras_ms = statistics.median(times["Keras (TensorFlow, graph)"]) * 1000
            for name in runners:
                ms = statistics.median(times[name]) * 1000
                size = f"{sizes[name] / 2**20:.2f}" if name in sizes else ""
                print(f"| {variant} | {name} | {size} | {ms:.1f} | {keras_ms / ms:.2f}x |")


if __name__ == "__main__":
    main()
