"""The MobileViT-specific Keras layers.

What Keras does not have: patch unfold/fold and resizing, the two attention
cores (weightless: their projections stay `Dense` or `Conv2D` layers that map
one to one onto the checkpoint), GroupNorm with one group; and `Fast*`
subclasses of Keras' `Conv2D`, `DepthwiseConv2D`, `Dense`,
`LayerNormalization`, `BatchNormalization` and `Activation` that compute the
same on the backend kernels (`keras_mobilevit.kernels`).
"""

import warnings

import keras
from keras import ops

from keras_mobilevit import kernels
from keras_mobilevit.maths import patch_grid, resize_if_needed, standardize


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

    Args:
        patch_size: the side of a square patch.
        merge_positions: whether to merge the pixel positions into the batch
            axis (`(B * p * p, N, C)`) or keep their own (`(B, p * p, N, C)`).
    """

    def __init__(self, patch_size=2, merge_positions=True, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = int(patch_size)
        self.merge_positions = bool(merge_positions)

    def call(self, x):
        p = self.patch_size
        _, height, width, channels = ops.shape(x)
        grid_h, grid_w = patch_grid(height, width, p)
        x = resize_if_needed(x, grid_h * p, grid_w * p)
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
            grid_h, grid_w = patch_grid(height, width, p)
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

    Args:
        patch_size: the side of a square patch, as given to `Unfold`.
    """

    def __init__(self, patch_size=2, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = int(patch_size)

    def call(self, inputs):
        x, reference = inputs
        p = self.patch_size
        _, height, width, _ = ops.shape(reference)
        channels = ops.shape(x)[-1]
        grid_h, grid_w = patch_grid(height, width, p)
        # (B*ph, pw, N, C) -> (B*ph, N, pw, C)
        x = ops.reshape(x, (-1, p, grid_h * grid_w, channels))
        x = ops.transpose(x, (0, 2, 1, 3))
        # (B, ph, nh, nw*pw*C) -> (B, nh, ph, nw*pw*C)
        x = ops.reshape(x, (-1, p, grid_h, grid_w * p * channels))
        x = ops.transpose(x, (0, 2, 1, 3))
        x = ops.reshape(x, (-1, grid_h * p, grid_w * p, channels))
        x = resize_if_needed(x, height, width)
        return x

    def compute_output_shape(self, input_shapes):
        patches_shape, reference_shape = input_shapes
        return (*reference_shape[:3], patches_shape[-1])

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size}


