"""What the models take: images refused by the same rule at call time as at build time, and
the builders' arguments checked for type as well as value.

The call-time tests run on every backend: `test_on_other_backends` runs this file's fast
tests under JAX and PyTorch from the TensorFlow run.
"""

import inspect

import keras
import numpy as np
import pytest
from testing import run_pytest

import keras_mobilevit
from keras_mobilevit import MobileViTModel
from keras_mobilevit.builder import REGISTRY

WANTED = r"MobileViT_XXS takes images of shape \(batch, height, width, 3\), got shape "
TOO_SMALL = "Input height and width must be at least 32 pixels"


@pytest.fixture(scope="module")
def model():
    return keras_mobilevit.MobileViT_XXS(weights=None)


def images(*shape):
    return np.zeros(shape, "float32")


def one_layer_model(input_shape, layer=None):
    """A MobileViTModel of one layer, by default a MobileViT block's `Unfold`."""
    inputs = keras.Input(input_shape)
    return MobileViTModel(inputs, (layer or keras_mobilevit.Unfold())(inputs))


def run(model, how, x):
    if how == "predict":
        return model.predict(x, verbose=0)
    return model(x)


@pytest.mark.parametrize("how", ["call", "predict"])
@pytest.mark.parametrize("size", [(8, 8), (2, 2), (1, 1), (31, 64), (64, 16)])
def test_images_under_32_pixels_are_refused_as_at_build_time(model, how, size):
    with pytest.raises(ValueError, match=TOO_SMALL + r", got images of shape \(1, "):
        run(model, how, images(1, *size, 3))
    with pytest.raises(ValueError, match=TOO_SMALL + r", got input_shape="):
        keras_mobilevit.MobileViT_XXS(weights=None, input_shape=(*size, 3))


def test_images_are_refused_after_predict_has_relaxed_its_traced_shapes():
    # TensorFlow traces predict for any shape (None) after a few shapes, where a check of
    # the static shape inside the model would see nothing. The rule is MobileViTModel's: a
    # model of one MobileViT layer shows it without tracing a whole MobileViT.
    model = one_layer_model((None, None, 3))
    for size in (32, 40, 48):
        model.predict(images(1, size, size, 3), verbose=0)
    for predict in (model.predict, model.predict_on_batch):
        with pytest.raises(ValueError, match=TOO_SMALL):
            predict(images(1, 8, 8, 3))
        with pytest.raises(ValueError, match="4 channels where the model was built for 3"):
            predict(images(1, 64, 64, 4))


def test_small_images_from_a_generator_are_refused(model):
    # No array to check before Keras batches it: the model's own check, in each backend's
    # compiled step (JAX's calls `call` without `__call__`).
    batches = ((images(1, 8, 8, 3),) for _ in range(2))
    with pytest.raises(ValueError, match=TOO_SMALL + r", got images of shape \(1, 8, 8, 3\)"):
        model.predict(batches, verbose=0)


@pytest.mark.parametrize("how", ["call", "predict"])
@pytest.mark.parametrize(
    ("shape", "got"),
    [
        ((64, 64), r"\(64, 64\)\.$"),
        ((64, 64, 3), r"\(64, 64, 3\)\. For one image, add the batch axis"),
        ((1, 1, 64, 64, 3), r"\(1, 1, 64, 64, 3\)\.$"),
        ((1, 64, 64, 4), r"\(1, 64, 64, 4\): 4 channels where the model was built for 3"),
    ],
)
def test_images_of_another_rank_or_channel_count_are_refused_in_the_models_words(
    model, how, shape, got
):
    with pytest.raises(ValueError, match=WANTED + got):
        run(model, how, images(*shape))


@pytest.mark.parametrize("how", ["call", "predict", "evaluate"])
def test_an_empty_batch_is_refused(model, how):
    x = images(0, 64, 64, 3)
    with pytest.raises(ValueError, match=r"empty batch, images of shape \(0, 64, 64, 3\)"):
        if how == "evaluate":
            model.compile(loss="sparse_categorical_crossentropy")
            model.evaluate(x, np.zeros(0), verbose=0)
        else:
            run(model, how, x)


def test_a_fixed_size_model_names_its_size():
    fixed = one_layer_model((64, 64, 3))
    with pytest.raises(ValueError, match=r"shape \(batch, 64, 64, 3\), got shape \(1, 96, 96, 3\)"):
        fixed(images(1, 96, 96, 3))


