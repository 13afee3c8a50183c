"""Build time and CPU inference speed of MobileViT_S: keras-mobilevit against its peers.

Each peer runs in its own process (so imports and thread pools do not interfere), in turn, with
the same input size, batch and thread count; the table reports medians and ratios to
keras-mobilevit, because absolute times drift on a shared machine.

    python benchmarks/build_and_predict.py [--batch 16] [--size 256] [--repeats 5] [--threads 2]

Peers that are not installed are skipped: kimm (`pip install --no-deps kimm`), timm.
"""

import argparse
import json
import os
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
images = np.random.default_rng(0).random((batch, size, size, 3), dtype=np.float32)
if library == "timm":
    import timm, torch
    torch.set_num_threads(args["threads"])
    start = time.perf_counter()
    model = timm.create_model("mobilevit_s").eval()
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    def run():
        with torch.inference_mode():
            return model(x)
else:
    import keras
    if library == "kimm":
        import kimm
        start = time.perf_counter()
        model = kimm.models.MobileViTS(weights=None, input_shape=(size, size, 3))
    else:
        import keras_mobilevit
        start = time.perf_counter()
        model = keras_mobilevit.MobileViT_S(weights=None, input_shape=(size, size, 3))
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


def run_peer(backend, library, args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS=str(args.threads))
    env["TF_NUM_INTRAOP_THREADS"] = env["TF_NUM_INTEROP_THREADS"] = str(args.threads)
    if backend:
        env["KERAS_BACKEND"] = backend
    payload = json.dumps(
        {
            "library": library,
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
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds over the peers")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--peers", nargs="*", default=list(PEERS), choices=list(PEERS))
    args = parser.parse_args()
    print(
        f"MobileViT_S, fp32, batch {args.batch}, {args.size}x{args.size}, {args.threads} threads, "
        f"{args.rounds} rounds x {args.repeats} timed runs, median; python {sys.version.split()[0]}"
    )
    results = {peer: {"build": [], "seconds": []} for peer in args.peers}
    skipped = {}
    for _ in range(args.rounds):
        for peer in args.peers:
            if peer in skipped:
                continue
            result, error = run_peer(*PEERS[peer], args)
            if result is None:
                skipped[peer] = error[0]
                continue
            for key in ("build", "seconds"):
                results[peer][key].append(result[key])
    reference = None
    print("\n| peer | build, after import (s) | images/s | speed vs the first row |")
    print("|---|---|---|---|")
    for peer in args.peers:
        if peer in skipped:
            print(f"| {peer} | skipped: {skipped[peer][:60]} | | |")
            continue
        build = statistics.median(results[peer]["build"])
        throughput = args.batch / statistics.median(results[peer]["seconds"])
        reference = reference or throughput
        print(f"| {peer} | {build:.2f} | {throughput:.1f} | {throughput / reference:.2f}x |")


if __name__ == "__main__":
    main()