@keras.saving.register_keras_serializable(package="keras_mobilevit")
class DotProductAttention(keras.layers.Layer):
    """Multi-head scaled dot-product attention over a fused query/key/value tensor.

    Weightless, unlike `keras.layers.MultiHeadAttention`: it takes the output
    of one `Dense(3 * dim)` (the reference's `qkv` linear), `(B, N, 3 * dim)`,
    and returns the heads concatenated, `(B, N, dim)`, for the output
    projection, so that both projections stay `Dense` layers that map one to
    one onto the checkpoint.

    Args:
        num_heads: number of attention heads; `dim` must divide by it.
        scale: the factor the queries are multiplied by; `None` (default)
            for `head_dim ** -0.5`. `optimize_for_inference` moves it into
            the projection's weights and sets 1, which skips the product.
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
        kernel = kernels.kernel_for("attention", self, qkv)
        if kernel is not None:
            return kernel(self, qkv)
        dim = qkv.shape[-1] // 3
        head_dim = dim // self.num_heads
        sequence_length = ops.shape(qkv)[1]
        scale = self.query_scale(qkv.shape[-1])
        # Heads first, `(3 * heads, B, N, head_dim)`, in one transpose: splitting
        # the outermost axis then copies nothing.
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

    Args:
        patch_size: the side of a square patch.
    """

    def __init__(self, patch_size=2, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = int(patch_size)

    def call(self, x):
        p = self.patch_size
        _, height, width, _ = ops.shape(x)
        grid_h, grid_w = patch_grid(height, width, p)
        return resize_if_needed(x, grid_h * p, grid_w * p, align_corners=True)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        p = self.patch_size
        height = None if height is None else -(-height // p) * p
        width = None if width is None else -(-width // p) * p
        return (batch, height, width, channels)

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size}


@keras.saving.register_keras_serializable(package="keras_mobilevit")
class GroupNorm1(keras.layers.Layer):
    """Group normalisation with a single group (timm's `GroupNorm1`).

    Normalises each sample over all its axes at once (for MobileViTV2's
    `(B, P, N, C)` patches: every pixel position, patch and channel), then
    scales and shifts per channel. Written with means and a reciprocal square
    root rather than `keras.layers.GroupNormalization`, whose 5-D reshape
    lowers to ops LiteRT does not have built in.

    Args:
        epsilon: added to the variance, as in PyTorch's `GroupNorm`.
    """

    def __init__(self, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        channels = input_shape[-1]
        self.gamma = self.add_weight(name="gamma", shape=(channels,), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(channels,), initializer="zeros")

    def call(self, x):
        normalized = standardize(x, tuple(range(1, len(x.shape))), self.epsilon)
        gamma = ops.cast(self.gamma, "float32")
        beta = ops.cast(self.beta, "float32")
        return ops.cast(normalized * gamma + beta, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


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

        return resize_if_needed(x, height, width)

    def compute_output_shape(self, input_shapes):
        x_shape, reference_shape = input_shapes
        return (x_shape[0], reference_shape[1], reference_shape[2], x_shape[-1])


# Keras' layers, whose `call` runs the backend kernel for the operation where
# one applies (see `keras_mobilevit.kernels`), and Keras' own `call` elsewhere.
# Same weights, configuration and results, to float32 rounding.


@keras.saving.register_keras_serializable(package="keras_mobilevit")
class FastConv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D`, by a backend kernel where one was measured faster."""

    def call(self, inputs):
        kernel = kernels.kernel_for("conv2d", self, inputs)
        return super().call(inputs) if kernel is None else kernel(self, inputs)


@keras.saving.register_keras_serializable(package="keras_mobilevit")
class FastDepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D`, by a backend kernel where one was measured faster."""

    def call(self, inputs):
        kernel = kernels.kernel_for("depthwise_conv2d", self, inputs)
        return super().call(inputs) if kernel is None else kernel(self, inputs)


@keras.saving.register_keras_serializable(package="keras_mobilevit")
class FastDense(keras.layers.Dense):
    """`keras.layers.Dense`, by a backend kernel where one was measured faster."""

    def call(self, inputs, training=None):
        kernel = kernels.kernel_for("dense", self, inputs)
        if kernel is None:
            return super().call(inputs, training=training)
        return kernel(self, inputs)


@keras.saving.register_keras_serializable(package="keras_mobilevit")
class FastLayerNormalization(keras.layers.LayerNormalization):
    """`keras.layers.LayerNormalization`, by a backend kernel where one was measured faster."""

    def call(self, inputs):
        kernel = kernels.kernel_for("layer_norm", self, inputs)
        return super().call(inputs) if kernel is None else kernel(self, inputs)


@keras.saving.register_keras_serializable(package="keras_mobilevit")
class FastBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization`, trained by a backend kernel where one was measured faster.

    Only training, where the batch's statistics are computed, takes the
    kernel (which updates the moving statistics as Keras does); inference is
    Keras' own, and `optimize_for_inference` folds it into the convolution.
    """

    def call(self, inputs, training=None, mask=None):
        if training and self.trainable and mask is None and not self.synchronized:
            kernel = kernels.kernel_for("batch_norm_training", self, inputs)
            if kernel is not None and not getattr(self, "renorm", False):
                return kernel(self, inputs)
        return super().call(inputs, training=training, mask=mask)


@keras.saving.register_keras_serializable(package="keras_mobilevit")
class FastActivation(keras.layers.Activation):
    """`keras.layers.Activation`, trained by a backend kernel where one was measured faster.

    Only training takes the kernel (where the gradient is computed too);
    inference is Keras' own, and `optimize_for_inference` merges the
    activation into the layer before it.
    """

    def call(self, inputs, training=None):
        if training:
            kernel = kernels.kernel_for("activation_training", self, inputs)
            if kernel is not None:
                return kernel(self, inputs)
        return super().call(inputs)
