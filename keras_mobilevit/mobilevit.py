"""MobileViT (v1) models for Keras 3.

Reference:
- [MobileViT: Light-weight, General-purpose, and Mobile-friendly Vision
  Transformer](https://arxiv.org/abs/2110.02178) (ICLR 2022)
"""

import collections

import keras
from keras import layers

from keras_mobilevit import weights as weights_lib
from keras_mobilevit.blocks import conv_bn_act, inverted_residual, mobilevit_block

MIN_SIZE = 32

# One entry of `stages`: (output channels, depth, stride, transformer
# (dim, depth) or None). Each stage opens with an inverted residual block; in
# the last three a MobileViT block follows it. Values are timm's `model_cfgs`.
Config = collections.namedtuple(
    "Config", ["stem_channels", "stages", "expansion", "head_channels", "dropout", "hub_repos"]
)

CONFIGS = {
    "MobileViT_XXS": Config(
        stem_channels=16,
        stages=(
            (16, 1, 1, None),
            (24, 3, 2, None),
            (48, 1, 2, (64, 2)),
            (64, 1, 2, (80, 4)),
            (80, 1, 2, (96, 3)),
        ),
        expansion=2,
        head_channels=320,
        dropout=0.1,
        hub_repos={"imagenet": "timm/mobilevit_xxs.cvnets_in1k"},
    ),
    "MobileViT_XS": Config(
        stem_channels=16,
        stages=(
            (32, 1, 1, None),
            (48, 3, 2, None),
            (64, 1, 2, (96, 2)),
            (80, 1, 2, (120, 4)),
            (96, 1, 2, (144, 3)),
        ),
        expansion=4,
        head_channels=384,
        dropout=0.1,
        hub_repos={"imagenet": "timm/mobilevit_xs.cvnets_in1k"},
    ),
    "MobileViT_S": Config(
        stem_channels=16,
        stages=(
            (32, 1, 1, None),
            (64, 3, 2, None),
            (96, 1, 2, (144, 2)),
            (128, 1, 2, (192, 4)),
            (160, 1, 2, (240, 3)),
        ),
        expansion=4,
        head_channels=640,
        dropout=0.1,
        hub_repos={"imagenet": "timm/mobilevit_s.cvnets_in1k"},
    ),
}


BASE_DOCSTRING = """Instantiates the {name} architecture.

Reference:
- [MobileViT: Light-weight, General-purpose, and Mobile-friendly Vision
  Transformer](https://arxiv.org/abs/2110.02178) (ICLR 2022)

The ImageNet-1k weights are the original ml-cvnets ones, as republished by
timm on the Hugging Face Hub (`{repo}`), and are downloaded and cached by
`huggingface_hub` on first use. They keep their upstream licence (Apple's
sample-code licence).

| Model | Params | GMACs (256x256) | Top-1 (256x256, upstream) |
|---|---|---|---|
| MobileViT_XXS | 1,272,024 | 0.42 | 69.0 |
| MobileViT_XS  | 2,317,848 | 1.05 | 74.8 |
| MobileViT_S   | 5,578,632 | 2.03 | 78.4 |

The model accepts any height and width of at least 32 pixels, square or not;
`input_shape=(None, None, 3)` (the default) builds one model for all sizes.
The weights were trained at 256x256, and are evaluated by timm after a bicubic
resize of the short side to 284 and a 256x256 centre crop.

Note: with `include_preprocessing=True` (the default) the model takes RGB
pixels in `[0, 255]` and rescales them inside (so preprocessing is saved with
the model), and `keras_mobilevit.preprocess_input` is a pass-through. With
`include_preprocessing=False` it takes RGB in `[0, 1]`, the reference's
convention. There is no mean/std normalisation.

Args:
    include_top: whether to include the classifier (global average pooling,
        dropout and a dense layer) on top of the network.
    include_preprocessing: whether to include a `Rescaling(1/255)` layer at
        the bottom of the network.
    weights: `None` (random initialisation), `"imagenet"` (ImageNet-1k), a
        path to a Keras `.weights.h5` file or a `.safetensors` file in timm's
        layout, or `"hf://owner/repo"` for a Hub repository that holds a
        `model.safetensors` in timm's layout.
    input_tensor: optional Keras tensor (output of `keras.Input()`) to use as
        the image input of the model.
    input_shape: optional shape tuple `(height, width, 3)`, each side at least
        32 or `None`. Defaults to `(None, None, 3)`.
    pooling: feature pooling when `include_top` is `False`: `None` returns the
        4D output of the last convolution, `"avg"` global average pooling,
        `"max"` global max pooling.
    classes: number of classes, only with `include_top=True` and when no
        `weights` are given (or with weights whose classifier matches).
    classifier_activation: activation of the top layer, a string or callable,
        or `None` to return logits. Ignored unless `include_top=True`.
    name: the name of the model, defaults to `"{name}"`.

Returns:
    A `keras.Model` instance.
"""