def test_graphs_without_mobilevit_blocks_keep_their_sizes():
    # fold_batchnorm turns any model into a MobileViTModel; 32 pixels is MobileViT's rule.
    model = one_layer_model((None, None, 3), keras.layers.GlobalAveragePooling2D())
    assert model(images(1, 8, 8, 3)).shape == (1, 3)
    with pytest.raises(ValueError, match="empty batch"):
        model(images(0, 8, 8, 3))


def test_unknown_dimensions_are_not_checked(model):
    # Symbolic inputs and traced shapes of unknown size still build and run.
    assert model(keras.Input((None, None, 3))).shape == (None, 1000)
    assert model(keras.Input((64, 64, 3), batch_size=None)).shape == (None, 1000)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_shape": ("64", 64, 3)}, r"of positive integers.*got \('64', 64, 3\)"),
        ({"input_shape": (64, True, 3)}, r"of positive integers"),
        ({"input_shape": (64, 64, None)}, r"of positive integers"),
        ({"input_shape": "64"}, r"must be \(height, width, channels\), got '64'"),
        ({"classes": True}, r"`classes` must be a positive integer, got True"),
        ({"classes": 2.0}, r"`classes` must be a positive integer, got 2\.0"),
        ({"include_top": "yes"}, r"`include_top` must be True or False, got 'yes'"),
    ],
)
def test_arguments_of_the_wrong_type_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        keras_mobilevit.MobileViT_XXS(**{"weights": None, **kwargs})


def test_numpy_integers_are_taken():
    model = keras_mobilevit.MobileViTV2_050(
        weights=None, classes=np.int64(5), input_shape=np.array([32, 48, 3])
    )
    assert model.input.shape == (None, 32, 48, 3)
    assert model.output.shape == (None, 5)


def test_input_shape_that_contradicts_input_tensor_is_refused():
    with pytest.raises(ValueError, match=r"input_shape=\(128, 128, 3\) does not match"):
        keras_mobilevit.MobileViT_XXS(
            weights=None, input_tensor=keras.Input((64, 64, 3)), input_shape=(128, 128, 3)
        )
    with pytest.raises(ValueError, match=TOO_SMALL + r", got input_tensor\.shape\[1:\]="):
        keras_mobilevit.MobileViT_XXS(weights=None, input_tensor=keras.Input((16, 16, 3)))


@pytest.mark.parametrize("builder", sorted(REGISTRY))
def test_builders_take_only_their_first_argument_by_position(builder):
    parameters = list(inspect.signature(REGISTRY[builder].builder).parameters.values())
    assert parameters[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert {p.kind for p in parameters[1:]} == {inspect.Parameter.KEYWORD_ONLY}


@pytest.mark.parametrize(
    ("build", "first", "kwargs", "positional"),
    [
        (keras_mobilevit.MobileViT_XS, "include_top", {"weights": None}, (False, True, None)),
        (keras_mobilevit.MobileViT_XXS_DeepLabV3, "weights", {}, (None, None)),
    ],
)
def test_an_input_shape_given_by_position_is_refused(build, first, kwargs, positional):
    with pytest.raises(ValueError, match=rf"`{first}` got \(224, 224, 3\).*input_shape="):
        build((224, 224, 3), **kwargs)
    with pytest.raises(TypeError, match="positional"):
        build(*positional)


def test_greyscale_without_pretrained_weights():
    grey = keras_mobilevit.MobileViT_XXS(weights=None, input_shape=(None, None, 1))
    assert grey(images(1, 32, 40, 1)).shape == (1, 1000)
    with pytest.raises(ValueError, match=r"got shape \(1, 32, 40, 3\): 3 channels where the model"):
        grey(images(1, 32, 40, 3))


@pytest.mark.parametrize(
    ("build", "weights"),
    [
        (keras_mobilevit.MobileViT_XXS, "imagenet"),
        (keras_mobilevit.MobileViT_XXS_DeepLabV3, "pascal_voc"),
    ],
)
def test_pretrained_weights_need_3_channels(build, weights):
    # Checked before any download: no Hub is reachable here, and none is asked.
    with pytest.raises(ValueError, match=rf"weights='{weights}' take RGB images, 3 channels"):
        build(weights=weights, input_shape=(64, 64, 1))


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="run from the TensorFlow run")
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_on_other_backends(backend):
    # The checks at call time; the builders' arguments are checked the same on every backend.
    at_call_time = "under_32 or generator or rank_or_channel or empty_batch"
    result = run_pytest(["tests/test_inputs.py", "-m", "not slow", "-k", at_call_time], backend)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
