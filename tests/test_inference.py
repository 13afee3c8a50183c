"""Inference copies: BatchNorm folded into the convolutions, optionally in bfloat16."""

import keras
import numpy as np
import pytest
from testing import TOLERANCE, predict_saved, random_images, record, timm_forward

import keras_mobilevit
from keras_mobilevit import fold_batchnorm, optimize_for_inference


@pytest.fixture(autouse=True)
def fixed_initial_weights():
    # The models' initial weights come from Keras' global generator, so without a
    # seed they depend on which tests ran before; the float32 rounding measured
    # below moves with them (1e-6 to 6e-6 relative across seeds).
    keras.utils.set_random_seed(0)


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


def with_random_weights(model, seed=0):
    """Random BatchNorm statistics and perturbed weights everywhere (LayerNorms included)."""
    rng = np.random.default_rng(seed)
    for weight in with_random_statistics(model, seed).weights:
        value = keras.ops.convert_to_numpy(weight)
        if "moving" not in weight.path:
            weight.assign((value + rng.normal(0, 0.1, value.shape)).astype(value.dtype))
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


@pytest.mark.parametrize(
    "variant, size",
    [
        ("MobileViT_XXS", (200, 136)),
        ("MobileViT_XXS", (255, 199)),
        ("MobileViTV2_050", (200, 136)),
        ("MobileViT_XXS_DeepLabV3", (200, 136)),
    ],
)
def test_optimized_model_computes_the_same_with_fewer_layers(variant, size):
    model = with_random_weights(getattr(keras_mobilevit, variant)(weights=None))
    fast = optimize_for_inference(model)
    images = random_images(2, *size, seed=1) * 255

    difference = relative_difference(
        fast.predict(images, verbose=0), model.predict(images, verbose=0)
    )
    record(f"{variant} optimize_for_inference vs not, 2x{size[0]}x{size[1]} (relative)", difference)
    assert difference <= 1e-5
    kept = [layer.name for layer in fast.layers]
    assert kept == [layer.name for layer in model.layers if layer.name in kept]
    removed = {type(layer).__name__ for layer in model.layers if layer.name not in kept}
    assert removed == {"FastBatchNormalization", "FastActivation", "ZeroPadding2D", "Rescaling"}
    # What each merge leaves behind, in MobileViT's first strided block.
    expand = fast.get_layer("stages_1_0_conv1_1x1_conv")
    assert expand.activation is keras.activations.silu and expand.use_bias
    depthwise = fast.get_layer("stages_1_0_conv2_kxk_conv")
    assert depthwise.kernel_size == (4, 4) and depthwise.padding == "same"
    # Attention's query scaling went into the qkv projections.
    attentions = [
        layer
        for layer in fast.layers
        if isinstance(layer, keras_mobilevit.layers.DotProductAttention)
    ]
    assert all(attention.scale == 1.0 for attention in attentions)
    assert fast.output_names == model.output_names


def test_layer_norm_scale_and_shift_move_into_the_projection():
    model = with_random_weights(keras_mobilevit.MobileViT_XXS(weights=None))
    fast = optimize_for_inference(model)
    norm = fast.get_layer("stages_2_1_transformer_0_norm1")
    assert not norm.weights  # no scale or shift left
    assert fast.get_layer("stages_2_1_transformer_0_mlp_fc1").activation is keras.activations.silu
    # The block's last norm feeds Fold, not a Dense: it keeps its weights.
    assert len(fast.get_layer("stages_2_1_norm").weights) == 2


