"""Checkpoints in this package's own layout: tensors named by Keras variable paths.

The package's own weight sets (`pretrained`, released by
`scripts/release_weights.py`) are `model.safetensors` files whose tensors are a
model's variables under their `variable.path` (`stem_conv/kernel`,
`head_fc/bias`), in Keras' shapes, so they load without renaming or
transposing. timm's and transformers' names use dots and never a `/`, which
tells the layouts apart. The file's metadata says which model it holds.
"""

import json

import keras
import numpy as np

# The one metadata key (safetensors writes a dict's keys in no fixed order, and a release
# must write the same bytes for the same weights): a JSON object with sorted keys.
METADATA_KEY = "keras_mobilevit"
# Layers of the classifier, left out with include_top=False.
_HEAD_PREFIX = "head_"


def is_keras_layout(tensors):
    """Whether a checkpoint's tensors are named by Keras variable paths."""
    return bool(tensors) and all("/" in name for name in tensors)


def tensors_of(model):
    """`{variable path: numpy array}` of every variable of `model`, as a checkpoint holds them."""
    return {v.path: keras.ops.convert_to_numpy(v.value) for v in model.weights}


def metadata(**fields):
    """The safetensors metadata of a Keras-layout checkpoint: `fields` under one key."""
    return {METADATA_KEY: json.dumps(fields, sort_keys=True)}


def describe(file_metadata):
    """`" (MobileViT_XS weights=flowers102)"` from a file's metadata, or `""`."""
    try:
        fields = json.loads((file_metadata or {})[METADATA_KEY])
    except (KeyError, TypeError, ValueError):
        return ""
    model, weights = fields.get("model"), fields.get("weights")
    if not model:
        return ""
    return f" ({model} weights={weights})" if weights else f" ({model})"


def plan_assignments(model, tensors, source, include_top):
    """Matches a Keras-layout checkpoint to `model`'s variables, checking names and shapes.

    Args:
        model: a built keras_mobilevit model.
        tensors: `{variable path: numpy array}`.
        source: the file and what its metadata says it holds, for messages.
        include_top: whether the classifier is loaded (its tensors are
            skipped otherwise).

    Returns:
        `(variable, value)` pairs covering every variable of `model`.

    Raises:
        ValueError: naming the first tensor that is missing, not floating
            point, of the wrong shape, or left over.
    """
    assignments = []
    for variable in model.weights:
        name = variable.path
        expected = tuple(variable.shape)
        if name not in tensors:
            raise ValueError(
                f"The weights file {source} has no tensor {name!r} of shape {expected}, which "
                f"{model.name} needs: it holds the weights of another MobileViT variant."
            )
        value = np.asarray(tensors[name])
        if not np.issubdtype(value.dtype, np.floating):
            raise ValueError(
                f"Tensor {name!r} in the weights file {source} is {value.dtype}, but weights "
                "must be floating point: the file was not written from a model's weights."
            )
        if tuple(value.shape) != expected:
            if name.startswith(_HEAD_PREFIX):
                raise ValueError(
                    f"The weights file {source} classifies into {value.shape[-1]} classes, and "
                    f"this model into {expected[-1]}: build it with classes={value.shape[-1]}, "
                    "or with include_top=False for its backbone only."
                )
            raise ValueError(
                f"Tensor {name!r} in the weights file {source} has shape {tuple(value.shape)}, "
                f"but {model.name} needs {expected}: the file holds the weights of another "
                "MobileViT variant."
            )
        assignments.append((variable, value.astype(variable.dtype)))
    used = {variable.path for variable in model.weights}
    leftover = [
        name
        for name in tensors
        if name not in used and (include_top or not name.startswith(_HEAD_PREFIX))
    ]
    if leftover:
        raise ValueError(
            f"The weights file {source} has {len(leftover)} tensor(s) {model.name} does not "
            f"have, first {leftover[0]!r} of shape {tuple(np.shape(tensors[leftover[0]]))}: it "
            "holds the weights of another MobileViT variant."
        )
    return assignments
