"""Build time and CPU inference speed: keras-mobilevit against its peers, model by model.

Each peer runs in its own process (so imports and thread pools do not interfere), in turn, with
the same input size, batch and thread count; the table reports medians and ratios to
keras-mobilevit, because absolute times drift on a shared machine.

    python benchmarks/build_and_predict.py [--models MobileViT_S MobileViTV2_100] [--batch 16]
        [--size 256] [--repeats 5] [--rounds 2] [--threads 2] [--peers ...]

Peers that are not installed are skipped: kimm (`pip install --no-deps kimm`), timm.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

PEERS = {
    "keras-mobilevit (tensorflow)": ("tensorflow", "keras_mobilevit"),
    "keras-mobilevit (jax)": ("jax", "keras_mobilevit"),
    "keras-mobilevit (torch)": ("torch", "keras_mobilevit"),
    "kimm (tensorflow)": ("tensorflow", "kimm"),
    "timm (pytorch)": (None, "timm"),
}

WORKER = r"""
import json, statistics, sys, time
args = json.loads(sys.argv[1])
import numpy as np
library, batch, size, repeats = args["library"], args["batch"], args["size"], args["repeats"]
variant = args["model"]
images = np.random.default_rng(0).random((batch, size, size, 3), dtype=np.float32)
if library == "timm":
    import timm, torch
    torch.set_num_threads(args["threads"])
    start = time.perf_counter()
    model = timm.create_model(variant.lower()).eval()
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    def run():
        with torch.inference_mode():
            return model(x)
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
    def run():
        return model.predict_on_batch(images)
build = time.perf_counter() - start
for _ in range(2):
    run()  # warm-up: tracing, compilation, allocator
times = []
for _ in range(repeats):
    start = time.perf_counter()
    run()
    times.append(time.perf_counter() - start)
print("RESULT " + json.dumps({"build": build, "seconds": statistics.median(times)}))
"""


def run_peer(backend, library, model, args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS=str(args.threads))
    env["TF_NUM_INTRAOP_THREADS"] = env["TF_NUM_INTEROP_THREADS"] = str(args.threads)
    if backend:
        env["KERAS_BACKEND"] = backend
    payload = json.dumps(
        {
            "library": library,
            "model": model,
            "batch": args.batch,
            "size": args.size,
            "repeats": args.repeats,
            "threads": args.threads,
        }
    )
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, payload], env=env, capture_output=True, text=True
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        return None, proc.stderr.strip().splitlines()[-1:] or ["failed"]
    return json.loads(lines[-1][7:]), None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["MobileViT_S", "MobileViTV2_100"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds over the peers")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--peers", nargs="*", default=list(PEERS), choices=list(PEERS))
    args = parser.parse_args()
    print(
        f"fp32, batch {args.batch}, {args.size}x{args.size}, {args.threads} threads, "
        f"{args.rounds} interleaved rounds x {args.repeats} timed runs, medians; "
        f"python {sys.version.split()[0]}, {platform.machine()}, {os.cpu_count()} CPUs"
    )
    runs = [(model, peer) for model in args.models for peer in args.peers]
    results = {run: {"build": [], "seconds": []} for run in runs}
    skipped = {}
    for _ in range(args.rounds):
        for run in runs:
            if run in skipped:
                continue
            model, peer = run
            result, error = run_peer(*PEERS[peer], model, args)
            if result is None:
                skipped[run] = error[0]
                continue
            for key in ("build", "seconds"):
                results[run][key].append(result[key])
    first = None
    print("\n| model | peer | build, after import (s) | images/s | vs first row |")
    print("|---|---|---|---|---|")
    for run in runs:
        model, peer = run
        if run in skipped:
            print(f"| {model} | {peer} | skipped: {skipped[run][:60]} | | |")
            continue
        build = statistics.median(results[run]["build"])
        throughput = args.batch / statistics.median(results[run]["seconds"])
        first = first or throughput
        print(f"| {model} | {peer} | {build:.2f} | {throughput:.1f} | {throughput / first:.2f}x |")


if __name__ == "__main__":
    main()
