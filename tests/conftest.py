"""Shared fixtures: reference timm models with random weights, saved as checkpoints.

Keras reads KERAS_BACKEND when first imported; the in-process tests run on the
TensorFlow backend unless the environment says otherwise, and the other
backends are exercised in subprocesses.
"""

import json
import os
import pathlib
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# XLA compiles each function a JAX test runs, and each weight initializer a model build
# runs, once: LLVM's optimisations, which the tests' small inputs never repay, double that
# (MobileViT_XXS's build, 14.5 s against 8.2). Subprocesses inherit it.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0"
    os.environ["XLA_FLAGS"] = flags.strip()

# torchvision (imported by timm) crashes the interpreter when it is imported
# after TensorFlow; importing the reference first avoids it.
import pytest  # noqa: E402
import timm  # noqa: E402, F401
from testing import MEASURED, TIMM_NAMES, randomized_timm_model, save_checkpoint  # noqa: E402


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """Lazily built `{variant: (timm_model, safetensors_path)}`, one per variant."""
    directory = tmp_path_factory.mktemp("checkpoints")
    cache = {}

    def get(variant):
        if variant not in cache:
            model = randomized_timm_model(TIMM_NAMES[variant])
            cache[variant] = (model, save_checkpoint(model, directory / f"{variant}.safetensors"))
        return cache[variant]

    return get


def pytest_collection_modifyitems(items):
    # Slow tests first, so that under pytest-xdist the short ones fill both workers to the
    # end rather than one worker finishing a long test alone.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


# Under pytest-xdist each worker measures its share; they leave their rows in a folder the
# controller made, and the controller prints one table.
MEASURED_DIR = "KERAS_MOBILEVIT_TESTS_MEASURED_DIR"


def pytest_configure(config):
    if not hasattr(config, "workerinput"):
        os.environ[MEASURED_DIR] = tempfile.mkdtemp(prefix="measured-")


def pytest_sessionfinish(session):
    workerinput = getattr(session.config, "workerinput", None)
    if workerinput is not None and MEASURED:
        path = pathlib.Path(os.environ[MEASURED_DIR]) / f"{workerinput['workerid']}.json"
        path.write_text(json.dumps(MEASURED))


def pytest_terminal_summary(terminalreporter):
    rows = list(MEASURED)
    for path in pathlib.Path(os.environ[MEASURED_DIR]).glob("*.json"):
        rows += [tuple(row) for row in json.loads(path.read_text())]
    if rows:
        terminalreporter.section("measured parity (max |difference|)")
        for what, diff in sorted(rows):
            terminalreporter.write_line(f"{what:<70} {diff:.3e}")
