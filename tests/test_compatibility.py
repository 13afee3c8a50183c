"""The suite's core under the conditions users may run it in: the kernels off, and the
lowest Keras release that pyproject.toml admits (the newest is what the suite runs on)."""

import os
import re
import subprocess
import sys

import pytest
from packaging.version import Version
from testing import TESTS, record_measured, run_pytest

ROOT = os.path.dirname(TESTS)


def _lowest_keras():
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        return re.search(r'"keras>=([\d.]+)"', f.read()).group(1)


@pytest.mark.slow
def test_parity_with_the_kernels_off():
    # The layers' tests hold each kernel against Keras' own call already; the smallest
    # variant of each family takes every layer without them (the widths add no layer).
    result = run_pytest(
        ["tests/test_parity.py", "tests/test_legacy_files.py", "-m", "not slow",
         "-k", "XXS or V2_050 or legacy"],
        "tensorflow",
        {"KERAS_MOBILEVIT_FAST_PATHS": "0"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert record_measured(result.stdout) >= 16  # every row of those variants


@pytest.mark.slow
def test_the_lowest_supported_keras(tmp_path_factory):
    version = _lowest_keras()
    target = tmp_path_factory.mktemp(f"keras-{version}")
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            target,
            f"keras=={version}",
        ],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    pythonpath = os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])
    check = "import keras; print(keras.__version__)"
    # Not the legacy files: no Keras reads a file that a newer Keras wrote (the
    # initialisers' configs gained arguments), and the fixtures were saved by 3.15.
    files = ["tests/test_parity.py", "tests/test_layers.py", "tests/test_saving.py"]
    result = run_pytest(
        [*files, "-m", "not slow", "-k", "XXS or V2_050 or layers or saving"],
        "tensorflow",
        {"PYTHONPATH": pythonpath},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert record_measured(result.stdout, suffix=f", keras {version}") >= 10
    used = subprocess.run(
        [sys.executable, "-c", check],
        env={**os.environ, "PYTHONPATH": pythonpath},
        capture_output=True,
        text=True,
    )
    assert Version(used.stdout.strip()) == Version(version)
