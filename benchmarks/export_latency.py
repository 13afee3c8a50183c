"""On-device formats on this CPU: LiteRT (fp32, fp16, dynamic, int8), ONNX Runtime, Keras; and
kimm's own LiteRT export of the same model beside ours.

    python benchmarks/export_latency.py [--models MobileViT_XXS MobileViT_S MobileViTV2_100]
        [--threads 2] [--repeats 20] [--rounds 3] [--size 256] [--runtimes ...]

Batch 1, `--size` square, random weights (speed does not depend on their values; int8 is
calibrated on the same 16 random images for every file). Every runtime gets the same input and
thread count (LiteRT runs on XNNPACK); the runs are interleaved over several rounds, each
block of runs after three untimed ones, and the medians printed, with the speed-up over Keras
and, for the files that kimm exports too, the ratio of kimm's latency to ours.

kimm (`pip install --no-deps kimm`; its rows are skipped when it is not installed, or for a
model it does not have) exports with `kimm.export.export_tflite`: `"float32"`, and `"int8"`,
which quantizes every op, its input and output included (int8 tensors); its input is quantized
before the timing starts. Ours is compared at float32 with float32 (`kimm fp32` against
`fp32`) and at int8 with both of ours (`int8`, float islands kept; `int8_full`, every op, as
kimm's). The "ops" column says whether the file holds TFLite builtin ops only.
"""

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

OURS = ("keras", "fp32", "float16", "dynamic", "int8", "int8_full", "onnx")
KIMM = ("kimm_fp32", "kimm_int8")
KIMM_DTYPES = {"kimm_fp32": "float32", "kimm_int8": "int8"}  # its `export_dtype`
# kimm's file -> ours that it is compared with.
KIMM_COUNTERPARTS = {"kimm_fp32": ("fp32",), "kimm_int8": ("int8", "int8_full")}
KERAS = "Keras (TensorFlow, graph)"


def runtime_name(runtime):
    if runtime == "keras":
        return KERAS
    if runtime == "onnx":
        return "ONNX Runtime fp32"
    if runtime.startswith("kimm_"):
        return f"kimm LiteRT {runtime[5:]} (XNNPACK)"
    return f"LiteRT {runtime} (XNNPACK)"


