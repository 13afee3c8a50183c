"""Fine-tuning throughput against peers: images per second of a training step, and peak memory.

    python benchmarks/train_peers.py [--models MobileViT_XS MobileViT_S] [--batch 32] [--size 256]
        [--steps 5] [--warmup 2] [--rounds 3] [--threads 2] [--peers ...]
        [--precision float32] [--system-allocator]
    python benchmarks/train_peers.py --paired VARIANT... | --ablate-kernels  [same options]

Every peer trains the same classifier (102 classes, random weights: speed does not depend on
their values) on one fixed batch already in memory, so the table times the training step alone
(`benchmarks/train_throughput.py --data pipeline` adds the recipe's input pipeline):

- keras-mobilevit: the recipe's model and `compile_classifier` (AdamW with its schedule,
  label-smoothed cross-entropy, its metrics) under `model.fit`, on each Keras backend; with
  `jit_compile` as Keras resolves "auto" (XLA on JAX and on TensorFlow with a GPU), or forced
  on or off (the peers' names say so);
- kimm: its MobileViT (`kimm.models.MobileViTXS(classes=102)`), compiled by the same
  `compile_classifier`, under `model.fit`;
- timm: `timm.create_model("mobilevit_xs", num_classes=102)` in a plain PyTorch loop (AdamW,
  the same weight decay, not on biases and norms, the same warm-up and cosine schedule,
  `CrossEntropyLoss(label_smoothing=0.1)`), eager and under `torch.compile`.

Each peer runs in its own process, peers interleaved over `--rounds` rounds, with the same
thread count and glibc's allocator told to keep freed memory, as in
`benchmarks/build_and_predict.py` (`--system-allocator` leaves the defaults). A process
trains `--warmup` untimed steps (tracing, compilation, first allocations), then `--steps`
timed ones; the table gives the median step over all rounds, the throughput it makes, the
ratio to keras-mobilevit on TensorFlow for the same model, the fastest step (the least
disturbed by other work on a shared machine), and the median peak RSS.
Peers not installed are reported as skipped: kimm (`pip install --no-deps kimm`), timm.

`--paired VARIANT...` measures instead what keras-mobilevit's own choices gain, on
TensorFlow: one process per variant trains the model as shipped and the model with VARIANT (a
kernel of `keras_mobilevit.kernels` turned off, named by its op; `all` of them; or the
`mixed_bfloat16` policy) in turns, step by step, and the table gives the median ratio of
their paired step times, which a busy machine disturbs far less than separate processes.
`--ablate-kernels` is `--paired` with every TensorFlow kernel in turn, and `all`.
"""

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys

# The same process settings as the inference benchmark beside this file.
from build_and_predict import peer_environment, worker_result

CLASSES = 102  # Flowers-102
LEARNING_RATE = 2.5e-4  # the recipe's, with pretrained weights at batch 32
REFERENCE = "keras-mobilevit (tensorflow)"
# name: (Keras backend or None, library, options)
PEERS = {
    REFERENCE: ("tensorflow", "keras_mobilevit", {}),
    "keras-mobilevit (tensorflow, jit_compile)": (
        "tensorflow", "keras_mobilevit", {"jit_compile": True}
    ),
    "keras-mobilevit (tensorflow, kernels off)": (
        "tensorflow", "keras_mobilevit", {"kernels_off": ["all"]}
    ),
    "keras-mobilevit (tensorflow, mixed_bfloat16)": (
        "tensorflow", "keras_mobilevit", {"precision": "mixed_bfloat16"}
    ),
    "keras-mobilevit (jax)": ("jax", "keras_mobilevit", {}),
    "keras-mobilevit (jax, no jit_compile)": ("jax", "keras_mobilevit", {"jit_compile": False}),
    "keras-mobilevit (torch)": ("torch", "keras_mobilevit", {}),
    "kimm (tensorflow)": ("tensorflow", "kimm", {}),
    "kimm (tensorflow, jit_compile)": ("tensorflow", "kimm", {"jit_compile": True}),
    "timm (pytorch)": (None, "timm", {}),
    "timm (pytorch, torch.compile)": (None, "timm", {"compile": True}),
}  # fmt: skip
# XLA on TensorFlow's CPU trains 5x slower (docs/training.md): measured on request only.
DEFAULT_PEERS = [
    REFERENCE,
    "keras-mobilevit (jax)",
    "keras-mobilevit (torch)",
    "kimm (tensorflow)",
    "timm (pytorch)",
    "timm (pytorch, torch.compile)",
]


