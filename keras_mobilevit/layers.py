"""The MobileViT-specific Keras layers.

The layers with weights (convolutions, BatchNorm, LayerNorm, dense
projections) are Keras layers or thin subclasses of them, named after the
module path of the reference implementation (timm), so that converting a
checkpoint is a lookup by name. The layers here hold only what Keras does not
have: patch unfold/fold and resizing, the two attention cores (weightless; their
projections stay ordinary dense layers), GroupNorm with one group, and
drop-in subclasses of Keras' `Conv2D`, `DepthwiseConv2D`, `Dense` and
`LayerNormalization` (same weights and configuration) that compute the same
thing on paths each backend runs faster.
"""

import functools
import warnings

import keras
from keras import ops


def _patch_grid(height, width, patch_size):
    """Number of patches along each axis, rounding partial patches up."""
    return (height + patch_size - 1) // patch_size, (width + patch_size - 1) // patch_size


def _source_indices(in_size, out_size, align_corners):
    """Neighbours and weights of bilinear resizing along one axis.

    PyTorch's conventions, no antialiasing: with `align_corners=False`,
    half-pixel centres clamped at the border (how MobileViT resizes feature
    maps around its attention); with `True`, corner pixels map onto corner
    pixels (how MobileViTV2 resizes its block inputs).
    """
    in_float = ops.cast(in_size, "float32")
    out_float = ops.cast(out_size, "float32")
    positions = ops.cast(ops.arange(out_size), "float32")
    if align_corners:
        scale = ops.where(out_float > 1, (in_float - 1) / ops.maximum(out_float - 1, 1), 0.0)
        source = positions * scale
    else:
        source = ops.maximum((positions + 0.5) * (in_float / out_float) - 0.5, 0.0)
    lower = ops.cast(ops.floor(source), "int32")
    upper = ops.minimum(lower + 1, in_size - 1)
    return lower, upper, source - ops.cast(lower, "float32")


def resize_bilinear(x, height, width, align_corners=False):
    """Bilinear resize of a `(B, H, W, C)` map; sizes may be symbolic tensors.

    Written with `keras.ops` rather than `keras.ops.image.resize`, which needs
    sizes known when the graph is built.
    """
    in_height, in_width = ops.shape(x)[1], ops.shape(x)[2]
    for axis, in_size, out_size in ((1, in_height, height), (2, in_width, width)):
        lower, upper, weight = _source_indices(in_size, out_size, align_corners)
        weight = ops.cast(weight, x.dtype)
        weight = ops.reshape(weight, (1, -1, 1, 1) if axis == 1 else (1, 1, -1, 1))
        x_lower = ops.take(x, lower, axis=axis)
        x = x_lower + (ops.take(x, upper, axis=axis) - x_lower) * weight
    return x


def _resize_if_needed(x, height, width, align_corners=False):
    """Resizes to `(height, width)`, skipping the work when sizes already match."""
    in_height, in_width = ops.shape(x)[1], ops.shape(x)[2]
    sizes = (in_height, in_width, height, width)
    if all(isinstance(s, int) for s in sizes):
        if (in_height, in_width) == (height, width):
            return x
        return resize_bilinear(x, height, width, align_corners)
    same = ops.logical_and(ops.equal(in_height, height), ops.equal(in_width, width))
    return ops.cond(same, lambda: x, lambda: resize_bilinear(x, height, width, align_corners))


