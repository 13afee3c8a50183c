"""Where the time goes: TensorFlow's per-op CPU time for one keras-mobilevit model.

    python benchmarks/profile_ops.py [--model MobileViT_S] [--batch 16] [--size 256]
        [--threads 2] [--runs 3] [--optimize {none,float32,bfloat16}] [--top 25]
    python benchmarks/profile_ops.py --train [--model MobileViT_XS] [--batch 32]
        [--precision {float32,mixed_bfloat16}] ...

Runs the model's graph with TensorFlow's step statistics (FULL_TRACE) and prints the time per
op type, summed over the graph and averaged over runs, and the slowest individual ops. The
weights are frozen into the graph (as a deployed graph has them), so the times are those of
the kernels after Grappler's rewrites (oneDNN fusions included), without Keras' overhead.
`--optimize` profiles `keras_mobilevit.optimize_for_inference(model, compute_dtype)` instead
of the model as built.

`--train` profiles the recipe's training step instead (its classifier for 102 classes,
`compile_classifier`, `train_on_batch` on one batch in memory) with TensorFlow's profiler,
and prints the op time by op type, forward and backward (the gradient's ops), and by the kind
of layer the op belongs to (its name: `_bn`, `_conv`, `_attn`...). XLA-compiled clusters (the
SiLU kernel) are one line, forward and backward together.
"""

import argparse
import collections
import glob
import os
import re
import tempfile
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
    parser.add_argument("--train", action="store_true", help="profile a training step")
    parser.add_argument(
        "--precision", choices=["float32", "mixed_bfloat16"], default="float32",
        help="Keras' dtype policy for --train",
    )  # fmt: skip
    args = parser.parse_args()
    if args.train:
        return profile_training(args)

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


# The layer a training op belongs to, by the name Keras gives its ops ("<layer>_1/...");
# SiLU's gradient ops carry no layer name.
# XLA-compiled clusters (the TensorFlow SiLU kernel for training) run under this event, in
# the executor's threads, named by XLA's fusions rather than by the layer.
XLA_EXECUTABLE = "CpuExecutable::ExecuteAsyncOnStream"
LAYER_KIND = re.compile(
    r"_(bn|act|conv|pad|norm\d?|attn_qkv|attn_proj|attn|mlp_fc1|mlp_act|mlp_fc2|predictions)_\d+/"
)


def profile_training(args):
    import keras
    import numpy as np
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    from keras_mobilevit import training

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    keras.config.set_dtype_policy(args.precision)
    classes = 102
    model = training.build_classifier(args.model, None, classes, args.size)
    training.classifier.compile_classifier(model, 1e-4, 100, 0.1, classes)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (args.batch, args.size, args.size, 3)).astype(np.float32)
    labels = np.eye(classes, dtype=np.float32)[rng.integers(0, classes, args.batch)]
    for _ in range(2):
        model.train_on_batch(images, labels)  # tracing, first allocations
    start = time.perf_counter()
    for _ in range(args.runs):
        model.train_on_batch(images, labels)
    wall = (time.perf_counter() - start) / args.runs
    with tempfile.TemporaryDirectory() as directory:
        tf.profiler.experimental.start(directory)
        for _ in range(args.runs):
            model.train_on_batch(images, labels)
        tf.profiler.experimental.stop()
        (path,) = glob.glob(os.path.join(directory, "**", "*.xplane.pb"), recursive=True)
        space = xplane_pb2.XSpace()
        with open(path, "rb") as f:
            space.ParseFromString(f.read())
    by_type, by_kind = collections.Counter(), collections.Counter()
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):  # the executor's threads run the ops
                continue
            for event in line.events:
                micros = event.duration_ps / 1e6 / args.runs
                if names[event.metadata_id] == XLA_EXECUTABLE:
                    by_type["XLA clusters", "both"] += micros
                    by_kind["XLA clusters (act)", "both"] += micros
                    continue
                node, _, op = names[event.metadata_id].rpartition(":")
                if not node or "::" in names[event.metadata_id]:
                    continue
                phase = "backward" if node.startswith("gradient_tape/") else "forward"
                by_type[op, phase] += micros
                match = LAYER_KIND.search(node)
                kind = match.group(1) if match else ("AdamW" if "AdamW" in node else "other")
                by_kind[kind, phase] += micros
    total = sum(by_type.values())
    print(
        f"{args.model} training step, {args.precision}, batch {args.batch}, "
        f"{args.size}x{args.size}, {args.threads} threads: {wall * 1000:.0f} ms per step "
        f"(unprofiled), {total / 1000:.0f} ms of op time (summed over threads)\n"
    )
    print("| op | pass | ms per step | share |\n|---|---|---|---|")
    for (op, phase), micros in by_type.most_common(args.top):
        print(f"| {op} | {phase} | {micros / 1000:.1f} | {100 * micros / total:.1f}% |")
    print("\n| layer kind | pass | ms per step | share |\n|---|---|---|---|")
    for (kind, phase), micros in by_kind.most_common(args.top):
        print(f"| {kind} | {phase} | {micros / 1000:.1f} | {100 * micros / total:.1f}% |")


if __name__ == "__main__":
    main()
