"""The layer classes of keras_mobilevit 0.1.0, so that files saved with it keep loading.

Keras finds a saved layer's class by its registered name, and its weights
under a path made from its class name (`layers/conv2d_3/vars`), so each
renamed class keeps a subclass with the old name, registered under it. Build
new models with the classes in `keras_mobilevit.layers`.
"""

import keras

from keras_mobilevit import layers


@keras.saving.register_keras_serializable(package="keras_mobilevit")
class Conv2D(layers.FastConv2D):
    """0.1.0's name of `FastConv2D`."""


@keras.saving.register_keras_serializable(package="keras_mobilevit")
class DepthwiseConv2D(layers.FastDepthwiseConv2D):
    """0.1.0's name of `FastDepthwiseConv2D`."""


@keras.saving.register_keras_serializable(package="keras_mobilevit")
class Dense(layers.FastDense):
    """0.1.0's name of `FastDense`."""


@keras.saving.register_keras_serializable(package="keras_mobilevit")
class LayerNormalization(layers.FastLayerNormalization):
    """0.1.0's name of `FastLayerNormalization`."""


@keras.saving.register_keras_serializable(package="keras_mobilevit")
class MultiHeadSelfAttention(layers.DotProductAttention):
    """0.1.0's name of `DotProductAttention`."""
