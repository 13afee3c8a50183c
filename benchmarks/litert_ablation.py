"""Where a LiteRT float32 file's time goes: the model exported again with one part replaced by
a cheaper stand-in of the same shape, each file timed against the true one.

    python benchmarks/litert_ablation.py [--model MobileViT_XS] [--size 256] [--threads 2]
        [--rounds 10] [--repeats 40] [--parts silu layer_norm attention transposes]

The stand-ins compute wrong numbers on purpose; what a file saves against the true one is
what that part costs. Parts:

- `silu`: every SiLU becomes a ReLU, which the converter fuses into the operation before it,
  so SiLU's two passes (LOGISTIC, MUL) go;
- `layer_norm`: every LayerNorm becomes the identity;
- `attention`: the attention core (scores, softmax, weighted sum and the heads' transposes)
  becomes a slice of the values out of the fused query/key/value tensor;
- `transposes`: `Unfold`, `Fold` and the attention heads by reshapes alone, no TRANSPOSE.

Batch 1, random weights, XNNPACK with `--threads` threads. Each file runs a few untimed runs
before each block of `--repeats` (XNNPACK's threads spin between runs, and would otherwise
take the next file's cores), blocks interleaved over `--rounds` rounds, medians.
"""

import argparse
import contextlib
import os
import sys
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from export_latency import interleaved_medians, litert_runner  # noqa: E402

PARTS = ("silu", "layer_norm", "attention", "transposes")


def stand_ins(part):
    """`{layer class: call}` replacing that part, for the MobileViT (v1) layers."""
    from keras import ops

    from keras_mobilevit import layers
    from keras_mobilevit.maths import patch_grid

    def relu(self, inputs, training=None):
        return ops.relu(inputs)

    def identity(self, inputs):
        return inputs

    def values_only(self, qkv):
        return qkv[..., 2 * (qkv.shape[-1] // 3) :]

    def unfold_by_reshape(self, x):
        _, height, width, channels = ops.shape(x)
        grid_h, grid_w = patch_grid(height, width, self.patch_size)
        return ops.reshape(x, (-1, grid_h * grid_w, channels))

    def fold_by_reshape(self, inputs):
        x, reference = inputs
        _, height, width, _ = ops.shape(reference)
        return ops.reshape(x, (-1, height, width, ops.shape(x)[-1]))

    def heads_by_reshape(self, qkv):
        dim = qkv.shape[-1] // 3
        length = ops.shape(qkv)[1]
        qkv = ops.reshape(qkv, (3 * self.num_heads, -1, length, dim // self.num_heads))
        query, key, value = ops.split(qkv, 3, axis=0)
        query = query * self.query_scale(3 * dim)
        scores = ops.softmax(ops.matmul(query, ops.transpose(key, (0, 1, 3, 2))), axis=-1)
        return ops.reshape(ops.matmul(scores, value), (-1, length, dim))

    return {
        "silu": {layers.FastActivation: relu},
        "layer_norm": {layers.FastLayerNormalization: identity},
        "attention": {layers.DotProductAttention: values_only},
        "transposes": {
            layers.Unfold: unfold_by_reshape,
            layers.Fold: fold_by_reshape,
            layers.DotProductAttention: heads_by_reshape,
        },
    }[part]


@contextlib.contextmanager
def replaced(calls):
    saved = {cls: cls.call for cls in calls}
    try:
        for cls, call in calls.items():
            cls.call = call
        yield
    finally:
        for cls, call in saved.items():
            cls.call = call


def export_file(variant, size, part, directory):
    """The model's float32 LiteRT file, with `part` replaced (`None`: the true model)."""
    import keras_mobilevit
    from keras_mobilevit import export

    path = os.path.join(directory, f"{variant}-{part or 'true'}.tflite")
    with replaced(stand_ins(part) if part else {}):
        model = getattr(keras_mobilevit, variant)(weights=None, input_shape=(size, size, 3))
        export.export_litert(model, path, verify=part is None)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="MobileViT_XS")
    parser.add_argument("--size", type=int, default=256, help="input height and width")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    args = parser.parse_args(argv)
    if not args.model.startswith("MobileViT_"):
        parser.error("the stand-ins are MobileViT (v1) layers: pick MobileViT_XXS, _XS or _S")
    if args.size % 32:
        parser.error("--size must be a multiple of 32, so that the reshapes keep the shapes")

    print(
        f"{args.model}, LiteRT float32, batch 1, {args.size}x{args.size}, {args.threads} "
        f"XNNPACK threads, {args.rounds} rounds x {args.repeats} runs, medians; "
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    image = np.random.default_rng(0).uniform(0, 255, (1, args.size, args.size, 3))
    image = image.astype(np.float32)
    with tempfile.TemporaryDirectory() as directory:
        runners = {
            part: litert_runner(export_file(args.model, args.size, part, directory), args.threads)
            for part in [None, *args.parts]
        }
        ms = interleaved_medians(runners, image, args.rounds, args.repeats)
    print("\n| stand-in for | latency (ms) | the part costs (ms) | share of the true file |")
    print("|---|---|---|---|")
    print(f"| nothing (the true file) | {ms[None]:.2f} | | |")
    for part in args.parts:
        saved = ms[None] - ms[part]
        print(f"| {part} | {ms[part]:.2f} | {saved:.2f} | {saved / ms[None]:.0%} |", flush=True)
    return ms


if __name__ == "__main__":
    main()
