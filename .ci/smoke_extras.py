"""Installs each extra alone in a fresh virtualenv and runs the README's commands for it.

CI's `.[test]` install pulls in everything, which hid a tensorflow-datasets dependency that
`.[train]` lacked; this catches such a missing install step. The ImageNet weights come from
the tests' loopback fake Hub, serving a timm checkpoint with random weights.

`wheel` builds the wheel and sdist, checks them with twine, and installs the wheel (not the
checkout) with the `tensorflow` extra, as `pip install "keras-mobilevit[tensorflow]"` will.

Run with the test virtualenv's Python (it needs timm to make the checkpoint):
    python .ci/smoke_extras.py [EXTRA ...]
"""

import os
import pathlib
import subprocess
import sys
import tempfile
import time

import timm  # noqa: F401  (before TensorFlow, which testing imports: the other order crashes)

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from hf_server import FakeHub  # noqa: E402
from testing import randomized_timm_model, save_checkpoint  # noqa: E402

CAT = str(ROOT / "examples" / "cat.jpg")
PREDICT = ["keras-mobilevit", "predict", CAT]  # the README's quick start, word for word
# pip would take a CUDA build of several GB for `torch>=2.5` on this CPU-only machine; the
# CPU wheel satisfies the extra's range, so the extra installs nothing more.
PREINSTALL = {"torch": ["torch==2.13.0"]}
BACKEND = {"jax": "jax", "torch": "torch"}


def smoke_commands(extra, work):
    """`(description, argv, expect[, env])`: `expect` checks `(returncode, stdout, stderr)`."""
    printed_five = lambda rc, out, err: rc == 0 and out.count("%") == 5  # noqa: E731
    # export and train build and run models themselves: predict there repeats the wheel's check.
    commands = [] if extra in ("export", "train") else [
        ("predict (README quick start)", PREDICT, printed_five)
    ]
    if extra == "wheel":
        version = f"keras-mobilevit {installed_version()}"
        commands += [
            (
                "--version",
                ["keras-mobilevit", "--version"],
                lambda rc, out, err: rc == 0 and out.strip() == version,
            ),
            (
                "predict with a weights file",
                [*PREDICT, "--weights", str(work.parent / "xs.safetensors")],
                printed_five,
            ),
            (
                "predict --weights flowers102, not published yet: one line",
                [*PREDICT, "--weights", "flowers102"],
                lambda rc, out, err: rc == 1
                and err.startswith("keras-mobilevit: error:")
                and "has not been published yet" in err
                and err.count("\n") == 1,
            ),
            (
                "every file and public name installed",
                ["python", str(ROOT / ".ci" / "check_installed.py"), str(ROOT)],
                lambda rc, out, err: rc == 0 and out.startswith("installed"),
            ),
        ]
    if extra in ("jax", "torch"):
        commands.append(
            (
                "import without KERAS_BACKEND names it",
                ["python", "-c", "import keras_mobilevit"],
                lambda rc, out, err: rc != 0 and f"KERAS_BACKEND={extra}" in err,
            )
        )
    if extra == "export":
        for fmt, suffix in (("litert", "tflite"), ("onnx", "onnx")):
            commands.append(
                (
                    f"export {fmt}",
                    ["keras-mobilevit", "export", "MobileViT_XS", "--format", fmt,
                     "--input-size", "64", "--output", str(work / f"xs.{suffix}")],
                    lambda rc, out, err: rc == 0 and "max |difference|" in out,
                )
            )  # fmt: skip
    if extra == "train":
        folders = make_class_folders(work / "flowers")
        commands.append(
            (
                "train on a folder of class folders",
                ["keras-mobilevit", "train", "--dataset", str(folders), "--epochs", "1",
                 "--image-size", "64", "--batch-size", "4", "--output", str(work / "run")],
                lambda rc, out, err: rc == 0 and "top-1" in out,
            )
        )  # fmt: skip
        commands.append(
            (
                # Reaches tensorflow-datasets' download code (where importlib_resources was
                # missing); the download fails at once on a proxy requests cannot use (it
                # would retry a refused connection for minutes).
                "train on a tensorflow-datasets dataset, offline",
                ["keras-mobilevit", "train", "--dataset", "oxford_flowers102", "--data-dir",
                 str(work / "tfds"), "--epochs", "1", "--output", str(work / "tfds-run")],
                lambda rc, out, err: rc == 1
                and err.strip().splitlines()[-1].startswith("keras-mobilevit: error:")
                and "could not download and prepare 'oxford_flowers102'" in err
                and "Traceback" not in err,
                {"HTTPS_PROXY": "invalid://proxy", "HTTP_PROXY": "invalid://proxy"},
            )
        )  # fmt: skip
    return commands


