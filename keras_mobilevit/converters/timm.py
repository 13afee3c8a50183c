"""Loading PyTorch-layout checkpoints (timm's `state_dict`) into Keras models.

Every layer with weights in a keras_mobilevit model is named after the timm
module that holds the same tensors, with `_` for `.` (PyTorch, the Keras
backend, forbids dots in names): layer `stages_2_1_conv_kxk_conv` takes
`stages.2.1.conv_kxk.conv.weight`. So the mapping is by name; `.bias`, and
`.running_mean`/`.running_var` for BatchNorm, complete it. Only the
layout differs (PyTorch convolutions are `(out, in, kh, kw)`, Keras' are
`(kh, kw, in, out)`; linear weights are transposed).

Loading is all or nothing: every tensor is looked up and its shape checked
before the first variable is assigned.
"""

import re

import numpy as np
from keras import layers

from keras_mobilevit.layers import GroupNorm1

# Keras variable attribute -> (tensor suffix, axes permutation torch -> Keras).
_CONV = {"kernel": ("weight", (2, 3, 1, 0)), "bias": ("bias", None)}
_DEPTHWISE = {"kernel": ("weight", (2, 3, 0, 1))}
_DENSE = {"kernel": ("weight", (1, 0)), "bias": ("bias", None)}
_NORM = {"gamma": ("weight", None), "beta": ("bias", None)}
_BATCHNORM = {
    **_NORM,
    "moving_mean": ("running_mean", None),
    "moving_variance": ("running_var", None),
}
# DepthwiseConv2D first: match the most specific class.
_LAYOUTS = (
    (layers.DepthwiseConv2D, _DEPTHWISE),
    (layers.Conv2D, _CONV),
    (layers.Dense, _DENSE),
    (layers.BatchNormalization, _BATCHNORM),
    (layers.LayerNormalization, _NORM),
    (GroupNorm1, _NORM),
)
# Bookkeeping buffers with no Keras counterpart.
_IGNORED_SUFFIXES = (".num_batches_tracked",)
# The parts of timm's module paths with an underscore of their own; every other
# underscore in a layer name stands for a dot.
_MODULE_PART = re.compile(
    r"(?:conv[123]?_(?:1x1|kxk)|conv_fusion|conv_proj|final_conv|qkv_proj|out_proj"
    r"|segmentation_head|[^_]+)(?=_|$)"
)


def _layout_for(layer):
    for cls, layout in _LAYOUTS:
        if isinstance(layer, cls):
            return layout
    raise TypeError(
        f"No checkpoint layout known for layer {layer.name!r} ({type(layer).__name__})."
    )


def _variable_attribute(layer, variable):
    for attribute in ("kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance"):
        if getattr(layer, attribute, None) is variable:
            return attribute
    raise TypeError(f"Unexpected variable {variable.path!r} in layer {layer.name!r}.")


def module_path(layer_name):
    """The timm module path a layer is named after: `stem_conv` -> `stem.conv`."""
    return ".".join(_MODULE_PART.findall(layer_name))


def missing_tensor_error(source, name, shape, layer_name, layout="timm's", renamed=False):
    """The error for a tensor `name` of `shape` that layer `layer_name` needs and `source` lacks.

    `renamed`: `name` is timm's, for a file in another `layout` renamed to timm's.
    """
    if renamed:
        name = f"{name!r} (timm's name; the file's were renamed to timm's)"
    else:
        name = repr(name)
    return ValueError(
        f"The weights file {source} has no tensor {name} of shape {shape}, which layer "
        f"{layer_name!r} needs. It is not a checkpoint of this MobileViT variant in {layout} "
        "layout."
    )


def _torch_shape(keras_shape, permutation):
    """The shape a tensor must have in the checkpoint to become `keras_shape`."""
    if permutation is None:
        return tuple(keras_shape)
    return tuple(keras_shape[i] for i in np.argsort(permutation))


def plan_assignments(model, tensors, source, ignore_prefixes=(), source_layout="timm's"):
    """Matches checkpoint tensors to model variables, checking names and shapes.

    Args:
        model: a built keras_mobilevit model.
        tensors: mapping of tensor name to numpy array (timm layout).
        source: the file name, for error messages.
        ignore_prefixes: tensors under these prefixes are not loaded (the
            classifier, for `include_top=False`).
        source_layout: the file's layout before `tensors` were renamed to
            timm's, for error messages.

    Returns:
        A list of `(variable, value)` pairs covering every model variable.

    Raises:
        ValueError: naming the first tensor that is missing, is not floating
            point, has the wrong shape, or is left over, with both shapes.
    """
    # Keras layer name -> checkpoint module path, as the file spells it.
    modules = {}
    for tensor_name in tensors:
        module = tensor_name.rpartition(".")[0]
        modules.setdefault(module.replace(".", "_"), module)
    assignments = []
    used = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        layout = _layout_for(layer)
        for variable in layer.weights:
            suffix, permutation = layout[_variable_attribute(layer, variable)]
            module = modules.get(layer.name) or module_path(layer.name)
            name = f"{module}.{suffix}"
            expected = _torch_shape(tuple(variable.shape), permutation)
            if name not in tensors:
                raise missing_tensor_error(
                    source,
                    name,
                    expected,
                    layer.name,
                    source_layout,
                    renamed=source_layout != "timm's",
                )
            value = np.asarray(tensors[name])
            if not np.issubdtype(value.dtype, np.floating):
                # Cast to float, an integer tensor would load silently as truncated weights.
                raise ValueError(
                    f"Tensor {name!r} in the weights file {source} is {value.dtype}, but weights "
                    "must be floating point (float32, float16): the file was not written from "
                    "a trained model's weights."
                )
            if tuple(value.shape) != expected:
                raise ValueError(
                    f"Tensor {name!r} in the weights file {source} has shape {tuple(value.shape)}, "
                    f"but this model needs {expected}. The file is for another MobileViT "
                    "variant or another number of classes."
                )
            if permutation is not None:
                value = value.transpose(permutation)
            assignments.append((variable, value.astype(variable.dtype)))
            used.add(name)
    leftover = [
        name
        for name in tensors
        if name not in used
        and not name.endswith(_IGNORED_SUFFIXES)
        and not name.startswith(tuple(ignore_prefixes))
    ]
    if leftover:
        raise ValueError(
            f"The weights file {source} has {len(leftover)} tensor(s) this model does not use, "
            f"first {leftover[0]!r} of shape {tuple(np.shape(tensors[leftover[0]]))}. "
            "It is for another MobileViT variant."
        )
    return assignments


def assign(assignments):
    for variable, value in assignments:
        variable.assign(value)
