"""Cold start: how long a new process takes to classify one image, against kimm doing the same.

Each job runs in a fresh process, jobs interleaved over several rounds; the table gives the
medians of the whole process (wall clock, interpreter start included) and of its phases:
imports, building the model, loading weights from a local file, the first call, decoding.
The weights are random and already on disk (a cached download), so no network is involved.

    python benchmarks/cold_start.py [--model MobileViT_XS] [--rounds 5] [--threads 2]

Jobs:
- `keras-mobilevit --help`, and `keras-mobilevit predict IMAGE --weights FILE` (the CLI);
- keras-mobilevit in Python: `MobileViT_XS(weights=FILE)` (timm's safetensors layout, converted
  at load), predict, `decode_predictions`;
- kimm in Python, the same job: `kimm.models.MobileViTXS(weights=None)` then `load_weights` of
  its own `.weights.h5`, predict, `keras.applications.imagenet_utils.decode_predictions` (its
  class index file placed in a temporary KERAS_HOME, as after a first download).

Needs timm (to make the random checkpoint) and kimm (`pip install --no-deps kimm`).
"""

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
IMAGE = str(ROOT / "examples" / "cat.jpg")
KIMM_CLASSES = {"MobileViT_XXS": "MobileViTXXS", "MobileViT_XS": "MobileViTXS",
                "MobileViT_S": "MobileViTS"}  # fmt: skip
PHASES = ("imports", "build", "load", "first call", "decode")

# Prints the phases' seconds as JSON; the parent times the whole process.
JOB = r"""
import json, sys, time
marks = [time.perf_counter()]
library, model_name, weights, image = sys.argv[1:5]
if library == "keras_mobilevit":
    import keras_mobilevit
    from keras_mobilevit.imagenet import load_image
    marks.append(time.perf_counter())
    model = getattr(keras_mobilevit, model_name)(weights=None)
    marks.append(time.perf_counter())
    from keras_mobilevit import loading
    loading.load(model, weights, include_top=True)
    marks.append(time.perf_counter())
    preds = model.predict(load_image(image)[None], verbose=0)
    marks.append(time.perf_counter())
    print(keras_mobilevit.decode_predictions(preds, top=1)[0][0][1], file=sys.stderr)
else:
    import keras, kimm, numpy as np
    from keras.applications import imagenet_utils
    from PIL import Image
    marks.append(time.perf_counter())
    model = getattr(kimm.models, model_name)(weights=None)
    marks.append(time.perf_counter())
    model.load_weights(weights)
    marks.append(time.perf_counter())
    pixels = np.asarray(Image.open(image).convert("RGB").resize((256, 256)), dtype="float32")
    preds = model.predict(pixels[None], verbose=0)
    marks.append(time.perf_counter())
    print(imagenet_utils.decode_predictions(preds, top=1)[0][0][1], file=sys.stderr)
marks.append(time.perf_counter())
print(json.dumps([b - a for a, b in zip(marks, marks[1:])]))
"""


def make_weights(model, folder):
    """A random timm checkpoint for keras-mobilevit, and kimm's own weights file."""
    import timm  # noqa: F401  (before TensorFlow, which testing imports: the other order crashes)

    sys.path.insert(0, str(ROOT / "tests"))
    from testing import randomized_timm_model, save_checkpoint

    timm_name = model.lower()
    ours = save_checkpoint(randomized_timm_model(timm_name), folder / f"{timm_name}.safetensors")
    kimm_weights = folder / "kimm.weights.h5"
    subprocess.run(
        [sys.executable, "-c",
         f"import kimm; kimm.models.{KIMM_CLASSES[model]}(weights=None)"
         f".save_weights({str(kimm_weights)!r})"],
        env=dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3"),
        check=True, capture_output=True,
    )  # fmt: skip
    return str(ours), str(kimm_weights)


def timed(argv, env):
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stderr[-3000:]}")
    return seconds, result.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="MobileViT_XS", choices=sorted(KIMM_CLASSES))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    script = shutil.which("keras-mobilevit") or str(pathlib.Path(sys.executable).parent /
                                                    "keras-mobilevit")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        ours, kimm_weights = make_weights(args.model, tmp)
        keras_home = tmp / "keras_home" / "models"
        keras_home.mkdir(parents=True)
        # Keras' copy is json.dumps of the same mapping (it checks the file's md5).
        index = json.loads(
            (ROOT / "keras_mobilevit" / "data" / "imagenet_class_index.json").read_text()
        )
        (keras_home / "imagenet_class_index.json").write_text(json.dumps(index))
        threads = str(args.threads)
        env = dict(os.environ, KERAS_BACKEND="tensorflow", KERAS_HOME=str(keras_home.parent),
                   TF_NUM_INTRAOP_THREADS=threads, OMP_NUM_THREADS=threads)  # fmt: skip
        jobs = {
            "keras-mobilevit --help": ([script, "--help"], False),
            "keras-mobilevit predict (CLI)": (
                [script, "predict", IMAGE, "--model", args.model, "--weights", ours], False),
            "keras-mobilevit (Python)": (
                [sys.executable, "-c", JOB, "keras_mobilevit", args.model, ours, IMAGE], True),
            "kimm (Python)": (
                [sys.executable, "-c", JOB, "kimm", KIMM_CLASSES[args.model], kimm_weights,
                 IMAGE], True),
        }  # fmt: skip
        results = {name: [] for name in jobs}
        for _ in range(args.rounds):
            for name, (argv, phased) in jobs.items():
                seconds, stdout = timed(argv, env)
                phases = json.loads(stdout.splitlines()[-1]) if phased else []
                results[name].append([seconds, *phases])
    reference = statistics.median(r[0] for r in results["keras-mobilevit (Python)"])
    print(f"{args.model}, TensorFlow backend, {args.threads} threads, medians of {args.rounds}"
          " fresh processes (seconds)\n")  # fmt: skip
    header = ["job", "whole process", *PHASES, "vs keras-mobilevit (Python)"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for name, rows in results.items():
        columns = [statistics.median(values) for values in zip(*rows, strict=True)]
        phases = [f"{c:.2f}" for c in columns[1:]] or ["-"] * len(PHASES)
        print(f"| {name} | {columns[0]:.2f} | " + " | ".join(phases) +
              f" | {columns[0] / reference:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
