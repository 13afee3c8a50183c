"""Backend kernels: faster routes to what a layer computes, each gated to where it was measured.

The layers in `keras_mobilevit.layers` are Keras layers; where one of them has
a faster route on the running backend, its `call` asks `kernel_for` and runs
what it returns, or Keras' own `call` when it returns `None`. Each backend's
kernels live in the module of that name (`tensorflow.py`, `jax.py`,
`torch.py`), which alone may import its backend's library, and each kernel
states the condition it was measured under. docs/performance.md#backend-kernels
has the measurements.

One switch turns every kernel off, `MobileViTModel`'s direct inference path
included: the environment variable `KERAS_MOBILEVIT_FAST_PATHS=0`, read once
here, or `set_fast_paths(False)`.
"""

import dataclasses
import functools
import importlib
import os
from collections.abc import Callable

import keras

ENVIRONMENT_VARIABLE = "KERAS_MOBILEVIT_FAST_PATHS"
_OFF = ("0", "false", "no", "off")

_enabled = os.environ.get(ENVIRONMENT_VARIABLE, "1").strip().lower() not in _OFF


def fast_paths_enabled():
    """Whether layers may run on the backend kernels (see `set_fast_paths`)."""
    return _enabled


def set_fast_paths(enabled):
    """Sends every layer to the backend kernels (`True`, the default) or to Keras' own `call`.

    The kernels compute what Keras does, to float32 rounding; turning them off
    is for comparing against Keras or ruling them out. Functions that
    TensorFlow or JAX already traced keep what they traced: set this before
    building or calling the model.

    Args:
        enabled: `True` for the kernels, `False` for Keras' paths only.
    """
    global _enabled
    _enabled = bool(enabled)


@dataclasses.dataclass(frozen=True)
class Kernel:
    """A faster route to a layer's output, and the condition under which it is taken.

    Attributes:
        applies: `(layer, inputs) -> bool`, the condition it was measured under.
        compute: `(layer, inputs) -> outputs`, what the layer's `call` returns.
    """

    applies: Callable
    compute: Callable


def kernel_for(op, layer, inputs):
    """The `compute` of the first kernel for `op` that applies, or `None` for Keras' path.

    Args:
        op: the operation's name in the backend module's `KERNELS` table
            (`"conv2d"`, `"depthwise_conv2d"`, `"dense"`, `"layer_norm"`,
            `"attention"`).
        layer: the layer asking.
        inputs: its inputs, as `call` received them.
    """
    if not _enabled:
        return None
    for kernel in _kernels(keras.backend.backend()).get(op, ()):
        if kernel.applies(layer, inputs):
            return kernel.compute
    return None


def run_model(model, inputs, training):
    """Runs a functional model's inference by the backend's direct path, or returns `None`.

    `None` where the backend has no such path or it does not apply to this
    call; the model then takes Keras' path. PyTorch only: see
    `keras_mobilevit.kernels.torch.run_model`.
    """
    if not _enabled:
        return None
    run = _backend_module(keras.backend.backend()).get("run_model")
    return None if run is None else run(model, inputs, training)


def _kernels(backend):
    return _backend_module(backend).get("KERNELS", {})


@functools.cache
def _backend_module(backend):
    """The public names of `keras_mobilevit.kernels.<backend>`; empty for other backends."""
    name = f"{__name__}.{backend}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name != name:
            raise
        return {}
    return vars(module)