@keras.saving.register_keras_serializable(package="keras_mobilevit")
class Unfold(keras.layers.Layer):
    """Splits a feature map into sequences of patches, one per pixel position.

    A `(B, H, W, C)` map becomes `(B * p * p, N, C)`: for each of the `p * p`
    pixel positions inside a patch, the sequence of that pixel across all `N`
    patches. Attention then runs across patches, separately for each position,
    as in the reference (a plain reshape would attend over all pixels instead).
    With `merge_positions=False` the positions keep an axis of their own,
    `(B, p * p, N, C)`, for MobileViTV2, whose norms span a whole sample.

    When `H` or `W` is not a multiple of `patch_size`, the map is first resized
    bilinearly up to the next multiple, as the reference does; `Fold` undoes it.
    Only 4-D transposes are used, which every runtime (LiteRT included) supports.
    """

    def __init__(self, patch_size=2, merge_positions=True, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = int(patch_size)
        self.merge_positions = bool(merge_positions)

    def call(self, x):
        p = self.patch_size
        _, height, width, channels = ops.shape(x)
        grid_h, grid_w = _patch_grid(height, width, p)
        x = _resize_if_needed(x, grid_h * p, grid_w * p)
        # (B, nh, ph, nw*pw*C) -> (B, ph, nh, nw*pw*C)
        x = ops.reshape(x, (-1, grid_h, p, grid_w * p * channels))
        x = ops.transpose(x, (0, 2, 1, 3))
        # (B*ph, nh*nw, pw, C) -> (B*ph, pw, N, C)
        x = ops.reshape(x, (-1, grid_h * grid_w, p, channels))
        x = ops.transpose(x, (0, 2, 1, 3))
        if self.merge_positions:
            return ops.reshape(x, (-1, grid_h * grid_w, channels))
        return ops.reshape(x, (-1, p * p, grid_h * grid_w, channels))

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        p = self.patch_size
        num_patches = None
        if height is not None and width is not None:
            grid_h, grid_w = _patch_grid(height, width, p)
            num_patches = grid_h * grid_w
        if not self.merge_positions:
            return (batch, p * p, num_patches, channels)
        batch = None if batch is None else batch * p * p
        return (batch, num_patches, channels)

    def get_config(self):
        return {
            **super().get_config(),
            "patch_size": self.patch_size,
            "merge_positions": self.merge_positions,
        }


@keras.saving.register_keras_serializable(package="keras_mobilevit")
class Fold(keras.layers.Layer):
    """Inverse of `Unfold`: patch sequences back to a `(B, H, W, C)` map.

    Called on `[patches, reference]`, where `reference` is the feature map that
    was unfolded; its height and width give the output size (needed when the
    input size is only known at run time). Takes either layout of `Unfold`.
    """

    def __init__(self, patch_size=2, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = int(patch_size)

    def call(self, inputs):
        x, reference = inputs
        p = self.patch_size
        _, height, width, _ = ops.shape(reference)
        channels = ops.shape(x)[-1]
        grid_h, grid_w = _patch_grid(height, width, p)
        # (B*ph, pw, N, C) -> (B*ph, N, pw, C)
        x = ops.reshape(x, (-1, p, grid_h * grid_w, channels))
        x = ops.transpose(x, (0, 2, 1, 3))
        # (B, ph, nh, nw*pw*C) -> (B, nh, ph, nw*pw*C)
        x = ops.reshape(x, (-1, p, grid_h, grid_w * p * channels))
        x = ops.transpose(x, (0, 2, 1, 3))
        x = ops.reshape(x, (-1, grid_h * p, grid_w * p, channels))
        x = _resize_if_needed(x, height, width)
        return x

    def compute_output_shape(self, input_shapes):
        patches_shape, reference_shape = input_shapes
        return (*reference_shape[:3], patches_shape[-1])

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size}


@keras.saving.register_keras_serializable(package="keras_mobilevit")
class MultiHeadSelfAttention(keras.layers.Layer):
    """Scaled dot-product attention over fused query/key/value projections.

    Takes the output of one `Dense(3 * dim)` (the reference's `qkv` linear) of
    shape `(B, N, 3 * dim)` and returns the heads concatenated, `(B, N, dim)`,
    ready for the output projection. It holds no weights, so the projections
    stay ordinary `Dense` layers that map one to one onto the checkpoint.

    The queries are scaled by `scale`, by default `head_dim ** -0.5`;
    `optimize_for_inference` moves that factor into the projection's weights
    and sets `scale=1`, which skips the multiplication.
    """

    def __init__(self, num_heads, scale=None, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.scale = None if scale is None else float(scale)

    def query_scale(self, qkv_channels):
        """The factor the queries are multiplied by, for a `qkv` of that many channels."""
        if self.scale is not None:
            return self.scale
        return (qkv_channels // 3 // self.num_heads) ** -0.5

    def call(self, qkv):
        dim = qkv.shape[-1] // 3
        head_dim = dim // self.num_heads
        sequence_length = ops.shape(qkv)[1]
        scale = self.query_scale(qkv.shape[-1])

        if keras.backend.backend() == "torch":
            # PyTorch's fused attention kernel: 2.7x faster than the matrix
            # products and softmax below for MobileViT_S's 32x32 stage at batch
            # 16, which run there on MKL. It reads the heads in place.
            qkv = ops.reshape(qkv, (-1, sequence_length, 3 * self.num_heads, head_dim))
            query, key, value = ops.split(qkv, 3, axis=2)
            x = ops.dot_product_attention(query, key, value, scale=scale)
            return ops.reshape(x, (-1, sequence_length, dim))

        # One transpose for the three, heads first: `(3 * heads, B, N, head_dim)`.
        # Splitting the outermost axis then copies nothing (TensorFlow and
        # PyTorch both return views), where splitting the channels first and
        # transposing each of query, key and value made four copies.
        qkv = ops.reshape(qkv, (-1, sequence_length, 3 * self.num_heads, head_dim))
        qkv = ops.transpose(qkv, (2, 0, 1, 3))
        query, key, value = ops.split(qkv, 3, axis=0)
        if scale != 1.0:
            query = query * ops.cast(scale, query.dtype)
        scores = ops.matmul(query, ops.transpose(key, (0, 1, 3, 2)))
        with warnings.catch_warnings():
            # A feature map of one patch has sequences of length 1, where
            # Keras warns that softmax is constant; that is correct here.
            warnings.filterwarnings("ignore", message="You are using a softmax over axis")
            weights = ops.softmax(scores, axis=-1)
        x = ops.matmul(weights, value)  # (heads, B, N, head_dim)
        x = ops.transpose(x, (1, 2, 0, 3))
        return ops.reshape(x, (-1, sequence_length, dim))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] // 3)

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "scale": self.scale}


@keras.saving.register_keras_serializable(package="keras_mobilevit")
class ResizeToPatchGrid(keras.layers.Layer):
    """Resizes a feature map up to the next multiple of the patch size.

    MobileViTV2 does this at the input of each of its blocks, bilinearly with
    aligned corners as in the reference, and keeps the larger size after the
    block (MobileViT v1 instead resizes back; see `Unfold`). Sizes that the
    patch size divides pass through untouched.
    """

    def __init__(self, patch_size=2, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = int(patch_size)

    def call(self, x):
        p = self.patch_size
        _, height, width, _ = ops.shape(x)
        grid_h, grid_w = _patch_grid(height, width, p)
        return _resize_if_needed(x, grid_h * p, grid_w * p, align_corners=True)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        p = self.patch_size
        height = None if height is None else -(-height // p) * p
        width = None if width is None else -(-width // p) * p
        return (batch, height, width, channels)

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size}


def _standardized(x, axes, epsilon):
    """`x` less its mean, over its standard deviation along `axes`, in float32.

    Float32 even under mixed precision, as Keras' norms do. Centring once and
    scaling after takes fewer passes over the tensor than Keras' formula.
    """
    x = ops.cast(x, "float32")
    centered = x - ops.mean(x, axis=axes, keepdims=True)
    variance = ops.mean(ops.square(centered), axis=axes, keepdims=True)
    return centered * ops.rsqrt(variance + epsilon)


@keras.saving.register_keras_serializable(package="keras_mobilevit")
class GroupNorm1(keras.layers.Layer):
    """Group normalisation with a single group (timm's `GroupNorm1`).

    Normalises each sample over all its axes at once (for MobileViTV2's
    `(B, P, N, C)` patches: every pixel position, patch and channel), then
    scales and shifts per channel. Written with means and a reciprocal square
    root rather than `keras.layers.GroupNormalization`, whose 5-D reshape
    lowers to ops LiteRT does not have built in.
    """

    def __init__(self, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        channels = input_shape[-1]
        self.gamma = self.add_weight(name="gamma", shape=(channels,), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(channels,), initializer="zeros")

    def call(self, x):
        normalized = _standardized(x, tuple(range(1, len(x.shape))), self.epsilon)
        gamma = ops.cast(self.gamma, "float32")
        beta = ops.cast(self.beta, "float32")
        return ops.cast(normalized * gamma + beta, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="keras_mobilevit")
class LayerNormalization(keras.layers.LayerNormalization):
    """`keras.layers.LayerNormalization`, in fewer passes over the tokens on TensorFlow.

    Keras multiplies the per-token reciprocal standard deviation by the
    per-channel scale before it meets the tokens, which builds a third
    full-size tensor; centring first and scaling after costs 25% less time on
    MobileViT's token maps. Same weights, configuration and results (to
    float32 rounding) as the Keras layer.
    """

    def call(self, inputs):
        rank = len(inputs.shape)
        last_axis_only = [axis % rank for axis in self.axis] == [rank - 1]
        if keras.backend.backend() != "tensorflow" or self.rms_scaling or not last_axis_only:
            return super().call(inputs)
        outputs = _standardized(inputs, -1, self.epsilon)
        if self.scale:
            outputs = outputs * ops.cast(self.gamma, "float32")
        if self.center:
            outputs = outputs + ops.cast(self.beta, "float32")
        return ops.cast(outputs, self.compute_dtype)


@keras.saving.register_keras_serializable(package="keras_mobilevit")
class SeparableSelfAttention(keras.layers.Layer):
    """MobileViTV2's separable (linear-cost) self-attention, weights excluded.

    Takes the output of the `qkv_proj` 1x1 convolution on `(B, P, N, C)`
    patches, `(B, P, N, 1 + 2 * dim)`: one context score per patch, keys and
    values. Scores are softmaxed over the `N` patches, the keys summed with
    those weights into one context vector per pixel position, and the ReLU'd
    values scaled by it: `(B, P, N, dim)`, cost linear in `N`.
    """

    def call(self, qkv):
        dim = (qkv.shape[-1] - 1) // 2
        query, key, value = ops.split(qkv, [1, 1 + dim], axis=-1)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="You are using a softmax over axis")
            scores = ops.softmax(query, axis=2)
        context = ops.sum(key * scores, axis=2, keepdims=True)
        return ops.relu(value) * context

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], (input_shape[-1] - 1) // 2)


@keras.saving.register_keras_serializable(package="keras_mobilevit")
class ResizeLike(keras.layers.Layer):
    """Bilinear resize of `x` to the height and width of `reference`.

    Called on `[x, reference]`. PyTorch's `align_corners=False` convention;
    sizes may be known only at run time. A 1x1 map is broadcast.
    """

    def call(self, inputs):
        x, reference = inputs
        height, width = ops.shape(reference)[1], ops.shape(reference)[2]
        if x.shape[1] == 1 and x.shape[2] == 1:
            # Interpolating a single pixel is a broadcast. It is written as an
            # addition to the reference's values rather than with its shape:
            # TensorFlow's constant folding miscomputes that shape in DeepLabV3
            # graphs traced with a partly known input size.
            return x + ops.cast(reference[..., :1], x.dtype) * 0

        return _resize_if_needed(x, height, width)

    def compute_output_shape(self, input_shapes):
        x_shape, reference_shape = input_shapes
        return (x_shape[0], reference_shape[1], reference_shape[2], x_shape[-1])


@functools.cache
def _grouped_convolutions_are_slow():
    """Whether Keras runs on JAX with CPUs only.

    XLA's CPU backend computes grouped convolutions through a generic loop: a
    3x3 depthwise convolution over a 16x128x128x256 map took 1.5 s there,
    against 47 ms in TensorFlow (oneDNN) and 0.26 s as nine shifted
    multiply-adds, which XLA fuses into one pass.
    """
    if keras.backend.backend() != "jax":
        return False
    return all(device.startswith("cpu") for device in keras.distribution.list_devices())


def _activate(activation, x):
    """Applies a convolution's activation; SiLU as `x * sigmoid(x)` on TensorFlow.

    Grappler fuses a convolution, its bias and `x * sigmoid(x)` into one oneDNN
    kernel, but not `tf.nn.silu`, whose custom gradient hides the pattern: the
    separate SiLU pass cost 15% of MobileViT_S's time with BatchNorm folded.
    """
    if activation is keras.activations.silu and keras.backend.backend() == "tensorflow":
        return x * ops.sigmoid(x)
    return activation(x)


def _add_bias(layer, x):
    # A 1-D bias, which TensorFlow adds with the BiasAdd that oneDNN fuses.
    return ops.add(x, layer.bias) if layer.use_bias else x


def _on_channels_first_view(convolution, inputs, layer):
    """A channels-last convolution run as a channels-first one on transposed views.

    On PyTorch a transpose is a view: an NHWC tensor seen as NCHW is what
    PyTorch calls the channels-last memory format, which oneDNN convolves
    in place and answers in kind, so the result transposed back is NHWC again
    without a copy. Keras' own channels-last path copies the input twice
    (to contiguous NCHW, then to channels-last memory), which cost MobileViT
    more than its convolutions.
    """
    return _channels_first_convolution(
        convolution,
        inputs,
        layer.kernel,
        strides=layer.strides,
        padding=layer.padding,
        dilation_rate=layer.dilation_rate,
    )


def _channels_first_convolution(convolution, inputs, kernel, **settings):
    outputs = convolution(
        ops.transpose(inputs, (0, 3, 1, 2)), kernel, data_format="channels_first", **settings
    )
    return ops.transpose(outputs, (0, 2, 3, 1))


def _on_cpu(tensor):
    # A PyTorch tensor's device; symbolic shape inference runs on "meta" tensors.
    return str(getattr(tensor, "device", "")).startswith("cpu")


@keras.saving.register_keras_serializable(package="keras_mobilevit")
class Conv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D`, with backend-specific paths around slow ones.

    On PyTorch, the convolution runs on a channels-first view of the input
    (see `_on_channels_first_view`): Keras' own path copies every input twice.
    On JAX, a 1x1 convolution runs as the matrix product over the channels
    that it is: XLA's CPU convolutions are slower than its matrix products.
    On TensorFlow, SiLU takes the form oneDNN fuses into the convolution (see
    `_activate`). Same weights, configuration and results (to float32
    rounding) as the Keras layer.
    """

    def call(self, inputs):
        if self.data_format != "channels_last":
            return super().call(inputs)
        backend = keras.backend.backend()
        pointwise = tuple(self.kernel_size) == (1, 1) and tuple(self.strides) == (1, 1)
        if backend == "torch":
            outputs = _on_channels_first_view(ops.conv, inputs, self)
        elif backend == "jax" and pointwise and self.groups == 1:
            outputs = ops.matmul(inputs, ops.reshape(self.kernel, self.kernel.shape[2:]))
        else:
            outputs = self.convolution_op(inputs, self.kernel)
        return _activate(self.activation, _add_bias(self, outputs))


@keras.saving.register_keras_serializable(package="keras_mobilevit")
class Dense(keras.layers.Dense):
    """`keras.layers.Dense`, computed the way each backend's fastest kernel wants it.

    On TensorFlow, Keras computes a `Dense` on `(B, N, C)` tokens as a
    `tensordot`, which reshapes the product back to 3-D before the bias is
    added, so oneDNN cannot fuse the bias (or the activation) into the
    product: a separate pass over the tokens each time. Here the tokens are
    flattened to 2-D first and the product and bias run as one kernel. With
    SiLU (a transformer MLP's first layer once `optimize_for_inference` has
    merged its activation), the tokens run instead through a 1x1 convolution
    on a `(1, T, 1, C)` view: Grappler fuses SiLU into a convolution but not
    into a matrix product, and the fused kernel took 14% less time than the
    product and a separate SiLU for MobileViT_S's MLPs at batch 16. On
    PyTorch's CPU, every `Dense` runs as such a convolution (on a
    channels-last view, see `_on_channels_first_view`): PyTorch's matrix
    products go to MKL, which on the AMD CPU measured here ran at half the
    speed of the oneDNN convolution for MobileViT's token shapes. Same
    weights, configuration and results (to float32 rounding) as the Keras
    layer; quantized layers keep Keras' own path.
    """

    def call(self, inputs, training=None):
        backend = keras.backend.backend()
        rank = len(inputs.shape)
        on_torch_cpu = backend == "torch" and rank >= 2 and _on_cpu(inputs)
        fused_silu = (
            backend == "tensorflow" and rank >= 2 and self.activation is keras.activations.silu
        )
        if not (on_torch_cpu or fused_silu or (backend == "tensorflow" and rank >= 3)):
            return super().call(inputs, training=training)
        shape = ops.shape(inputs)
        if on_torch_cpu or fused_silu:
            pixels = ops.reshape(inputs, (1, -1, 1, shape[-1]))
            kernel = ops.reshape(self.kernel, (1, 1, *self.kernel.shape))
            if on_torch_cpu:
                x = _channels_first_convolution(ops.conv, pixels, kernel)
            else:
                x = ops.conv(pixels, kernel)
        else:
            x = ops.matmul(ops.reshape(inputs, (-1, shape[-1])), self.kernel)
        x = _activate(self.activation, _add_bias(self, x))
        return ops.reshape(x, (*shape[:-1], self.units))


@keras.saving.register_keras_serializable(package="keras_mobilevit")
class DepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D`, computed as shifted multiply-adds on JAX CPUs.

    The same weights, configuration and results as the Keras layer (to float32
    rounding); only the arithmetic differs: where grouped convolutions are slow
    (see `_grouped_convolutions_are_slow`), on PyTorch (a channels-first view,
    see `_on_channels_first_view`), and in SiLU's form on TensorFlow (see
    `_activate`).
    """

    def call(self, inputs):
        if self.data_format != "channels_last":
            return super().call(inputs)
        if _grouped_convolutions_are_slow() and self.depth_multiplier == 1:
            outputs = _depthwise_by_shifts(
                inputs, self.kernel, self.strides, self.padding, self.dilation_rate
            )
        elif keras.backend.backend() == "torch":
            outputs = _on_channels_first_view(ops.depthwise_conv, inputs, self)
        else:
            outputs = ops.depthwise_conv(
                inputs,
                self.kernel,
                strides=self.strides,
                padding=self.padding,
                dilation_rate=self.dilation_rate,
                data_format=self.data_format,
            )
        return _activate(self.activation, _add_bias(self, outputs))


def _depthwise_by_shifts(x, kernel, strides, padding, dilation_rate):
    """Depthwise 2-D convolution (depth multiplier 1) as a sum of shifted, scaled maps."""
    (kernel_h, kernel_w), (stride_h, stride_w) = kernel.shape[:2], strides
    (dilation_h, dilation_w) = dilation_rate
    _, height, width, _ = x.shape
    spans = ((kernel_h - 1) * dilation_h + 1, (kernel_w - 1) * dilation_w + 1)
    if padding == "same":
        # TensorFlow's convention: the extra pixel of an odd total goes last.
        out_h, out_w = -(-height // stride_h), -(-width // stride_w)
        total_h = max((out_h - 1) * stride_h + spans[0] - height, 0)
        total_w = max((out_w - 1) * stride_w + spans[1] - width, 0)
        pads = ((0, 0), (total_h // 2, total_h - total_h // 2))
        pads += ((total_w // 2, total_w - total_w // 2), (0, 0))
        x = ops.pad(x, pads)
    else:
        out_h = (height - spans[0]) // stride_h + 1
        out_w = (width - spans[1]) // stride_w + 1
    outputs = None
    for i in range(kernel_h):
        for j in range(kernel_w):
            top, left = i * dilation_h, j * dilation_w
            window = x[
                :,
                top : top + (out_h - 1) * stride_h + 1 : stride_h,
                left : left + (out_w - 1) * stride_w + 1 : stride_w,
                :,
            ]
            term = window * kernel[i, j, :, 0]
            outputs = term if outputs is None else outputs + term
    return outputs