def MobileViT(
    config,
    include_top=True,
    include_preprocessing=True,
    weights="imagenet",
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="MobileViT",
):
    """Builds a MobileViT from a `Config`; use the `MobileViT_*` functions."""
    input_shape = _validate_arguments(
        config, include_top, weights, input_tensor, input_shape, pooling, classes
    )
    weights_path = None
    if weights is not None:
        weights_path = weights_lib.resolve(weights, config.hub_repos)

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
    for stage, (filters, depth, strides, transformer) in enumerate(config.stages):
        for block in range(depth):
            x = inverted_residual(
                x,
                filters,
                strides=strides if block == 0 else 1,
                expansion=config.expansion,
                name=f"stages_{stage}_{block}",
            )
        if transformer is not None:
            transformer_dim, transformer_depth = transformer
            x = mobilevit_block(
                x, transformer_dim, transformer_depth, name=f"stages_{stage}_{depth}"
            )
    x = conv_bn_act(x, config.head_channels, 1, name="final_conv")

    if include_top:
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
    model = keras.Model(inputs, x, name=name)

    if weights_path is not None:
        weights_lib.load(model, weights_path, include_top=include_top)
    return model


def _validate_arguments(config, include_top, weights, input_tensor, input_shape, pooling, classes):
    """Checks the builder arguments before any work; returns the input shape."""
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(
            "MobileViT models are built channels-last; set "
            "keras.config.set_image_data_format('channels_last')."
        )
    weights_lib.validate(weights, config.hub_repos)
    if weights in config.hub_repos and include_top and classes != 1000:
        raise ValueError(
            f'With weights="{weights}" and include_top=True, `classes` must be 1000 '
            f"(got classes={classes}). Use include_top=False and add your own head, "
            "or weights=None."
        )
    if not isinstance(classes, int) or classes < 1:
        raise ValueError(f"`classes` must be a positive integer, got {classes!r}.")
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"`pooling` must be None, 'avg' or 'max', got {pooling!r}.")

    if input_shape is None and input_tensor is not None:
        if not keras.backend.is_keras_tensor(input_tensor) and not hasattr(input_tensor, "shape"):
            raise ValueError(f"`input_tensor` must be a Keras tensor, got {type(input_tensor)}.")
        input_shape = tuple(input_tensor.shape[1:])
    if input_shape is None:
        input_shape = (None, None, 3)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"`input_shape` must be (height, width, 3), got {input_shape}.")
    if input_shape[-1] != 3:
        raise ValueError(
            f"MobileViT takes RGB images with 3 channels, got input_shape={input_shape}."
        )
    for side in input_shape[:2]:
        if side is not None and side < MIN_SIZE:
            raise ValueError(
                f"Input height and width must be at least {MIN_SIZE} pixels, "
                f"got input_shape={input_shape}."
            )
    return input_shape


def _builder(variant):
    config = CONFIGS[variant]

    def build(
        include_top=True,
        include_preprocessing=True,
        weights="imagenet",
        input_tensor=None,
        input_shape=None,
        pooling=None,
        classes=1000,
        classifier_activation="softmax",
        name=None,
    ):
        return MobileViT(
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
        )

    build.__name__ = build.__qualname__ = variant
    build.__doc__ = BASE_DOCSTRING.format(name=variant, repo=config.hub_repos["imagenet"])
    return build


MobileViT_XXS = _builder("MobileViT_XXS")
MobileViT_XS = _builder("MobileViT_XS")
MobileViT_S = _builder("MobileViT_S")
