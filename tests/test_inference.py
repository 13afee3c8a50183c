"""Inference copies: BatchNorm folded into the convolutions, optionally in bfloat16."""

import keras
import numpy as np
import pytest
from conftest import TOLERANCE, random_images, record, timm_forward

import keras_mobilevit
from keras_mobilevit import fold_batchnorm, optimize_for_inference


def with_random_statistics(model, seed=0):
    """Random BatchNorm statistics and affine parameters, so that a wrong fold shows."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, n),  # gamma
                    rng.uniform(-0.5, 0.5, n),  # beta
                    rng.uniform(-0.5, 0.5, n),  # moving mean
                    rng.uniform(0.5, 1.5, n),  # moving variance
                ]
            )
    return model


def batchnorms(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def relative_difference(actual, expected):
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


@pytest.mark.parametrize("variant", ["MobileViT_XXS", "MobileViTV2_050", "MobileViT_XXS_DeepLabV3"])
def test_folded_model_computes_the_same_without_batchnorm(variant):
    model = with_random_statistics(getattr(keras_mobilevit, variant)(weights=None))
    folded = fold_batchnorm(model)
    images = random_images(2, 200, 136, seed=1) * 255

    assert batchnorms(model) and not batchnorms(folded)
    assert [layer.name for layer in folded.layers] == [
        layer.name for layer in model.layers if layer not in batchnorms(model)
    ]
    difference = relative_difference(
        folded.predict(images, verbose=0), model.predict(images, verbose=0)
    )
    record(f"{variant} BatchNorm folded vs not, 2x200x136 (relative)", difference)
    assert difference <= 1e-5
    # The original is untouched and still trainable as it was.
    assert len(batchnorms(model)) == len(
        batchnorms(getattr(keras_mobilevit, variant)(weights=None))
    )


def test_folded_model_matches_timm(checkpoints):
    timm_model, path = checkpoints("MobileViT_XS")
    model = keras_mobilevit.MobileViT_XS(
        weights=path, include_preprocessing=False, classifier_activation=None
    )
    images = random_images(2, 224, 160, seed=2)
    logits = timm_forward(timm_model, images)
    difference = np.abs(fold_batchnorm(model).predict(images, verbose=0) - logits).max()
    record("MobileViT_XS BatchNorm folded vs timm, 2x224x160", difference)
    assert difference <= TOLERANCE


def test_only_convolutions_read_by_their_batchnorm_alone_are_folded():
    inputs = keras.Input((16, 16, 3))
    shared = keras.layers.Conv2D(4, 3, padding="same", name="shared")(inputs)
    normed = keras.layers.BatchNormalization(name="shared_bn")(shared)
    x = keras.layers.Add()([shared, normed])  # the conv output is read twice
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="activated")(x)
    x = keras.layers.BatchNormalization(name="activated_bn")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="depthwise")(x)
    x = keras.layers.BatchNormalization(name="depthwise_bn")(x)
    x = keras.layers.Conv2D(5, 1, use_bias=True, name="biased")(x)
    outputs = keras.layers.BatchNormalization(name="biased_bn")(x)  # a model output
    model = with_random_statistics(keras.Model(inputs, outputs), seed=3)

    folded = fold_batchnorm(model)

    assert [layer.name for layer in batchnorms(folded)] == ["shared_bn", "activated_bn"]
    assert folded.get_layer("depthwise").use_bias and folded.get_layer("biased").use_bias
    images = random_images(2, 16, 16, seed=4)
    assert (
        relative_difference(folded.predict(images, verbose=0), model.predict(images, verbose=0))
        <= 1e-5
    )


@pytest.mark.parametrize("compute_dtype", ["float32", "bfloat16"])
def test_inference_models_save_and_load(tmp_path, compute_dtype):
    model = with_random_statistics(keras_mobilevit.MobileViT_XXS(weights=None))
    fast = optimize_for_inference(model, compute_dtype=compute_dtype)
    path = tmp_path / "fast.keras"
    fast.save(path)
    loaded = keras.models.load_model(path)
    images = random_images(1, 96, 128, seed=5) * 255
    assert np.array_equal(loaded.predict(images, verbose=0), fast.predict(images, verbose=0))


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["MobileViT_XS", "MobileViTV2_100"])
def test_bfloat16_keeps_top1_and_float32_outputs(variant):
    model = with_random_statistics(
        getattr(keras_mobilevit, variant)(weights=None, classifier_activation=None)
    )
    fast = optimize_for_inference(model, compute_dtype="bfloat16")
    images = random_images(16, 256, 256, seed=6) * 255

    expected = model.predict(images, verbose=0)
    actual = fast.predict(images, verbose=0)

    assert actual.dtype == np.float32
    assert fast.get_layer("stages_2_1_conv_1x1").compute_dtype == "bfloat16"
    record(
        f"{variant} bfloat16 vs float32 logits (relative)", relative_difference(actual, expected)
    )
    record(
        f"{variant} bfloat16 vs float32 top-1 agreement",
        np.mean(actual.argmax(-1) == expected.argmax(-1)),
    )
    assert relative_difference(actual, expected) <= 2e-2
    assert np.mean(actual.argmax(-1) == expected.argmax(-1)) >= 0.9


def test_bad_arguments_say_what_is_accepted():
    with pytest.raises(ValueError, match="valid: float32, bfloat16"):
        optimize_for_inference(keras_mobilevit.MobileViT_XXS(weights=None), compute_dtype="float16")
    sequential = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3)])
    with pytest.raises(TypeError, match="functional keras.Model"):
        fold_batchnorm(sequential)