def test_only_layers_read_once_are_merged():
    inputs = keras.Input((None, None, 4))
    padded = keras.layers.ZeroPadding2D(1, name="pad_read_twice")(inputs)
    x = keras.layers.DepthwiseConv2D(3, strides=2, name="after_shared_pad")(padded)
    y = keras.layers.DepthwiseConv2D(3, strides=2, name="other")(padded)
    x = keras.layers.Add()([x, y])
    x = keras.layers.ZeroPadding2D(((1, 0), (1, 0)), name="asymmetric")(x)
    x = keras.layers.DepthwiseConv2D(3, strides=2, name="after_asymmetric")(x)
    x = keras.layers.ZeroPadding2D(2, name="pad5")(x)
    x = keras.layers.DepthwiseConv2D(5, strides=2, name="depthwise5")(x)
    tokens = keras.layers.Reshape((-1, 4))(x)
    norm = keras.layers.LayerNormalization(name="norm_read_twice")(tokens)
    a = keras.layers.Dense(4, name="a")(norm)
    b = keras.layers.Dense(4, name="b")(norm)
    x = keras.layers.Concatenate()([a, b])
    x = keras.layers.LayerNormalization(name="norm")(x)
    x = keras.layers.Dense(3, use_bias=False, name="projection")(x)
    outputs = keras.layers.Activation("relu", name="output")(x)  # a model output
    model = with_random_weights(keras.Model(inputs, outputs), seed=3)

    fast = optimize_for_inference(model)

    kept = {layer.name for layer in fast.layers}
    assert {"pad_read_twice", "asymmetric", "norm_read_twice", "output"} <= kept
    assert not {"pad5"} & kept
    assert fast.get_layer("depthwise5").kernel_size == (6, 6)
    assert fast.get_layer("projection").use_bias  # it took the norm's shift
    assert not fast.get_layer("norm").weights and fast.get_layer("norm_read_twice").weights
    for height, width in [(37, 50), (40, 33)]:
        images = random_images(2, height, width, seed=4)[..., :1].repeat(4, axis=-1)
        assert (
            relative_difference(fast.predict(images, verbose=0), model.predict(images, verbose=0))
            <= 1e-5
        )


def test_input_rescaling_moves_into_the_convolution_it_feeds():
    def model_with(scale=1 / 255, offset=0.0, read_twice=False, groups=1, seed=0):
        inputs = keras.Input((None, None, 4))
        rescaled = keras.layers.Rescaling(scale, offset, name="rescaling")(inputs)
        x = keras.layers.ZeroPadding2D(1, name="pad")(rescaled)
        x = keras.layers.Conv2D(4, 3, strides=2, groups=groups, name="conv")(x)
        if read_twice:
            x = keras.layers.Add()(
                [x, keras.layers.Conv2D(4, 3, strides=2, padding="same")(rescaled)]
            )
        model = with_random_weights(keras.Model(inputs, keras.layers.Flatten()(x)), seed=seed)
        return model, optimize_for_inference(model)

    images = random_images(2, 17, 22, seed=8)[..., :1].repeat(4, axis=-1) * 255
    for settings, merged in [
        ({}, True),
        ({"scale": [0.5, 0.25, 2.0, 1 / 255]}, True),  # one scale per channel
        ({"scale": 0.5, "groups": 2}, True),
        ({"scale": [0.5, 0.25, 2.0, 1.0], "groups": 2}, False),
        ({"offset": -1.0}, False),  # the offset would meet the padding
        ({"read_twice": True}, False),
    ]:
        model, fast = model_with(**settings)
        kept = {layer.name for layer in fast.layers}
        assert ("rescaling" not in kept) == merged, settings
        assert (
            relative_difference(fast.predict(images, verbose=0), model.predict(images, verbose=0))
            <= 1e-5
        ), settings


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
@pytest.mark.parametrize("variant", ["MobileViT_XXS", "MobileViT_XXS_DeepLabV3"])
def test_optimized_model_computes_the_same_on_other_backends(tmp_path, backend, variant):
    # Each backend has its own paths in keras_mobilevit's layers (convolutions on
    # channels-first views on PyTorch, shifted depthwise sums on JAX): the same saved
    # model must give TensorFlow's outputs there, dilated and merged layers included.
    fast = optimize_for_inference(
        with_random_weights(getattr(keras_mobilevit, variant)(weights=None))
    )
    path = tmp_path / "fast.keras"
    fast.save(path)
    images = random_images(2, 200, 136, seed=7) * 255
    outputs, _ = predict_saved(path, images, backend)
    expected = fast.predict(images, verbose=0)
    difference = relative_difference(outputs, expected)
    record(f"{variant} optimize_for_inference on {backend} vs tensorflow (relative)", difference)
    assert difference <= 1e-5


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
