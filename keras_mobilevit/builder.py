"""Assembling a MobileViT-family model from a configuration.

`mobilevit.py` (v1) and `mobilevitv2.py` (v2) hold the configurations and the
public builders; this module holds what they share: argument validation,
weights resolution, the stem/stages/head graph, and the builder factory.
"""

import collections
import dataclasses
import typing

import keras
import numpy as np
from keras import layers

from keras_mobilevit import loading, pretrained
from keras_mobilevit.blocks import (
    conv_bn_act,
    inverted_residual,
    mobilevit_block,
    mobilevitv2_block,
)
from keras_mobilevit.model import MIN_SIZE, MobileViTModel, too_small


class Stage(typing.NamedTuple):
    """One stage: inverted residual blocks, then optionally a MobileViT(V2) block."""

    channels: int  # output channels
    depth: int  # inverted residual blocks
    stride: int  # the first block's
    transformer_dim: int | None = None  # width of the MobileViT block that follows, if any
    transformer_depth: int = 0  # its transformer layers


Config = collections.namedtuple(
    "Config",
    [
        "stem_channels",  # width of the 3x3/2 stem convolution
        "stages",  # a `Stage` each
        "expansion",  # inverted residual expansion ratio
        "block",  # "mobilevit" (v1) or "mobilevitv2"
        "head_channels",  # width of the final 1x1 conv, or None for none
        "dropout",  # before the classifier, training only
    ],
)

_BLOCKS = {"mobilevit": mobilevit_block, "mobilevitv2": mobilevitv2_block}

# How a builder's docstring names the package's own Flowers-102 weights, where it has them.
FLOWERS102_DOC = (
    '`"flowers102"` (Oxford Flowers-102: `"imagenet"` fine-tuned by this package\'s recipe, '
    "downloaded at the commit and SHA-256 its release pinned; until a release has, it raises "
    "`WeightsUnavailableError` with the command that makes it: see docs/releasing.md)"
)

# The part of every builder's docstring that does not depend on the family;
# `{weights}` is the family's description of its weights sets.
COMMON_DOCSTRING = """Note: with `include_preprocessing=True` (the default) the model takes RGB
pixels in `[0, 255]` and rescales them inside (so preprocessing is saved with
the model), and `keras_mobilevit.preprocess_input` is a pass-through. With
`include_preprocessing=False` it takes RGB in `[0, 1]`, the reference's
convention. There is no mean/std normalisation.

Every argument but `include_top` is keyword-only.

Args:
    include_top: whether to include the classifier (global average pooling,
        dropout and a dense layer) on top of the network.
    include_preprocessing: whether to include a `Rescaling(1/255)` layer at
        the bottom of the network.
    weights: `None` (random initialisation),
        {weights},
        a path (`str` or `pathlib.Path`) to a Keras `.weights.h5` file, a
        `.safetensors` file in timm's layout or the package's own (the
        `model.safetensors` of its `"flowers102"` repositories; or a PyTorch
        `.bin`, with the `torch` extra) or a `.keras` model of the same
        variant (a fine-tuned one: its weights are taken layer by layer, by
        name), or
        `"hf://owner/repo"` for a Hub repository that holds a
        `model.safetensors` in timm's layout or a Keras model saved with
        `model.save("hf://owner/repo")`.
    input_tensor: optional Keras tensor (output of `keras.Input()`) to use as
        the image input of the model.
    input_shape: optional shape tuple `(height, width, channels)`, each side
        at least 32 or `None` (any size). Defaults to `(None, None, 3)`.
        Pretrained weights take 3 channels (RGB); with `weights=None` any
        number does (1 for greyscale, say).
    pooling: feature pooling when `include_top` is `False`: `None` returns the
        4D output of the last layer, `"avg"` global average pooling, `"max"`
        global max pooling.
    classes: number of classes, only with `include_top=True`. `None` (the
        default) is the class count of the weight set `weights` names (1000
        for `"imagenet"`, 102 for `"flowers102"`), which is the only value
        those weights take, and 1000 otherwise; any count with
        `weights=None`, or with a file or repository whose classifier has it.
    classifier_activation: activation of the top layer, a string or callable,
        or `None` to return logits. Ignored unless `include_top=True`.
    name: the name of the model, defaults to `"{name}"`.
    feature_extractor: with `include_top=False`, return a dict of feature
        maps instead: `"P1"` (stride 2) to `"P5"` (stride 32, or
        `output_stride`), for segmentation and detection heads. `"P5"` is
        what `include_top=False` returns.
    output_stride: 32 (default), 16 or 8. Below 32, the last stages keep
        their resolution and use dilated convolutions instead, as the
        reference DeepLabV3 backbones do. Pretrained weights load into any
        output stride.

Returns:
    A `keras.Model` instance.
"""


@dataclasses.dataclass(frozen=True)
class Variant:
    """A registered model: its public builder, its architecture, what it computes."""

    builder: typing.Callable
    config: Config
    task: str  # "classification" or "segmentation"


