"""The building blocks of MobileViT and MobileViTV2, as functional Keras graphs.

Each function takes a tensor and a `name` prefix equal to the module path of
the same block in timm with `_` for `.` (`stages_2_1`), and names every layer
with weights after the timm module that holds the same tensors
(`stages_2_1_conv_kxk_conv` for `stages.2.1.conv_kxk.conv`). The weight
converter relies on this: see `keras_mobilevit.convert`.
"""

from keras import layers

from keras_mobilevit.layers import (
    DotProductAttention,
    FastActivation,
    FastBatchNormalization,
    FastConv2D,
    FastDense,
    FastDepthwiseConv2D,
    FastLayerNormalization,
    Fold,
    GroupNorm1,
    ResizeToPatchGrid,
    SeparableSelfAttention,
    Unfold,
)

# PyTorch's BatchNorm defaults, which the reference was trained with: eps 1e-5,
# and momentum 0.1 on the new statistic (Keras counts it on the old one).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9
LN_EPSILON = 1e-5


def make_divisible(value, divisor=8, round_limit=0.9):
    """Rounds channel counts as timm does (nearest multiple, never below 90%)."""
    new_value = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new_value < round_limit * value:
        new_value += divisor
    return new_value


def conv_bn_act(
    x, filters, kernel_size, name, strides=1, dilation=1, depthwise=False, activation="silu"
):
    """Convolution without bias, BatchNorm, optional activation (timm's ConvNormAct).

    Convolutions are padded symmetrically by `kernel_size // 2` pixels (times
    the dilation), as PyTorch pads them: Keras' "same" padding would pad a
    stride-2 convolution on the bottom and right only, and shift every feature
    map by half a pixel.
    """
    padding = kernel_size // 2 * dilation
    # Explicit padding for strided and dilated convolutions: TensorFlow's
    # "same" dilated convolution fails on feature maps of unknown size.
    if padding and (strides > 1 or dilation > 1):
        x = layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
        conv_padding = "valid"
    else:
        conv_padding = "same"
    options = dict(
        strides=strides,
        dilation_rate=dilation,
        padding=conv_padding,
        use_bias=False,
        name=f"{name}_conv",
    )
    if depthwise:
        x = FastDepthwiseConv2D(kernel_size, **options)(x)
    else:
        x = FastConv2D(filters, kernel_size, **options)(x)
    x = FastBatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    if activation:
        x = FastActivation(activation, name=f"{name}_act")(x)
    return x


