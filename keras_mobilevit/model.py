"""`MobileViTModel`: the functional `keras.Model` every builder returns."""

import keras

from keras_mobilevit import kernels

# Keras (3.x) imports no package to find a class it does not know, and reports
# the failure with the object's config: this entry, first in it, says the fix.
LOADING_NEEDS_KEY = "loading_needs"
LOADING_NEEDS = (
    "this file needs keras_mobilevit: pip install keras-mobilevit and "
    "`import keras_mobilevit` before load_model"
)


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

    def get_config(self):
        return {LOADING_NEEDS_KEY: LOADING_NEEDS, **super().get_config()}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = {k: v for k, v in config.items() if k != LOADING_NEEDS_KEY}
        return super().from_config(config, custom_objects=custom_objects)
