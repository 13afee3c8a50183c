"""`MobileViTModel`: the functional `keras.Model` every builder returns."""

import functools

import keras

from keras_mobilevit import kernels
from keras_mobilevit.layers import Unfold

# The smallest image side the models take, at build time and at call time alike.
MIN_SIZE = 32


def too_small(got):
    """The error for an image side under `MIN_SIZE`; `got` says what was given."""
    return ValueError(
        f"Input height and width must be at least {MIN_SIZE} pixels, got {got}. "
        "Resize smaller images up first."
    )


def known_shape(x):
    """`x.shape` with only what is known for certain (an `int`, else `None`), or `None`.

    Traced shapes may be `None` (TensorFlow), symbolic (JAX or PyTorch export)
    or of unknown rank; none of them is checked.
    """
    shape = getattr(x, "shape", None)
    if shape is None or getattr(shape, "rank", 0) is None:
        return None
    return tuple(d if isinstance(d, int) and not isinstance(d, bool) else None for d in shape)


def check_images(shape, expected, model_name, min_size=MIN_SIZE):
    """Raises a `ValueError` where images of `shape` cannot go into a model with input `expected`.

    Both are `known_shape`s, batch axis first; what either leaves `None` is not
    checked. Height and width must be at least `min_size`.
    """
    if shape is None:
        return
    _, height, width, channels = expected
    wanted = f"(batch, {height or 'height'}, {width or 'width'}, {channels})"
    if len(shape) != len(expected):
        hint = " For one image, add the batch axis: `images[None]`." if len(shape) == 3 else ""
        raise ValueError(f"{model_name} takes images of shape {wanted}, got shape {shape}.{hint}")
    if shape[0] == 0:
        raise ValueError(
            f"{model_name} got an empty batch, images of shape {shape}: pass at least one image."
        )
    if None not in (shape[-1], channels) and shape[-1] != channels:
        raise ValueError(
            f"{model_name} takes images of shape {wanted}, got shape {shape}: "
            f"{shape[-1]} channels where the model was built for {channels}."
        )
    if any(side is not None and side < min_size for side in shape[1:3]):
        raise too_small(f"images of shape {shape}")
    for side, built_for in zip(shape[1:3], expected[1:3], strict=True):
        if None not in (side, built_for) and side != built_for:
            raise ValueError(
                f"{model_name} takes images of shape {wanted}, got shape {shape}. Build it "
                "with input_shape=(None, None, channels) to take any size."
            )


def _checking_images(method):
    """`method` of `keras.Model` (`x` its first argument) with `x` checked first.

    Checks in `call` alone would miss what these pass on: TensorFlow relaxes
    the shapes it traces to `None` after a few sizes, and an empty array gives
    Keras no batch to call the model on at all.
    """

    @functools.wraps(method)
    def checked(self, x=None, *args, **kwargs):
        self._check_images(x)
        return method(self, x, *args, **kwargs)

    return checked


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
    and nests like any functional model. Only two things differ. Its inference
    may run by `keras_mobilevit.kernels.run_model`'s path for the backend
    (PyTorch: each layer's `call` directly, skipping `Layer.__call__`'s
    bookkeeping; see docs/performance.md) where that reproduces the call
    exactly; anything else (training, masks, symbolic inputs, mixed precision)
    takes Keras' path. And where it has one 4D image input, it refuses an
    empty batch or images of another rank, channel count or fixed size before
    any computation; where its graph holds MobileViT blocks (an `Unfold`
    layer), also images under `MIN_SIZE`, the builders' rule. Other graphs
    (`fold_batchnorm` takes any model) keep the sizes they take.
    """

    def __call__(self, *args, **kwargs):
        # Before Keras' own input checks, whose messages name no image shape.
        self._check_images(args[0] if args else kwargs.get("inputs"))
        return super().__call__(*args, **kwargs)

    def call(self, inputs, training=None, mask=None, **kwargs):
        # Again here: JAX's compiled steps call `call` without `__call__`.
        self._check_images(inputs)
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

    fit = _checking_images(keras.Model.fit)
    evaluate = _checking_images(keras.Model.evaluate)
    predict = _checking_images(keras.Model.predict)
    train_on_batch = _checking_images(keras.Model.train_on_batch)
    test_on_batch = _checking_images(keras.Model.test_on_batch)
    predict_on_batch = _checking_images(keras.Model.predict_on_batch)

    def _check_images(self, x):
        if self._image_input is not None:
            check_images(known_shape(x), self._image_input, self.name, self._min_image_size)

    # Cached: a functional model's graph is fixed once built.
    @functools.cached_property
    def _image_input(self):
        """The known shape of the one 4D input, or `None` where the model has no such input."""
        inputs = self.inputs
        if len(inputs) == 1 and len(inputs[0].shape) == 4:
            return known_shape(inputs[0])
        return None

    @functools.cached_property
    def _min_image_size(self):
        return MIN_SIZE if any(isinstance(layer, Unfold) for layer in self.layers) else 1