def litert_runner(path, threads):
    """A function running the file on a float32 batch, quantizing it first for an int8 input."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=threads)
    interpreter.allocate_tensors()
    details = interpreter.get_input_details()[0]
    scale, zero_point = details["quantization"]
    quantized = {}

    def feed(x):
        if details["dtype"] == np.float32:
            return x
        key = id(x)
        if key not in quantized:  # quantized once, outside the timed runs
            info = np.iinfo(details["dtype"])
            values = np.round(x / scale + zero_point)
            quantized[key] = np.clip(values, info.min, info.max).astype(details["dtype"])
        return quantized[key]

    def run(x):
        interpreter.set_tensor(details["index"], feed(x))
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])

    return run


def interleaved_medians(runners, image, rounds, repeats):
    """`{name: median latency in ms}` of `{name: run}`, blocks of runs interleaved over rounds.

    Each block starts with three untimed runs: the previous runner's threads still spin
    after its last run and would take this one's cores.
    """
    times = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            for _ in range(3):
                run(image)
            for _ in range(repeats):
                start = time.perf_counter()
                run(image)
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(seconds) * 1000 for name, seconds in times.items()}


def builtin_ops_only(path):
    from keras_mobilevit import export

    try:
        export._litert_ops(path)
    except ValueError as e:
        return str(e).rpartition(": ")[2]
    return "builtin"


def kimm_model(variant, size):
    """kimm's model of that name, or `None` when kimm is not installed or lacks it."""
    try:
        import kimm
    except ImportError:
        return None
    build = getattr(kimm.models, variant.replace("_", "").replace("V2", "V2W"), None)
    return None if build is None else build(weights=None, input_shape=(size, size, 3))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["MobileViT_XXS", "MobileViT_S", "MobileViTV2_100"]
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=256, help="input height and width")
    parser.add_argument(
        "--runtimes", nargs="+", default=[*OURS, *KIMM], choices=[*OURS, *KIMM],
        help="ours (keras, LiteRT quantizations, onnx) and kimm's LiteRT files",
    )  # fmt: skip
    args = parser.parse_args(argv)

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    import keras_mobilevit
    from keras_mobilevit import export

    size = args.size
    print(
        f"batch 1, {size}x{size}, {args.threads} threads, {args.rounds} rounds x {args.repeats} "
        f"runs, medians; python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    print(
        "\n| model | runtime | file (MiB) | ops | latency (ms) | speed-up vs Keras "
        "| vs kimm (its latency / ours) |"
    )
    print("|---|---|---|---|---|---|---|")
    image = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype(np.float32)
    images = [
        np.random.default_rng(i).uniform(0, 255, (1, size, size, 3)).astype(np.float32)
        for i in range(16)
    ]
    calibration = lambda: iter(images)  # noqa: E731
    with tempfile.TemporaryDirectory() as directory:
        for variant in args.models:
            model = getattr(keras_mobilevit, variant)(weights=None, input_shape=(size, size, 3))
            runners, sizes, ops, skipped = {}, {}, {}, {}
            if "keras" in args.runtimes:
                predict = tf.function(lambda x, m=model: m(x, training=False))
                runners["keras"] = lambda x, f=predict: f(x)
            for runtime in ("fp32", "float16", "dynamic", "int8", "int8_full"):
                if runtime not in args.runtimes:
                    continue
                quantization = None if runtime == "fp32" else runtime
                path = os.path.join(directory, f"{variant}-{runtime}.tflite")
                integer = runtime in ("int8", "int8_full")
                export.export_litert(
                    model, path, quantization=quantization,
                    representative_dataset=calibration if integer else None,
                    verify=not integer,
                )  # fmt: skip
                runners[runtime] = litert_runner(path, args.threads)
                sizes[runtime], ops[runtime] = os.path.getsize(path), builtin_ops_only(path)
            if "onnx" in args.runtimes:
                import onnxruntime

                path = export.export_onnx(model, os.path.join(directory, f"{variant}.onnx"))
                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = args.threads
                session = onnxruntime.InferenceSession(
                    path, options, providers=["CPUExecutionProvider"]
                )
                name = session.get_inputs()[0].name
                runners["onnx"] = lambda x, s=session, n=name: s.run(None, {n: x})
                sizes["onnx"] = os.path.getsize(path)
            kimm_runtimes = [runtime for runtime in KIMM if runtime in args.runtimes]
            peer = kimm_model(variant, size) if kimm_runtimes else None
            for runtime in kimm_runtimes:
                if peer is None:
                    skipped[runtime] = "kimm not installed, or without this model"
                    continue
                import kimm

                path = os.path.join(directory, f"{variant}-{runtime}.tflite")
                try:
                    # Its SavedModel step prints every captured variable to stdout.
                    with contextlib.redirect_stdout(io.StringIO()):
                        kimm.export.export_tflite(
                            peer, size, path, KIMM_DTYPES[runtime],
                            representative_dataset=(lambda: ([x] for x in images))
                            if runtime == "kimm_int8" else None,
                        )  # fmt: skip
                except Exception as e:  # noqa: BLE001 (a peer's failure is reported, not raised)
                    skipped[runtime] = f"export failed: {type(e).__name__}: {e}"[:100]
                    continue
                runners[runtime] = litert_runner(path, args.threads)
                sizes[runtime], ops[runtime] = os.path.getsize(path), builtin_ops_only(path)

            ms = interleaved_medians(runners, image, args.rounds, args.repeats)
            for runtime in [r for r in args.runtimes if r in runners or r in skipped]:
                name = runtime_name(runtime)
                if runtime in skipped:
                    print(f"| {variant} | {name} | skipped: {skipped[runtime]} | | | | |")
                    continue
                file_size = f"{sizes[runtime] / 2**20:.2f}" if runtime in sizes else ""
                speed_up = f"{ms['keras'] / ms[runtime]:.2f}x" if "keras" in ms else ""
                against = [
                    f"{ms[kimm_runtime] / ms[runtime]:.2f}x"
                    for kimm_runtime, ours in KIMM_COUNTERPARTS.items()
                    if runtime in ours and kimm_runtime in ms
                ]
                print(
                    f"| {variant} | {name} | {file_size} | {ops.get(runtime, '')} | "
                    f"{ms[runtime]:.1f} | {speed_up} | {'; '.join(against)} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
