"""DeepLabV3 semantic segmentation on MobileViT backbones (PASCAL VOC 2012).

Equal to transformers' `MobileViTForSemanticSegmentation` and
`MobileViTV2ForSemanticSegmentation`: the backbone at output stride 16 without
its final 1x1 expansion, then ASPP (a 1x1 branch, three dilated 3x3 branches at
rates 6/12/18 and an image-pooling branch, BatchNorm and ReLU), a 1x1
projection, dropout, and a 1x1 classifier. The weights are Apple's, in
transformers' layout and trained on BGR images; they are converted on load so
that these models take RGB like every keras_mobilevit model.
"""

from keras import layers

from keras_mobilevit import loading, mobilevit, mobilevitv2, pretrained
from keras_mobilevit.blocks import conv_bn_act
from keras_mobilevit.builder import (
    REGISTRY,
    build_model,
    register,
    validate_arguments,
    weight_set_for,
)
from keras_mobilevit.layers import FastConv2D, ResizeLike
from keras_mobilevit.model import MobileViTModel

OUTPUT_STRIDE = 16
ATROUS_RATES = (6, 12, 18)
VOC_CLASSES = 21
BACKBONES = {**mobilevit.CONFIGS, **mobilevitv2.CONFIGS}
# Builder name -> (backbone builder name, ASPP width).
VARIANTS = {
    "MobileViT_XXS_DeepLabV3": ("MobileViT_XXS", 256),
    "MobileViT_XS_DeepLabV3": ("MobileViT_XS", 256),
    "MobileViT_S_DeepLabV3": ("MobileViT_S", 256),
    "MobileViTV2_100_DeepLabV3": ("MobileViTV2_100", 512),
}

BASE_DOCSTRING = """Instantiates DeepLabV3 with a {backbone} backbone, for semantic segmentation.

References:

- [MobileViT](https://arxiv.org/abs/2110.02178) (ICLR 2022) and
  [MobileViTV2](https://arxiv.org/abs/2206.02680); [DeepLabV3](https://arxiv.org/abs/1706.05587)

`weights="pascal_voc"` are Apple's PASCAL VOC 2012 weights from the Hugging
Face Hub (`{repo}`, 21 classes, background first), trained at 512x512 (Apple
evaluates after resizing the short side to 544 and a 512x512 centre crop).
Apple trained on BGR images; the converted model takes RGB. Upstream mIoU:
79.1 for MobileViT-S (paper). The weights keep their upstream licence
(Apple's sample-code licence).

The model takes RGB images of any size of at least 32 pixels, in `[0, 255]`
with `include_preprocessing=True` (the default), in `[0, 1]` without.

Every argument but `weights` is keyword-only.

Args:
    weights: `None`, `"pascal_voc"`, a path (`str` or `pathlib.Path`) to a
        checkpoint (`.safetensors`, PyTorch `.bin` with the `torch` extra, or
        Keras `.weights.h5`), or `"hf://owner/repo"`. Checkpoints may be in
        transformers' or timm's layout.
    input_shape: optional `(height, width, channels)`, each side at least 32
        or `None`; defaults to `(None, None, 3)`. `"pascal_voc"` takes 3
        channels (RGB); with `weights=None` any number does.
    input_tensor: optional Keras tensor to use as the image input.
    include_preprocessing: whether the model rescales `[0, 255]` inputs itself.
    classes: number of classes; `None` (the default) is PASCAL VOC's 21
        (background first), the only count `weights="pascal_voc"` takes.
    upsample: `True` returns logits resized bilinearly to the input size;
        `False` returns them at stride 16.
    name: the name of the model, defaults to `"{name}"`.

Returns:
    A `keras.Model` mapping images `(B, H, W, 3)` to per-pixel class logits
    `(B, H, W, classes)` (or `(B, ceil(H/16), ceil(W/16), classes)`).
"""