def batch_of(size, batch, seed=0):
    """The batch every peer trains on: pixels in [0, 255] (NHWC) and integer labels."""
    import numpy as np

    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (batch, size, size, 3)).astype(np.float32)
    return images, rng.integers(0, CLASSES, batch)


def set_variant(variant, precision):
    """Sets the kernels and dtype policy that models built next trace with.

    `variant`: `{"kernels_off": [op, ...]}` ("all" for the switch) and `{"precision": ...}`.
    """
    import keras

    from keras_mobilevit import kernels

    table = kernels._backend_module(keras.backend.backend()).get("KERNELS", {})
    if not hasattr(set_variant, "table"):
        set_variant.table = dict(table)  # the kernels as shipped
    table.clear()
    table.update(set_variant.table)
    kernels.set_fast_paths("all" not in variant.get("kernels_off", []))
    for op in variant.get("kernels_off", []):
        table.pop(op, None)
    keras.config.set_dtype_policy(variant.get("precision", precision))


def recipe_model(job, steps):
    """The recipe's classifier (or kimm's model), compiled as the recipe compiles it."""
    import keras

    from keras_mobilevit import training
    from keras_mobilevit.training.classifier import compile_classifier

    keras.utils.set_random_seed(0)
    size = job["size"]
    if job["library"] == "kimm":
        import kimm

        kimm_class = getattr(kimm.models, job["model"].replace("_", ""))
        model = kimm_class(weights=None, input_shape=(size, size, 3), classes=CLASSES)
    else:
        model = training.build_classifier(job["model"], None, CLASSES, size)
    compile_classifier(model, LEARNING_RATE, steps, 0.1, CLASSES)
    if "jit_compile" in job["options"]:
        model.jit_compile = job["options"]["jit_compile"]
    return model


def train_keras(job):
    """Step times of `model.fit` on the job's model."""
    import time

    import keras
    import numpy as np

    set_variant(job["options"], job["precision"])
    steps = job["warmup"] + job["steps"]
    model = recipe_model(job, steps)
    images, labels = batch_of(job["size"], job["batch"])
    one_hot = np.eye(CLASSES, dtype=np.float32)[labels]

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return steps

        def __getitem__(self, index):
            return images, one_hot

    ends = []

    class StepEnds(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            float(logs["loss"])  # waits for the step (JAX dispatches asynchronously)
            ends.append(time.perf_counter())

    model.fit(Batches(), epochs=1, callbacks=[StepEnds()], shuffle=False, verbose=0)
    compiled = "XLA" if model.jit_compile else "no"
    return [b - a for a, b in itertools.pairwise(ends)][job["warmup"] - 1 :], compiled


def train_paired(job):
    """Step times of two models trained in turns in one process: as shipped, and a variant.

    TensorFlow picks the kernels when it traces a model's training step, so each
    model keeps those it was traced with. Steps alternate in rotated order, and
    each pair of steps shares whatever else the machine was doing.
    """
    import time

    import numpy as np

    steps = job["warmup"] + job["steps"]
    images, labels = batch_of(job["size"], job["batch"])
    one_hot = np.eye(CLASSES, dtype=np.float32)[labels]
    models = []
    for variant in ({}, job["options"]["variant"]):
        set_variant(variant, job["precision"])
        models.append(recipe_model(job, steps))
        models[-1].train_on_batch(images, one_hot)  # traced now, with these kernels
    set_variant({}, job["precision"])
    seconds = [[], []]
    for step in range(steps):
        for index in (0, 1) if step % 2 else (1, 0):
            start = time.perf_counter()
            models[index].train_on_batch(images, one_hot)
            seconds[index].append(time.perf_counter() - start)
    return [s[job["warmup"] :] for s in seconds], "no"


def train_timm(job):
    """Step times of a plain PyTorch training loop on timm's model."""
    import math
    import time

    import timm
    import torch

    torch.set_num_threads(job["threads"])
    torch.manual_seed(0)
    model = timm.create_model(job["model"].lower(), num_classes=CLASSES).train()
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]  # biases and norms
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
        lr=LEARNING_RATE,
    )
    steps = job["warmup"] + job["steps"]
    warmup = int(0.05 * steps)

    def schedule(step):
        if step < warmup:
            return step / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    forward = torch.compile(model) if job["options"].get("compile") else model
    images, labels = batch_of(job["size"], job["batch"])
    images = torch.from_numpy(images.transpose(0, 3, 1, 2) / 255.0).float()
    labels = torch.from_numpy(labels)
    ends = [time.perf_counter()]
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(forward(images), labels)
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss.item()
        ends.append(time.perf_counter())
    compiled = "torch.compile" if job["options"].get("compile") else "no"
    return [b - a for a, b in itertools.pairwise(ends)][job["warmup"] :], compiled