def installed_version():
    """`keras_mobilevit.__version__`, read as setuptools reads it (without importing Keras)."""
    import ast

    tree = ast.parse((ROOT / "keras_mobilevit" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "__version__":
            return node.value.value
    raise LookupError("no __version__ in keras_mobilevit/__init__.py")


def build_wheel(work, log):
    """Builds the wheel and sdist into `work/dist`, checks them; returns the wheel, or `None`.

    With `SMOKE_DIST=folder` (the release workflow), tests the wheel already built there.
    """
    dist = pathlib.Path(os.environ["SMOKE_DIST"]).resolve() if "SMOKE_DIST" in os.environ else None
    if dist is None:
        dist = work / "dist"
        built = run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], os.environ,
                    log, work)  # fmt: skip
        if built.returncode != 0:
            return None
    wheels = sorted(dist.glob("*.whl"))
    if len(wheels) != 1:
        return None
    checked = run([sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.iterdir())],
                  os.environ, log, work)  # fmt: skip
    return wheels[0] if checked.returncode == 0 else None


def make_class_folders(root):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("daisy", "tulip"):
        (root / name).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.jpg")
    return root


def run(argv, env, log, cwd):
    started = time.monotonic()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=1200)
    summary = f"$ {' '.join(argv)}  ({time.monotonic() - started:.0f} s, exit {result.returncode})"
    print(summary, flush=True)
    log.write(summary + "\n")
    log.write(result.stdout + result.stderr)
    return result


def smoke(extra, hub, work):
    """Installs `extra` in a fresh virtualenv and runs its commands; returns the failures."""
    venv = work / "venv"
    bin_dir = venv / "bin"
    with open(work / "log.txt", "w") as log:
        run([sys.executable, "-m", "venv", str(venv)], os.environ, log, work)
        pip = [str(bin_dir / "pip"), "install", "--quiet", "--no-compile"]
        for requirement in PREINSTALL.get(extra, []):
            run([*pip, requirement], os.environ, log, work)
        if extra == "wheel":
            wheel = build_wheel(work, log)
            if wheel is None:
                return [f"building or checking the wheel failed: see {work / 'log.txt'}"]
            requirement = f"{wheel}[tensorflow]"
        else:
            requirement = f"{ROOT}[{extra}]"
        installed = run([*pip, requirement], os.environ, log, work)
        if installed.returncode != 0:
            return [f"pip install {requirement} failed: see {work / 'log.txt'}"]
        env = hub.env(work / "hf_home")
        env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
        env.pop("KERAS_BACKEND", None)
        for var in ("PYTHONPATH", "VIRTUAL_ENV"):
            env.pop(var, None)
        env["HTTPS_PROXY"] = env["HTTP_PROXY"] = "http://127.0.0.1:9"  # nothing else is reached
        env["TF_CPP_MIN_LOG_LEVEL"] = "2"
        failures = []
        for description, argv, expect, *extra_env in smoke_commands(extra, work):
            command_env = {**env, **(extra_env[0] if extra_env else {})}
            if extra in BACKEND and not argv[-1].startswith("import"):
                command_env["KERAS_BACKEND"] = BACKEND[extra]
            result = run(argv, command_env, log, work)
            if not expect(result.returncode, result.stdout, result.stderr):
                tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
                failures.append(f"[{extra}] {description}: exit {result.returncode}\n  " +
                                "\n  ".join(tail))  # fmt: skip
    return failures


def main(extras):
    with tempfile.TemporaryDirectory(prefix="smoke-extras-") as tmp:
        tmp = pathlib.Path(tmp)
        checkpoint = save_checkpoint(randomized_timm_model("mobilevit_xs"), tmp / "xs.safetensors")
        failures = []
        with FakeHub() as hub:
            hub.add_file(
                "timm/mobilevit_xs.cvnets_in1k",
                "model.safetensors",
                pathlib.Path(checkpoint).read_bytes(),
            )
            for extra in extras:
                started = time.monotonic()
                work = tmp / extra
                work.mkdir()
                found = smoke(extra, hub, work)
                status = "ok" if not found else "FAILED"
                print(f"extra {extra}: {status} ({time.monotonic() - started:.0f} s)", flush=True)
                if found:
                    print((work / "log.txt").read_text()[-4000:])
                failures += found
        for failure in failures:
            print(failure, file=sys.stderr)
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["wheel", "jax", "torch", "export", "train"]))
