"""TensorFlow kernels: the layers' arithmetic in the forms Grappler hands to fused oneDNN kernels.

Measured on a 2-core AMD EPYC with TensorFlow 2.21 (oneDNN): see
docs/performance.md#backend-kernels. Device-independent graph shapes, so not
gated by device.
"""

import functools

import keras
from keras import ops

from keras_mobilevit.kernels import Kernel
from keras_mobilevit.maths import standardize


def _activate(activation, x):
    # Grappler fuses a convolution, its bias and `x * sigmoid(x)` into one
    # oneDNN kernel, but not `tf.nn.silu`, whose custom gradient hides the pattern.
    if activation is keras.activations.silu:
        return x * ops.sigmoid(x)
    return activation(x)


def _add_bias(layer, x):
    # A 1-D bias: TensorFlow adds it with the BiasAdd that oneDNN fuses.
    return ops.add(x, layer.bias) if layer.use_bias else x


def _channels_last(layer, inputs):
    return layer.data_format == "channels_last"


def conv2d(layer, inputs):
    """Convolution, 1-D bias and SiLU in the form fused into one kernel."""
    return _activate(layer.activation, _add_bias(layer, layer.convolution_op(inputs, layer.kernel)))


def depthwise_conv2d(layer, inputs):
    """Depthwise convolution with a 1-D bias and SiLU as `x * sigmoid(x)`."""
    dtype = keras.backend.standardize_dtype(inputs.dtype)
    if dtype in ("bfloat16", "float16") and max(layer.strides) > 1 and _cpu_only():
        outputs = _strided_depthwise_float32_gradient(layer, inputs)
    else:
        outputs = ops.depthwise_conv(
            inputs,
            layer.kernel,
            strides=layer.strides,
            padding=layer.padding,
            dilation_rate=layer.dilation_rate,
            data_format=layer.data_format,
        )
    return _activate(layer.activation, _add_bias(layer, outputs))


def _strided_depthwise_float32_gradient(layer, inputs):
    """A strided depthwise convolution in bfloat16, its gradient computed in float32.

    oneDNN's bfloat16 gradients of a strided depthwise convolution took 6x-7x
    the float32 ones (MobileViT's four downsampling blocks: a third of a
    mixed-precision training step); the forward pass is faster in bfloat16.
    """
    import tensorflow as tf

    strides = (1, *layer.strides, 1)
    padding = layer.padding.upper()
    kernel = ops.cast(layer.kernel, inputs.dtype)

    @tf.custom_gradient
    def convolve(x, kernel):
        def gradient(upstream):
            x32, kernel32 = tf.cast(x, "float32"), tf.cast(kernel, "float32")
            upstream32 = tf.cast(upstream, "float32")
            grad_x = tf.raw_ops.DepthwiseConv2dNativeBackpropInput(
                input_sizes=tf.shape(x), filter=kernel32, out_backprop=upstream32,
                strides=strides, padding=padding,
            )  # fmt: skip
            grad_kernel = tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
                input=x32, filter_sizes=tf.shape(kernel), out_backprop=upstream32,
                strides=strides, padding=padding,
            )  # fmt: skip
            return tf.cast(grad_x, x.dtype), tf.cast(grad_kernel, kernel.dtype)

        outputs = tf.nn.depthwise_conv2d(x, kernel, strides, padding)
        return outputs, gradient

    return convolve(inputs, kernel)


def _tokens_or_silu(layer, inputs):
    rank = len(inputs.shape)
    return rank >= 3 or (rank == 2 and layer.activation is keras.activations.silu)


def dense(layer, inputs):
    """`Dense` on tokens flattened to 2-D, so that the bias fuses into the product.

    Keras computes a `Dense` on `(B, N, C)` as a `tensordot`, which reshapes
    the product back to 3-D before the bias is added: a separate pass. With
    SiLU, the product runs as a 1x1 convolution over a `(1, T, 1, C)` view,
    into which Grappler fuses the SiLU (it does not into a matrix product).
    """
    shape = ops.shape(inputs)
    if layer.activation is keras.activations.silu:
        pixels = ops.reshape(inputs, (1, -1, 1, shape[-1]))
        x = ops.conv(pixels, ops.reshape(layer.kernel, (1, 1, *layer.kernel.shape)))
    else:
        x = ops.matmul(ops.reshape(inputs, (-1, shape[-1])), layer.kernel)
    x = _activate(layer.activation, _add_bias(layer, x))
    return ops.reshape(x, (*shape[:-1], layer.units))