def worker(job):
    import resource

    train = {"timm": train_timm, "paired": train_paired}.get(job["library"], train_keras)
    if job["library"] == "paired":
        job["library"] = "keras_mobilevit"
    seconds, compiled = train(job)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps({"seconds": seconds, "rss": rss, "compiled": compiled}))


def run_peer(backend, library, options, model, args):
    env = peer_environment(backend, args.threads, args.system_allocator)
    job = {
        "library": library,
        "options": options,
        "model": model,
        "batch": args.batch,
        "size": args.size,
        "steps": args.steps,
        "warmup": args.warmup,
        "threads": args.threads,
        "precision": args.precision,
    }
    return worker_result([sys.executable, __file__, "--worker", json.dumps(job)], env)


def interleaved(runs, launch, rounds, describe):
    """Runs every `(model, peer)` once a round, in order; each result is printed as it comes.

    Returns `(results, skipped)`: each run's results, and why a run that failed did (it is
    not tried again).
    """
    results, skipped = {run: [] for run in runs}, {}
    for _ in range(rounds):
        for run in runs:
            if run in skipped:
                continue
            result, error = launch(run)
            if result is None:
                skipped[run] = error
            else:
                results[run].append(result)
            print(f"  {run[0]}, {run[1]}: {describe(result) if result else error}",
                  file=sys.stderr, flush=True)  # fmt: skip
    return results, skipped


