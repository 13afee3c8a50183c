"""Shared fixtures: reference timm models with random weights, saved as checkpoints.

Keras reads KERAS_BACKEND when first imported; the in-process tests run on the
TensorFlow backend unless the environment says otherwise, and the other
backends are exercised in subprocesses.
"""

import os
import subprocess
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# torchvision (imported by timm) crashes the interpreter when it is imported
# after TensorFlow; importing the reference first avoids it.
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import timm  # noqa: E402, F401

V1_VARIANTS = ["MobileViT_XXS", "MobileViT_XS", "MobileViT_S"]
V2_VARIANTS = [f"MobileViTV2_{w}" for w in ("050", "075", "100", "125", "150", "175", "200")]
# keras_mobilevit builder -> timm model name.
TIMM_NAMES = {
    **{v: v.lower() for v in V1_VARIANTS},
    **{v: v.lower() for v in V2_VARIANTS},
}
TOLERANCE = 1e-4

# Parity results collected during the run and printed in the terminal summary.
MEASURED = []


def randomized_timm_model(timm_name, seed=0):
    """A timm model in eval mode with random weights and random BatchNorm statistics.

    Fresh timm models have running mean 0 and variance 1, which would hide a
    converter that swaps or drops the statistics; randomising every norm's
    affine parameters likewise exposes a swapped gamma and beta.
    """
    import torch

    torch.manual_seed(seed)
    model = timm.create_model(timm_name, pretrained=False).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
            if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    return model


def save_checkpoint(model, path):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return str(path)


def timm_forward(model, images, features=False):
    """Runs a timm model on NHWC images in [0, 1]; returns logits or NHWC features."""
    import torch

    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        if features:
            return model.forward_features(x).numpy().transpose(0, 2, 3, 1)
        return model(x).numpy()


def random_images(batch, height, width, seed=0):
    return np.random.default_rng(seed).random((batch, height, width, 3), dtype=np.float32)


def record(what, max_diff):
    MEASURED.append((what, float(max_diff)))


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


def run_python(code, env=None, timeout=600):
    """Runs `code` in a fresh interpreter; returns the completed process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", code],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def pytest_terminal_summary(terminalreporter):
    if MEASURED:
        terminalreporter.section("measured parity (max |difference|)")
        for what, diff in MEASURED:
            terminalreporter.write_line(f"{what:<70} {diff:.3e}")