# Every model of the package, by builder name (filled by `register`).
REGISTRY = {}


def register(build, variant, config, task, docstring):
    """Names `build` after `variant`, gives it `docstring`, and registers it; returns it."""
    build.__name__ = build.__qualname__ = variant
    # Where users import it from: pickle and the API reference (griffe) look it up there.
    build.__module__ = "keras_mobilevit"
    build.__doc__ = docstring
    REGISTRY[variant] = Variant(build, config, task)
    return build


def build_model(
    config,
    include_top=True,
    include_preprocessing=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=None,
    classifier_activation="softmax",
    name="MobileViT",
    feature_extractor=False,
    output_stride=32,
    variant=None,
):
    """Builds a model from a `Config`; use the public builders instead.

    `variant` names the model in the table of weight sets (`pretrained`).
    """
    input_shape, classes = validate_arguments(
        variant, include_top, weights, input_tensor, input_shape, pooling, classes
    )
    _validate_backbone_arguments(include_top, pooling, feature_extractor, output_stride)
    weights_path = None
    if weights is not None:
        weights_path = loading.resolve(weights, weight_set_for(variant, weights, input_shape))

    if input_tensor is None:
        inputs = layers.Input(shape=input_shape, name="image")
    elif keras.backend.is_keras_tensor(input_tensor):
        inputs = input_tensor
    else:
        inputs = layers.Input(tensor=input_tensor, shape=input_shape, name="image")

    x = inputs
    if include_preprocessing:
        x = layers.Rescaling(1.0 / 255, name="rescaling")(x)
    x = conv_bn_act(x, config.stem_channels, 3, strides=2, name="stem")
    x, features = _stages(x, config, output_stride)

    if feature_extractor:
        features[f"P{len(features) + 1}"] = x
        x = features
    elif include_top:
        x = layers.GlobalAveragePooling2D(name="head_global_pool")(x)
        x = layers.Dropout(config.dropout, name="head_drop")(x)
        x = layers.Dense(classes, name="head_fc")(x)
        if classifier_activation is not None:
            x = layers.Activation(classifier_activation, dtype="float32", name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="head_global_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="head_global_pool")(x)

    if input_tensor is not None:
        inputs = keras.utils.get_source_inputs(input_tensor)
        if len(inputs) == 1:
            # One input, not a list of one: called on an array, Keras would warn otherwise.
            inputs = inputs[0]
    model = MobileViTModel(inputs, x, name=name)

    if weights_path is not None:
        loading.load(model, weights_path, include_top=include_top)
    return model


def _stages(x, config, output_stride):
    """The five stages and the final 1x1 conv.

    Returns the output and the feature maps of the first four stages, keyed
    `"P1"` (stride 2) to `"P4"` (stride 16). Past `output_stride`, stages keep
    their resolution: their first block has stride 1, and later layers are
    dilated instead, following transformers' DeepLabV3 backbones (where the
    opening inverted residual of a stage takes half the stage's dilation).
    """
    stride, dilation = 2, 1
    features = {}
    transformer_block = _BLOCKS[config.block]
    for stage, spec in enumerate(config.stages):
        filters, depth, strides = spec.channels, spec.depth, spec.stride
        block_dilation = dilation
        if strides > 1 and stride >= output_stride:
            dilation *= strides
            strides = 1
        else:
            stride *= strides
        for block in range(depth):
            x = inverted_residual(
                x,
                filters,
                strides=strides if block == 0 else 1,
                expansion=config.expansion,
                dilation=block_dilation if block == 0 else dilation,
                name=f"stages_{stage}_{block}",
            )
        if spec.transformer_dim is not None:
            x = transformer_block(
                x, spec.transformer_dim, spec.transformer_depth, name=f"stages_{stage}_{depth}"
            )
        if stage < len(config.stages) - 1:
            features[f"P{stage + 1}"] = x
    if config.head_channels:
        x = conv_bn_act(x, config.head_channels, 1, name="final_conv")
    return x, features


def weight_set_for(variant, weights, input_shape):
    """The `pretrained.WeightSet` that `weights` names for this model and input, or `None`."""
    if weights in pretrained.names(variant):
        return pretrained.find(variant, weights, input_shape)
    return None


def _validate_backbone_arguments(include_top, pooling, feature_extractor, output_stride):
    if output_stride not in (8, 16, 32):
        raise ValueError(f"`output_stride` must be 8, 16 or 32, got {output_stride!r}.")
    if feature_extractor and include_top:
        raise ValueError(
            "feature_extractor=True returns feature maps, not class scores: "
            "pass include_top=False with it."
        )
    if feature_extractor and pooling is not None:
        raise ValueError(
            "feature_extractor=True returns un-pooled feature maps; leave `pooling` as None."
        )


def validate_arguments(
    variant, include_top, weights, input_tensor, input_shape, pooling, classes, default_classes=1000
):
    """Checks the builder arguments before any work; returns the input shape and `classes`.

    `classes=None` is the class count of the weight set `weights` names, or
    `default_classes` for any other `weights`.
    """
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(
            "MobileViT models are built channels-last; set "
            "keras.config.set_image_data_format('channels_last')."
        )
    _refuse_shape_by_position("weights", weights)
    _refuse_shape_by_position("include_top", include_top)
    if not isinstance(include_top, (bool, np.bool_)):
        raise ValueError(f"`include_top` must be True or False, got {include_top!r}.")
    if classes is not None and not _is_positive_int(classes):
        raise ValueError(f"`classes` must be a positive integer, got {classes!r}.")
    names = pretrained.names(variant)
    if isinstance(weights, str) and weights not in names:
        having = pretrained.models_with(weights)
        if having:
            raise ValueError(
                f"weights={weights!r} exist only for {', '.join(having)}. Valid values for this "
                f"model: {', '.join(repr(k) for k in [None, *names])}, a path, or "
                "'hf://owner/repo'."
            )
    loading.validate(weights, names)
    if classes is None:
        classes = pretrained.find(variant, weights).classes if weights in names else default_classes
    classes = int(classes)
    if weights in names and include_top:
        expected = pretrained.find(variant, weights).classes
        if classes != expected:
            raise ValueError(
                f'With weights="{weights}" and include_top=True, `classes` must be {expected} '
                f"(got classes={classes}). Use include_top=False and add your own head, "
                "or weights=None."
            )
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"`pooling` must be None, 'avg' or 'max', got {pooling!r}.")

    tensor_shape = None
    if input_tensor is not None:
        if not keras.backend.is_keras_tensor(input_tensor) and not hasattr(input_tensor, "shape"):
            raise ValueError(f"`input_tensor` must be a Keras tensor, got {type(input_tensor)}.")
        tensor_shape = _image_shape(tuple(input_tensor.shape[1:]), "input_tensor.shape[1:]")
    if input_shape is None:
        input_shape = tensor_shape or (None, None, 3)
    input_shape = _image_shape(input_shape, "input_shape")
    if tensor_shape is not None and not all(
        None in pair or pair[0] == pair[1] for pair in zip(input_shape, tensor_shape, strict=True)
    ):
        raise ValueError(
            f"input_shape={input_shape} does not match the shape of `input_tensor`, "
            f"{tuple(input_tensor.shape)}: pass one of them, or make them agree."
        )
    if weights in names and input_shape[-1] != 3:
        raise ValueError(
            f"weights={weights!r} take RGB images, 3 channels; got input_shape={input_shape}. "
            "Use weights=None for other channel counts."
        )
    return input_shape, classes


