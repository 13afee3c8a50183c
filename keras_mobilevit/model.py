"""`MobileViTModel`: the functional `keras.Model` every builder returns."""

import keras

from keras_mobilevit import kernels


@keras.saving.register_keras_serializable(package="keras_mobilevit")
class MobileViTModel(keras.Model):
    """A functional `keras.Model` whose eager inference may run by a backend's direct path.

    Built like `keras.Model(inputs, outputs)`; it trains, saves, loads, exports
    and nests like any functional model. Only its inference differs, and only
    where `keras_mobilevit.kernels.run_model` has a path for the backend
    (PyTorch: each layer's `call` directly, skipping `Layer.__call__`'s
    bookkeeping; see docs/performance.md) and the call is one it reproduces
    exactly; anything else (training, masks, symbolic inputs, mixed
    precision) takes Keras' path.
    """

    def call(self, inputs, training=None, mask=None, **kwargs):
        if mask is None and not kwargs:
            outputs = kernels.run_model(self, inputs, training)
            if outputs is not None:
                return outputs
        return super().call(inputs, training=training, mask=mask, **kwargs)
