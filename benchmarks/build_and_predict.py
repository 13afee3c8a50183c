"""CPU inference speed, build time and memory: keras-mobilevit against its peers, model by model.

Each peer runs in its own process (imports and thread pools do not interfere), peers
interleaved over several rounds, with the same input, random weights and thread count. The
table gives medians, and speeds relative to keras-mobilevit on TensorFlow for the same model,
because absolute times drift on a shared machine.

    python benchmarks/build_and_predict.py [--models MobileViT_XXS MobileViT_XS MobileViT_S
        MobileViTV2_100] [--batches 1 16] [--size 256] [--repeats 5] [--min-seconds 2]
        [--rounds 2]
        [--threads 2] [--peers ...] [--system-allocator]

Peers not installed are reported as skipped: kimm (`pip install --no-deps kimm`), timm,
transformers. Build time is measured after the imports; peak memory is the process's maximum
resident set size.

Every peer runs with glibc's allocator told to keep freed memory (`MALLOC_MMAP_MAX_=0`,
`MALLOC_TRIM_THRESHOLD_` high; `--system-allocator` leaves the defaults). By default glibc
hands each large block back to the system when it is freed, so PyTorch, which frees every
activation map as it goes, page-faults every new one in again: its throughput swung between
runs from 12 to 28 img/s (MobileViT_S, batch 16) and settled at the top with these settings.
TensorFlow's times do not change. PyTorch's CPU tuning guide recommends the same remedy
(or jemalloc / tcmalloc).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

REFERENCE = "keras-mobilevit (tensorflow)"
PEERS = {
    REFERENCE: ("tensorflow", "keras_mobilevit"),
    "keras-mobilevit (jax)": ("jax", "keras_mobilevit"),
    "keras-mobilevit (torch)": ("torch", "keras_mobilevit"),
    # optimize_for_inference: layers merged (BatchNorm folded...); and also in bfloat16.
    "keras-mobilevit folded (tensorflow)": ("tensorflow", "keras_mobilevit:float32"),
    "keras-mobilevit folded bf16 (tensorflow)": ("tensorflow", "keras_mobilevit:bfloat16"),
    "keras-mobilevit folded (torch)": ("torch", "keras_mobilevit:float32"),
    "kimm (tensorflow)": ("tensorflow", "kimm"),
    "timm (pytorch)": (None, "timm"),
    "transformers (pytorch)": (None, "transformers"),
}

WORKER = r"""
import json, resource, statistics, sys, time
args = json.loads(sys.argv[1])
import numpy as np
library, size, repeats, variant = args["library"], args["size"], args["repeats"], args["model"]
batches = {b: np.random.default_rng(0).random((b, size, size, 3), dtype=np.float32)
           for b in args["batches"]}
if library in ("timm", "transformers"):
    import torch
    torch.set_num_threads(args["threads"])
    if library == "timm":
        import timm
        start = time.perf_counter()
        model = timm.create_model(variant.lower()).eval()
    else:
        import transformers as hf
        start = time.perf_counter()
        if variant.startswith("MobileViTV2"):
            config = hf.MobileViTV2Config(width_multiplier=int(variant[-3:]) / 100)
            model = hf.MobileViTV2ForImageClassification(config).eval()
        else:
            sizes = {"MobileViT_XXS": ([64, 80, 96], [16, 16, 24, 48, 64, 80, 320], 2.0),
                     "MobileViT_XS": ([96, 120, 144], [16, 32, 48, 64, 80, 96, 384], 4.0),
                     "MobileViT_S": ([144, 192, 240], [16, 32, 64, 96, 128, 160, 640], 4.0)}
            hidden, neck, expand = sizes[variant]
            config = hf.MobileViTConfig(hidden_sizes=hidden, neck_hidden_sizes=neck,
                                        expand_ratio=expand, num_labels=1000)
            model = hf.MobileViTForImageClassification(config).eval()
    inputs = {b: torch.from_numpy(x.transpose(0, 3, 1, 2).copy()) for b, x in batches.items()}
    def run(b):
        with torch.inference_mode():
            return model(inputs[b])
else:
    import keras
    if library == "kimm":
        import kimm
        start = time.perf_counter()
        kimm_name = variant.replace("_", "").replace("V2", "V2W")
        model = getattr(kimm.models, kimm_name)(weights=None, input_shape=(size, size, 3))
    else:
        import keras_mobilevit
        start = time.perf_counter()
        model = getattr(keras_mobilevit, variant)(weights=None, input_shape=(size, size, 3))
        if ":" in library:
            compute_dtype = library.split(":")[1]
            model = keras_mobilevit.optimize_for_inference(model, compute_dtype=compute_dtype)
    def run(b):
        return model.predict_on_batch(batches[b])