def _refuse_shape_by_position(name, value):
    # What `MobileViT_XS((224, 224, 3))` gives: the shape lands in the first argument.
    if isinstance(value, (tuple, list)):
        raise ValueError(
            f"`{name}` got {value!r}, which looks like an input shape: pass it by name, "
            f"input_shape={tuple(value)!r} (the builders take only their first argument by "
            "position)."
        )


def _image_shape(shape, what):
    """`shape` as `(height, width, channels)` of Python ints or `None`, or a `ValueError`."""
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__") or len(shape) != 3:
        raise ValueError(f"{what} must be (height, width, channels), got {shape!r}.")
    if not all(d is None or _is_positive_int(d) for d in shape) or shape[-1] is None:
        raise ValueError(
            f"{what} must be (height, width, channels) of positive integers, height and width "
            f"also None (any size), got {shape!r}."
        )
    shape = tuple(None if d is None else int(d) for d in shape)
    if any(side is not None and side < MIN_SIZE for side in shape[:2]):
        raise too_small(f"{what}={shape}")
    return shape


def _is_positive_int(value):
    # numpy integers are welcome; bools, though ints to Python, are a mistake here.
    is_int = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    return is_int and value > 0


def make_builder(variant, config, description, weights_doc):
    """A public builder function for one variant, registered under its name.

    Its docstring is `description` followed by `COMMON_DOCSTRING`.
    """

    def build(
        include_top=True,
        *,
        include_preprocessing=True,
        weights="imagenet",
        input_tensor=None,
        input_shape=None,
        pooling=None,
        classes=None,
        classifier_activation="softmax",
        name=None,
        feature_extractor=False,
        output_stride=32,
    ):
        return build_model(
            config,
            include_top=include_top,
            include_preprocessing=include_preprocessing,
            weights=weights,
            input_tensor=input_tensor,
            input_shape=input_shape,
            pooling=pooling,
            classes=classes,
            classifier_activation=classifier_activation,
            name=name or variant,
            feature_extractor=feature_extractor,
            output_stride=output_stride,
            variant=variant,
        )

    docstring = description + COMMON_DOCSTRING.format(weights=weights_doc, name=variant)
    return register(build, variant, config, "classification", docstring)