def tensorflow_kernels():
    """The names of the TensorFlow kernels (`keras_mobilevit.kernels.tensorflow.KERNELS`)."""
    # Listed by a child process: this one stays free of TensorFlow's memory and threads.
    listing = subprocess.run(
        [sys.executable, "-c", "from keras_mobilevit.kernels import tensorflow; "
         "print(*tensorflow.KERNELS)"],
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow"),
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    return listing.stdout.split()


def paired_variant(name):
    """`--paired` names: a kernel's op, `all` (every kernel), or a dtype policy."""
    if name in ("mixed_bfloat16", "mixed_float16"):
        return {"precision": name}
    return {"kernels_off": [name]}


def run_paired(args):
    """Each variant against keras-mobilevit as shipped, trained in turns in one process."""
    runs = [(model, name) for model in args.models for name in args.paired]

    def launch(run):
        options = {"variant": paired_variant(run[1])}
        return run_peer("tensorflow", "paired", options, run[0], args)

    def describe(result):
        shipped, variant = result["seconds"]
        return f"{statistics.median(v / s for s, v in zip(shipped, variant, strict=True)):.3f}"

    results, skipped = interleaved(runs, launch, args.rounds, describe)
    print(
        "\n| model | variant | paired steps | step time, variant / as shipped (median) "
        "| as shipped (img/s) | variant (img/s) |"
    )
    print("|---|---|---|---|---|---|")
    for model, name in runs:
        label = f"{name} off" if "kernels_off" in paired_variant(name) else name
        if (model, name) in skipped:
            print(f"| {model} | {label} | skipped: {skipped[model, name][:80]} | | | |")
            continue
        pairs = [pair for r in results[model, name] for pair in zip(*r["seconds"], strict=True)]
        ratio = statistics.median(variant / shipped for shipped, variant in pairs)
        shipped = args.batch / statistics.median(pair[0] for pair in pairs)
        variant = args.batch / statistics.median(pair[1] for pair in pairs)
        print(
            f"| {model} | {label} | {len(pairs)} | {ratio:.3f} | {shipped:.1f} | {variant:.1f} |",
            flush=True,
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["MobileViT_XS", "MobileViT_S"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per process")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (at least 1)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds over the peers")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--peers", nargs="*", default=DEFAULT_PEERS, choices=list(PEERS))
    parser.add_argument(
        "--paired", nargs="+", metavar="VARIANT",
        help="instead of peers: keras-mobilevit (tensorflow) against itself with VARIANT, "
        "a kernel turned off (its op: batch_norm_training, activation_training...; all) or "
        "mixed_bfloat16, trained in turns in one process",
    )  # fmt: skip
    parser.add_argument(
        "--ablate-kernels", action="store_true",
        help="--paired with every TensorFlow kernel in turn, and all of them",
    )  # fmt: skip
    parser.add_argument(
        "--precision", default="float32", choices=["float32", "mixed_bfloat16"],
        help="Keras' dtype policy (timm trains in float32 whatever this says)",
    )  # fmt: skip
    parser.add_argument(
        "--system-allocator", action="store_true", help="leave glibc's allocator settings alone"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(json.loads(args.worker))
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1")

    if args.ablate_kernels:
        args.paired = [*tensorflow_kernels(), "all"]
    allocator = "system allocator" if args.system_allocator else "MALLOC_MMAP_MAX_=0"
    print(
        f"training step, {args.precision}, batch {args.batch}, {args.size}x{args.size}, "
        f"{CLASSES} classes, one batch in memory; {args.threads} threads, {args.rounds} "
        f"interleaved rounds x ({args.warmup} untimed + {args.steps} timed steps), medians, "
        f"{allocator}; python {sys.version.split()[0]}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )
    if args.paired:
        return run_paired(args)
    peers = {name: PEERS[name] for name in args.peers}
    runs = [(model, peer) for model in args.models for peer in peers]
    results, skipped = interleaved(
        runs,
        lambda run: run_peer(*peers[run[1]], run[0], args),
        args.rounds,
        lambda result: f"{args.batch / statistics.median(result['seconds']):.1f} img/s",
    )

    def step(run):
        return statistics.median(s for r in results[run] for s in r["seconds"])

    print(
        "\n| model | peer | compiled | step (s) | images/s | vs keras-mobilevit "
        "| fastest step (s) | peak RSS (MiB) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    speeds = {}
    for model, peer in runs:
        if (model, peer) in skipped:
            print(f"| {model} | {peer} | skipped: {skipped[model, peer][:80]} | | | | | |")
            continue
        seconds = step((model, peer))
        speeds[model, peer] = args.batch / seconds
        reference = (model, REFERENCE)
        ratio = ""
        if results.get(reference):
            ratio = f"{step(reference) / seconds:.2f}x"
        fastest = min(s for r in results[model, peer] for s in r["seconds"])
        rss = statistics.median(r["rss"] for r in results[model, peer])
        compiled = results[model, peer][0]["compiled"]
        print(
            f"| {model} | {peer} | {compiled} | {seconds:.3f} | {args.batch / seconds:.1f} "
            f"| {ratio} | "
            f"{fastest:.3f} | {rss:.0f} |",
            flush=True,
        )
    return speeds


if __name__ == "__main__":
    main()