def deeplabv3_head(features, image, channels, classes, upsample):
    """ASPP, projection, dropout and classifier (transformers' `MobileViTDeepLabV3`)."""
    name = "segmentation_head_aspp"
    branches = [conv_bn_act(features, channels, 1, activation="relu", name=f"{name}_convs_0")]
    for i, rate in enumerate(ATROUS_RATES, start=1):
        branches.append(
            conv_bn_act(
                features, channels, 3, dilation=rate, activation="relu", name=f"{name}_convs_{i}"
            )
        )
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_convs_4_pool")(features)
    pooled = conv_bn_act(pooled, channels, 1, activation="relu", name=f"{name}_convs_4_conv_1x1")
    branches.append(ResizeLike(name=f"{name}_convs_4_resize")([pooled, features]))
    x = layers.Concatenate(name=f"{name}_concat")(branches)
    x = conv_bn_act(x, channels, 1, activation="relu", name=f"{name}_project")
    x = layers.Dropout(0.1, name=f"{name}_dropout")(x)
    x = layers.SpatialDropout2D(0.1, name="segmentation_head_dropout")(x)
    x = FastConv2D(classes, 1, name="segmentation_head_classifier")(x)
    if upsample:
        x = ResizeLike(name="upsample")([x, image])
    return x


def DeepLabV3(
    variant,
    weights="pascal_voc",
    *,
    input_shape=None,
    input_tensor=None,
    include_preprocessing=True,
    classes=None,
    upsample=True,
    name=None,
):
    """Builds a DeepLabV3 model; use the `*_DeepLabV3` functions."""
    backbone_variant, channels = VARIANTS[variant]
    config = REGISTRY[variant].config
    input_shape, classes = validate_arguments(
        variant, False, weights, input_tensor, input_shape, None, classes, VOC_CLASSES
    )
    if weights == "pascal_voc" and classes != VOC_CLASSES:
        raise ValueError(
            f'weights="pascal_voc" has {VOC_CLASSES} classes, got classes={classes}. '
            "To fine-tune on other classes, build with weights=None, or load the VOC weights "
            "and replace the classifier."
        )
    weights_path = None
    if weights is not None:
        weights_path = loading.resolve(
            weights,
            weight_set_for(variant, weights, input_shape),
            filenames=pretrained.SAFETENSORS_OR_BIN,
        )

    backbone = build_model(
        config,
        include_top=False,
        include_preprocessing=include_preprocessing,
        weights=None,
        input_tensor=input_tensor,
        input_shape=input_shape,
        output_stride=OUTPUT_STRIDE,
        name=f"{backbone_variant}_backbone",
    )
    image = backbone.input
    logits = deeplabv3_head(backbone.output, image, channels, classes, upsample)
    model = MobileViTModel(image, logits, name=name or variant)
    if weights_path is not None:
        loading.load(model, weights_path, include_top=True)
    return model


def _builder(variant):
    def build(
        weights="pascal_voc",
        *,
        input_shape=None,
        input_tensor=None,
        include_preprocessing=True,
        classes=None,
        upsample=True,
        name=None,
    ):
        return DeepLabV3(
            variant,
            weights=weights,
            input_shape=input_shape,
            input_tensor=input_tensor,
            include_preprocessing=include_preprocessing,
            classes=classes,
            upsample=upsample,
            name=name,
        )

    backbone_variant, _ = VARIANTS[variant]
    repo = pretrained.find(variant, "pascal_voc").repo
    # The segmentation backbones have no final 1x1 expansion (transformers'
    # `expand_output=False`).
    config = BACKBONES[backbone_variant]._replace(head_channels=None)
    docstring = BASE_DOCSTRING.format(backbone=backbone_variant, repo=repo, name=variant)
    return register(build, variant, config, "segmentation", docstring)


MobileViT_XXS_DeepLabV3 = _builder("MobileViT_XXS_DeepLabV3")
MobileViT_XS_DeepLabV3 = _builder("MobileViT_XS_DeepLabV3")
MobileViT_S_DeepLabV3 = _builder("MobileViT_S_DeepLabV3")
MobileViTV2_100_DeepLabV3 = _builder("MobileViTV2_100_DeepLabV3")
