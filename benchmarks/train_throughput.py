"""Training throughput of the fine-tuning recipe on this machine: images per second.

    python benchmarks/train_throughput.py [--model MobileViT_XS] [--size 256] [--batch 32]
        [--steps 10] [--warmup 2] [--precisions float32 mixed_bfloat16] [--data pipeline]

Each precision trains the recipe's model (the builder's classifier, 102 classes, random
weights: speed does not depend on their values) with the recipe's optimizer and loss
(`keras_mobilevit.training`), for `--warmup` steps that are not timed (tracing, the first
allocations), then `--steps` timed steps; the median step time is printed with the
throughput it gives. `--data pipeline` (the default) feeds the recipe's own `tf.data`
pipeline on synthetic JPEGs (decode, random resized crop, flip, colour jitter on the same
CPU cores as the training), `--data tensors` one fixed batch already in memory, which
times the training step alone.
"""

import argparse
import io
import os
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

CLASSES = 102  # Flowers-102


class StepTimer:
    """Wall time between the ends of consecutive training steps."""

    def __init__(self):
        self.times = []
        self.last = None

    def callback(self):
        import keras

        timer = self

        class Callback(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                now = time.perf_counter()
                if timer.last is not None:
                    timer.times.append(now - timer.last)
                timer.last = now

        return Callback()


def synthetic_jpegs(count, size, seed=0):
    """`count` random-noise JPEGs of about `size` pixels, a little larger than the crop."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        height, width = rng.integers(size, int(size * 1.4) + 1, size=2)
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
        images.append(buffer.getvalue())
    return images


def dataset(kind, size, batch, seed=0):
    import tensorflow as tf

    from keras_mobilevit import training

    if kind == "tensors":
        rng = np.random.default_rng(seed)
        images = rng.uniform(0, 255, (batch, size, size, 3)).astype(np.float32)
        labels = np.eye(CLASSES, dtype=np.float32)[rng.integers(0, CLASSES, batch)]
        return tf.data.Dataset.from_tensors((images, labels)).repeat()
    jpegs = synthetic_jpegs(2 * batch, size, seed)
    labels = np.arange(len(jpegs)) % CLASSES
    examples = tf.data.Dataset.from_tensor_slices((jpegs, labels.astype(np.int64)))
    return training.train_pipeline(
        examples, CLASSES, size, batch, seed=seed, shuffle_buffer=len(jpegs), repeat=True
    )


def measure(model_name, precision, size, batch, steps, warmup, data):
    """Median seconds per training step."""
    import keras

    from keras_mobilevit import training

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        keras.utils.set_random_seed(0)
        model = training.build_classifier(model_name, None, CLASSES, size)
        training.classifier.compile_classifier(model, 1e-4, warmup + steps, 0.1, CLASSES)
        timer = StepTimer()
        model.fit(
            dataset(data, size, batch),
            epochs=1,
            steps_per_epoch=warmup + steps,
            callbacks=[timer.callback()],
            shuffle=False,  # the pipeline shuffles
            verbose=0,
        )
    finally:
        keras.config.set_dtype_policy(previous)
    timed = timer.times[warmup - 1 :] if warmup else timer.times
    return statistics.median(timed), len(timed)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="MobileViT_XS")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (at least 1)")
    parser.add_argument(
        "--precisions", nargs="+", default=["float32", "mixed_bfloat16"],
        choices=["float32", "mixed_bfloat16", "mixed_float16"],
    )  # fmt: skip
    parser.add_argument("--data", choices=["pipeline", "tensors"], default="pipeline")
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1")

    import keras
    import tensorflow as tf

    print(
        f"{args.model}, {args.size}x{args.size}, batch {args.batch}, {CLASSES} classes, "
        f"data: {args.data}; {args.warmup} untimed + {args.steps} timed steps, median; "
        f"Keras {keras.__version__} on {keras.backend.backend()} (TensorFlow {tf.__version__}), "
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    print("\n| model | precision | batch | size | step (s) | images/s |")
    print("|---|---|---|---|---|---|")
    results = {}
    for precision in args.precisions:
        step, _ = measure(
            args.model, precision, args.size, args.batch, args.steps, args.warmup, args.data
        )
        results[precision] = args.batch / step
        print(
            f"| {args.model} | {precision} | {args.batch} | {args.size} | {step:.3f} | "
            f"{args.batch / step:.1f} |",
            flush=True,
        )
    return results


if __name__ == "__main__":
    main()
