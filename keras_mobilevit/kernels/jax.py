"""JAX kernels: around XLA's slow CPU convolutions.

Measured on a 2-core AMD EPYC with jax 0.10 (XLA:CPU): see
docs/performance.md#backend-kernels. Gated to CPU-only runs; GPUs and TPUs
were not measured and keep Keras' path.
"""

import functools

import keras
from keras import ops

from keras_mobilevit.kernels import Kernel


@functools.cache
def _cpu_only():
    return all(device.startswith("cpu") for device in keras.distribution.list_devices())


def _add_bias(layer, x):
    return ops.add(x, layer.bias) if layer.use_bias else x


def _pointwise_on_cpu(layer, inputs):
    return (
        _cpu_only()
        and layer.data_format == "channels_last"
        and tuple(layer.kernel_size) == (1, 1)
        and tuple(layer.strides) == (1, 1)
        and layer.groups == 1
    )


def pointwise_conv2d(layer, inputs):
    """A 1x1 convolution as the matrix product over the channels that it is.

    XLA's CPU convolutions run slower than its matrix products.
    """
    outputs = ops.matmul(inputs, ops.reshape(layer.kernel, layer.kernel.shape[2:]))
    return layer.activation(_add_bias(layer, outputs))


def _depthwise_on_cpu(layer, inputs):
    return _cpu_only() and layer.data_format == "channels_last" and layer.depth_multiplier == 1


def depthwise_conv2d(layer, inputs):
    """Depthwise convolution as a sum of shifted, scaled maps, which XLA fuses into one pass.

    XLA's CPU backend computes grouped convolutions through a generic loop.
    """
    outputs = depthwise_by_shifts(
        inputs, layer.kernel, layer.strides, layer.padding, layer.dilation_rate
    )
    return layer.activation(_add_bias(layer, outputs))


def depthwise_by_shifts(x, kernel, strides, padding, dilation_rate):
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


KERNELS = {
    "conv2d": (Kernel(_pointwise_on_cpu, pointwise_conv2d),),
    "depthwise_conv2d": (Kernel(_depthwise_on_cpu, depthwise_conv2d),),
}
