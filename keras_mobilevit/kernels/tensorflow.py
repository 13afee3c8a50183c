"""TensorFlow kernels: the layers' arithmetic in the forms Grappler hands to fused oneDNN kernels.

Measured on a 2-core AMD EPYC with TensorFlow 2.21 (oneDNN): see
docs/performance.md#backend-kernels. Device-independent graph shapes, so not
gated by device.
"""

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
    outputs = ops.depthwise_conv(
        inputs,
        layer.kernel,
        strides=layer.strides,
        padding=layer.padding,
        dilation_rate=layer.dilation_rate,
        data_format=layer.data_format,
    )
    return _activate(layer.activation, _add_bias(layer, outputs))


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


KERNELS = {
    "conv2d": (Kernel(_channels_last, conv2d),),
    "depthwise_conv2d": (Kernel(_channels_last, depthwise_conv2d),),
    "dense": (Kernel(_tokens_or_silu, dense),),
    "layer_norm": (Kernel(_over_last_axis, layer_norm),),
}