def _over_last_axis(layer, inputs):
    rank = len(inputs.shape)
    return not layer.rms_scaling and [axis % rank for axis in layer.axis] == [rank - 1]


def layer_norm(layer, inputs):
    """LayerNorm over the channels, centred first and scaled after.

    Keras multiplies the reciprocal deviation by gamma before it meets the
    tokens, which builds a third full-size tensor.
    """
    outputs = standardize(inputs, -1, layer.epsilon)
    if layer.scale:
        outputs = outputs * ops.cast(layer.gamma, "float32")
    if layer.center:
        outputs = outputs + ops.cast(layer.beta, "float32")
    return ops.cast(outputs, layer.compute_dtype)


@functools.cache
def _cpu_only():
    return all(device.startswith("cpu") for device in keras.distribution.list_devices())


def _channels_last_maps_on_cpu(layer, inputs):
    rank = len(inputs.shape)
    dtype = keras.backend.standardize_dtype(inputs.dtype)
    return (
        rank == 4
        and layer.axis % rank == 3
        and dtype in ("float32", "bfloat16", "float16")
        and _cpu_only()
    )


def batch_norm_training(layer, inputs):
    """BatchNorm of a training step as one `FusedBatchNormV3` (oneDNN's, forward and gradient).

    Keras computes the batch's moments and the normalisation as separate ops,
    which with their gradients made 40% of a training step's op time. The
    moving statistics are updated as Keras updates them: with the biased
    variance, where the fused op returns the unbiased one. Under mixed
    precision the op reads and writes bfloat16 (or float16) maps and computes
    the statistics in float32, as Keras does after casting: the casts, a pass
    over the map each way and their gradients, are left out.
    """
    import tensorflow as tf

    x = inputs
    channels = x.shape[-1]
    gamma = ops.cast(layer.gamma, "float32") if layer.scale else tf.ones((channels,))
    beta = ops.cast(layer.beta, "float32") if layer.center else tf.zeros((channels,))
    outputs, mean, unbiased_variance, *_ = tf.raw_ops.FusedBatchNormV3(
        x=x,
        scale=gamma,
        offset=beta,
        mean=tf.constant([], "float32"),
        variance=tf.constant([], "float32"),
        epsilon=layer.epsilon,
        data_format="NHWC",
        is_training=True,
    )
    count = ops.cast(ops.size(x) // channels, "float32")
    variance = unbiased_variance * (count - 1) / count
    momentum = layer.momentum
    layer.moving_mean.assign(layer.moving_mean * momentum + mean * (1.0 - momentum))
    layer.moving_variance.assign(layer.moving_variance * momentum + variance * (1.0 - momentum))
    return ops.cast(outputs, layer.compute_dtype)


def _silu_on_cpu(layer, inputs):
    return layer.activation is keras.activations.silu and _cpu_only()


@functools.cache
def _xla_silu():
    import tensorflow as tf

    # One traced function for every shape: XLA compiles each shape it meets.
    jit = functools.partial(tf.function, jit_compile=True, reduce_retracing=True, autograph=False)

    @jit
    def forward(x):
        return x * tf.sigmoid(x)

    @jit
    def backward(x, upstream):
        sigmoid = tf.sigmoid(x)
        return upstream * sigmoid * (1 + x * (1 - sigmoid))

    @tf.custom_gradient
    def silu(x):
        return forward(x), lambda upstream: backward(x, upstream)

    return silu


def silu_training(layer, inputs):
    """SiLU for a training step: it and its gradient each one XLA-compiled pass.

    `tf.nn.silu`'s gradient recomputes the sigmoid and takes five more
    element-wise ops, a pass over the map each; XLA fuses them into one loop
    (fused BatchNorm and SiLU, forward and backward: 3.9x faster than Keras'
    BatchNorm and `tf.nn.silu` on a 32x64x64x96 map).
    """
    return _xla_silu()(inputs)


KERNELS = {
    "conv2d": (Kernel(_channels_last, conv2d),),
    "depthwise_conv2d": (Kernel(_channels_last, depthwise_conv2d),),
    "dense": (Kernel(_tokens_or_silu, dense),),
    "layer_norm": (Kernel(_over_last_axis, layer_norm),),
    "batch_norm_training": (Kernel(_channels_last_maps_on_cpu, batch_norm_training),),
    "activation_training": (Kernel(_silu_on_cpu, silu_training),),
}
