"""Where the time goes: TensorFlow's per-op CPU time for one keras-mobilevit model.

    python benchmarks/profile_ops.py [--model MobileViT_S] [--batch 16] [--size 256]
        [--threads 2] [--runs 3] [--optimize {none,float32,bfloat16}] [--top 25]

Runs the model's graph with TensorFlow's step statistics (FULL_TRACE) and prints the time per
op type, summed over the graph and averaged over runs, and the slowest individual ops. The
weights are frozen into the graph (as a deployed graph has them), so the times are those of
the kernels after Grappler's rewrites (oneDNN fusions included), without Keras' overhead.
`--optimize` profiles `keras_mobilevit.optimize_for_inference(model, compute_dtype)` instead
of the model as built.
"""

import argparse
import collections
import os
import time

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="MobileViT_S")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--optimize", choices=["none", "float32", "bfloat16"], default="none")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    import keras_mobilevit

    # The Session's thread settings below do not reach oneDNN's kernels, which
    # take the process-wide ones: without these, --threads 1 still ran on every core.
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    model = getattr(keras_mobilevit, args.model)(
        weights=None, input_shape=(args.size, args.size, 3)
    )
    # Perturbed weights and statistics: a fresh model's folded biases are all zero, and
    # Grappler drops a zero bias, which changes which ops it fuses.
    rng = np.random.default_rng(0)
    for weight in model.weights:
        value = weight.numpy()
        if "variance" in weight.path:
            value = rng.uniform(0.5, 2.0, value.shape)
        else:
            value = value + rng.normal(0, 0.1, value.shape)
        weight.assign(value.astype("float32"))
    if args.optimize != "none":
        model = keras_mobilevit.optimize_for_inference(model, compute_dtype=args.optimize)
    spec = tf.TensorSpec((args.batch, args.size, args.size, 3), tf.float32)
    function = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    frozen = convert_variables_to_constants_v2(function)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(frozen.graph.as_graph_def(), name="")
    feed = {frozen.inputs[0].name: np.random.default_rng(0).random(spec.shape, np.float32)}
    fetch = frozen.outputs[0].name
    config = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=args.threads, inter_op_parallelism_threads=args.threads
    )
    by_type, by_node = collections.Counter(), collections.Counter()
    with tf.compat.v1.Session(graph=graph, config=config) as session:
        for _ in range(3):
            session.run(fetch, feed)  # warm-up
        start = time.perf_counter()
        for _ in range(args.runs):
            session.run(fetch, feed)
        wall = (time.perf_counter() - start) / args.runs
        options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
        for _ in range(args.runs):
            metadata = tf.compat.v1.RunMetadata()
            session.run(fetch, feed, options=options, run_metadata=metadata)
            for device in metadata.step_stats.dev_stats:
                for node in device.node_stats:
                    label = node.timeline_label
                    op = label.split("=")[-1].split("(")[0].strip() if "=" in label else "?"
                    micros = node.op_end_rel_micros - node.op_start_rel_micros
                    by_type[op] += micros
                    by_node[node.node_name] += micros
    total = sum(by_type.values())
    print(
        f"{args.model}, optimize={args.optimize}, batch {args.batch}, {args.size}x{args.size}, "
        f"{args.threads} threads: {wall * 1000:.1f} ms per batch (untraced), "
        f"{total / args.runs / 1000:.1f} ms of op time\n"
    )
    print("| op | ms per batch | share |\n|---|---|---|")
    for op, micros in by_type.most_common(args.top):
        if micros:
            print(f"| {op} | {micros / args.runs / 1000:.2f} | {100 * micros / total:.1f}% |")
    print("\n| slowest ops | ms per batch |\n|---|---|")
    for name, micros in by_node.most_common(args.top):
        print(f"| {name} | {micros / args.runs / 1000:.2f} |")


if __name__ == "__main__":
    main()