build = time.perf_counter() - start
seconds = {}
for b in batches:
    for _ in range(2):
        start = time.perf_counter()
        run(b)  # warm-up: tracing, compilation, allocator
    # At least `repeats` runs, and enough to fill `min_seconds` at the last warm-up's pace: a
    # 25 ms batch-1 pass timed five times gave medians that moved by 15% between runs.
    runs = max(repeats, int(args["min_seconds"] / (time.perf_counter() - start)))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(b)
        times.append(time.perf_counter() - start)
    seconds[b] = statistics.median(times)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT " + json.dumps({"build": build, "seconds": seconds, "rss": rss}))
"""


ALLOCATOR = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**40)}


def peer_environment(backend, threads, system_allocator):
    """A peer process's environment: its Keras backend, the thread count, the allocator."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS=str(threads))
    if not system_allocator:
        env.update(ALLOCATOR)
    env["TF_NUM_INTRAOP_THREADS"] = env["TF_NUM_INTEROP_THREADS"] = str(threads)
    if backend:
        env["KERAS_BACKEND"] = backend
    return env


def run_peer(backend, library, model, args):
    env = peer_environment(backend, args.threads, args.system_allocator)
    payload = json.dumps(
        {
            "library": library,
            "model": model,
            "batches": args.batches,
            "size": args.size,
            "repeats": args.repeats,
            "min_seconds": args.min_seconds,
            "threads": args.threads,
        }
    )
    return worker_result([sys.executable, "-c", WORKER, payload], env)


def worker_result(argv, env):
    """Runs a peer's process: `(its last "RESULT {json}" line, parsed, None)`, or `(None, why)`.

    Why: the last line of its stderr naming an error, else its last line.
    """
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        stderr = proc.stderr.strip().splitlines()
        return None, ([ln for ln in stderr if "Error" in ln] or stderr or ["failed"])[-1]
    return json.loads(lines[-1][7:]), None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        nargs="+",
        default=["MobileViT_XXS", "MobileViT_XS", "MobileViT_S", "MobileViTV2_100"],
    )
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs, at least")
    parser.add_argument(
        "--min-seconds", type=float, default=2.0, help="more timed runs until they take this long"
    )
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds over the peers")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--peers", nargs="*", default=list(PEERS), choices=list(PEERS))
    parser.add_argument(
        "--system-allocator", action="store_true", help="leave glibc's allocator settings alone"
    )
    args = parser.parse_args()
    allocator = "system allocator" if args.system_allocator else "MALLOC_MMAP_MAX_=0"
    print(
        f"fp32, {args.size}x{args.size}, batches {args.batches}, {args.threads} threads, "
        f"{args.rounds} interleaved rounds x {args.repeats}+ timed runs (>= {args.min_seconds} s), "
        f"medians, {allocator}; "
        f"python {sys.version.split()[0]}, {platform.machine()}, {os.cpu_count()} CPUs"
    )
    runs = [(model, peer) for model in args.models for peer in args.peers]
    results = {run: [] for run in runs}
    skipped = {}
    for _ in range(args.rounds):
        for run in runs:
            if run in skipped:
                continue
            result, error = run_peer(*PEERS[run[1]], run[0], args)
            if result is None:
                skipped[run] = error
            else:
                results[run].append(result)

    def throughput(run, batch):
        seconds = statistics.median(r["seconds"][str(batch)] for r in results[run])
        return batch / seconds

    speeds = " | ".join(f"batch {b} img/s (vs ref)" for b in args.batches)
    print(f"\n| model | peer | build (s) | {speeds} | peak RSS (MiB) |")
    print("|---|---|---|" + "---|" * len(args.batches) + "---|")
    for model, peer in runs:
        if (model, peer) in skipped:
            print(f"| {model} | {peer} | skipped: {skipped[model, peer][:60]} |")
            continue
        reference = (model, REFERENCE) if results.get((model, REFERENCE)) else None
        cells = []
        for batch in args.batches:
            speed = throughput((model, peer), batch)
            ratio = f" ({speed / throughput(reference, batch):.2f}x)" if reference else ""
            cells.append(f"{speed:.1f}{ratio}")
        build = statistics.median(r["build"] for r in results[model, peer])
        rss = statistics.median(r["rss"] for r in results[model, peer])
        print(f"| {model} | {peer} | {build:.2f} | {' | '.join(cells)} | {rss:.0f} |")


if __name__ == "__main__":
    main()
