"""Arithmetic that the layers and the backend kernels share, in `keras.ops` only."""

from keras import ops


def patch_grid(height, width, patch_size):
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


def resize_if_needed(x, height, width, align_corners=False):
    """Resizes to `(height, width)`, skipping the work when sizes already match."""
    in_height, in_width = ops.shape(x)[1], ops.shape(x)[2]
    sizes = (in_height, in_width, height, width)
    if all(isinstance(s, int) for s in sizes):
        if (in_height, in_width) == (height, width):
            return x
        return resize_bilinear(x, height, width, align_corners)
    same = ops.logical_and(ops.equal(in_height, height), ops.equal(in_width, width))
    return ops.cond(same, lambda: x, lambda: resize_bilinear(x, height, width, align_corners))


def standardize(x, axes, epsilon):
    """`x` less its mean, over its standard deviation along `axes`, in float32.

    Float32 even under mixed precision, as Keras' norms do. Centring once and
    scaling after takes fewer passes over the tensor than Keras' formula.
    """
    x = ops.cast(x, "float32")
    centered = x - ops.mean(x, axis=axes, keepdims=True)
    variance = ops.mean(ops.square(centered), axis=axes, keepdims=True)
    return centered * ops.rsqrt(variance + epsilon)