def inverted_residual(x, filters, strides, expansion, name, dilation=1):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, linear 1x1 project.

    The residual connection exists only where the shape is kept, as in timm's
    `BottleneckBlock(bottle_in=True, linear_out=True)`.
    """
    in_channels = x.shape[-1]
    hidden = make_divisible(in_channels * expansion)
    shortcut = x
    x = conv_bn_act(x, hidden, 1, name=f"{name}_conv1_1x1")
    x = conv_bn_act(
        x, hidden, 3, strides=strides, dilation=dilation, depthwise=True, name=f"{name}_conv2_kxk"
    )
    x = conv_bn_act(x, filters, 1, activation=None, name=f"{name}_conv3_1x1")
    if strides == 1 and in_channels == filters:
        x = layers.Add(name=f"{name}_add")([shortcut, x])
    return x


def transformer_layer(x, dim, num_heads, mlp_ratio, name):
    """Pre-norm transformer encoder layer (timm's vision_transformer `Block`)."""
    y = FastLayerNormalization(epsilon=LN_EPSILON, name=f"{name}_norm1")(x)
    y = FastDense(3 * dim, name=f"{name}_attn_qkv")(y)
    y = DotProductAttention(num_heads, name=f"{name}_attn")(y)
    y = FastDense(dim, name=f"{name}_attn_proj")(y)
    x = layers.Add(name=f"{name}_add1")([x, y])
    y = FastLayerNormalization(epsilon=LN_EPSILON, name=f"{name}_norm2")(x)
    y = FastDense(int(dim * mlp_ratio), name=f"{name}_mlp_fc1")(y)
    y = FastActivation("silu", name=f"{name}_mlp_act")(y)
    y = FastDense(dim, name=f"{name}_mlp_fc2")(y)
    return layers.Add(name=f"{name}_add2")([x, y])


def mobilevit_block(x, transformer_dim, depth, name, patch_size=2, num_heads=4, mlp_ratio=2.0):
    """The MobileViT block: local convolutions, global attention, fusion.

    3x3 conv-BN-SiLU and a 1x1 projection to `transformer_dim` give local
    features; `Unfold` turns them into per-pixel-position sequences of patches,
    `depth` transformer layers and a final LayerNorm mix information across
    patches; `Fold` restores the map, a 1x1 conv-BN-SiLU returns to the input
    width, and a 3x3 conv-BN-SiLU fuses it with the block input (input first).
    """
    channels = x.shape[-1]
    shortcut = x
    x = conv_bn_act(x, channels, 3, name=f"{name}_conv_kxk")
    local = FastConv2D(transformer_dim, 1, use_bias=False, name=f"{name}_conv_1x1")(x)
    x = Unfold(patch_size, name=f"{name}_unfold")(local)
    for i in range(depth):
        x = transformer_layer(
            x, transformer_dim, num_heads, mlp_ratio, name=f"{name}_transformer_{i}"
        )
    x = FastLayerNormalization(epsilon=LN_EPSILON, name=f"{name}_norm")(x)
    x = Fold(patch_size, name=f"{name}_fold")([x, local])
    x = conv_bn_act(x, channels, 1, name=f"{name}_conv_proj")
    x = layers.Concatenate(name=f"{name}_concat")([shortcut, x])
    return conv_bn_act(x, channels, 3, name=f"{name}_conv_fusion")


def linear_transformer_layer(x, dim, mlp_ratio, name):
    """MobileViTV2's pre-norm layer on `(B, P, N, C)` patches (timm's `LinearTransformerBlock`).

    The projections are 1x1 convolutions over the patch grid, as in the
    reference, so checkpoints load without reshaping.
    """
    y = GroupNorm1(name=f"{name}_norm1")(x)
    y = FastConv2D(1 + 2 * dim, 1, name=f"{name}_attn_qkv_proj")(y)
    y = SeparableSelfAttention(name=f"{name}_attn")(y)
    y = FastConv2D(dim, 1, name=f"{name}_attn_out_proj")(y)
    x = layers.Add(name=f"{name}_add1")([x, y])
    y = GroupNorm1(name=f"{name}_norm2")(x)
    y = FastConv2D(int(dim * mlp_ratio), 1, name=f"{name}_mlp_fc1")(y)
    y = FastActivation("silu", name=f"{name}_mlp_act")(y)
    y = FastConv2D(dim, 1, name=f"{name}_mlp_fc2")(y)
    return layers.Add(name=f"{name}_add2")([x, y])


def mobilevitv2_block(x, transformer_dim, depth, name, patch_size=2, mlp_ratio=2.0):
    """The MobileViTV2 block: separable self-attention, no fusion with the input.

    The input is first resized up to a multiple of the patch size (aligned
    corners, as the reference) and stays that size. A depthwise 3x3
    conv-BN-SiLU and a 1x1 projection give local features; `Unfold` keeps
    them as `(B, P, N, C)`; `depth` linear transformer layers and a final
    GroupNorm mix them across patches; `Fold` restores the map and a 1x1
    conv-BN (no activation) returns to the input width.
    """
    channels = x.shape[-1]
    x = ResizeToPatchGrid(patch_size, name=f"{name}_resize")(x)
    x = conv_bn_act(x, channels, 3, depthwise=True, name=f"{name}_conv_kxk")
    local = FastConv2D(transformer_dim, 1, use_bias=False, name=f"{name}_conv_1x1")(x)
    x = Unfold(patch_size, merge_positions=False, name=f"{name}_unfold")(local)
    for i in range(depth):
        x = linear_transformer_layer(x, transformer_dim, mlp_ratio, name=f"{name}_transformer_{i}")
    x = GroupNorm1(name=f"{name}_norm")(x)
    x = Fold(patch_size, name=f"{name}_fold")([x, local])
    return conv_bn_act(x, channels, 1, activation=None, name=f"{name}_conv_proj")
