"""Bad input gets a clear error, and nothing is left half done."""

import keras
import numpy as np
import pytest

import keras_mobilevit
from keras_mobilevit import loading


def test_unknown_weights_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"Unknown weights='imagenet21k'.*'imagenet'"):
        keras_mobilevit.MobileViT_XS(weights="imagenet21k")


@pytest.mark.parametrize("path", ["missing.safetensors", "some/dir/missing.weights.h5"])
def test_missing_weights_file(path):
    with pytest.raises(FileNotFoundError, match="missing"):
        keras_mobilevit.MobileViT_XS(weights=path)


def test_malformed_hub_reference():
    with pytest.raises(ValueError, match="hf://owner/repo"):
        keras_mobilevit.MobileViT_XS(weights="hf://just-a-name")


def test_imagenet_weights_need_1000_classes():
    # Checked before any download: no Hub is reachable here, and none is asked.
    with pytest.raises(ValueError, match="classes` must be 1000"):
        keras_mobilevit.MobileViT_XS(weights="imagenet", classes=10)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((31, 64, 3), "at least 32"),
        ((64, 16, 3), "at least 32"),
        ((256, 256), r"\(height, width, channels\)"),
    ],
)
def test_bad_input_shape(shape, message):
    with pytest.raises(ValueError, match=message):
        keras_mobilevit.MobileViT_XXS(weights=None, input_shape=shape)


@pytest.mark.parametrize("kwargs", [{"pooling": "mean"}, {"classes": 0}, {"weights": 3}])
def test_other_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        keras_mobilevit.MobileViT_XXS(**{"weights": None, **kwargs})


def snapshot(model):
    return [keras.ops.convert_to_numpy(w.value) for w in model.weights]


def assert_unchanged(model, before):
    for variable, value in zip(model.weights, before, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable.value), value)


FIRST_MISMATCH = (
    r"'stages.0.0.conv1_1x1.conv.weight' .* shape \(64, 16, 1, 1\), "
    r"but this model needs \(32, 16, 1, 1\)"
)


def test_checkpoint_of_another_variant_names_the_tensor_and_loads_nothing(checkpoints):
    _, xs_path = checkpoints("MobileViT_XS")
    with pytest.raises(ValueError, match=FIRST_MISMATCH) as info:
        keras_mobilevit.MobileViT_XXS(weights=xs_path)
    assert xs_path in str(info.value)
    # The same through the loader, on a model we keep: not one variable changed.
    model = keras_mobilevit.MobileViT_XXS(weights=None)
    before = snapshot(model)
    with pytest.raises(ValueError, match=FIRST_MISMATCH):
        loading.load(model, xs_path, include_top=True)
    assert_unchanged(model, before)


def test_classifier_of_another_size_is_reported(checkpoints):
    _, path = checkpoints("MobileViT_XXS")
    with pytest.raises(ValueError, match=r"'head.fc.weight'.*\(1000, 320\).*\(10, 320\)"):
        keras_mobilevit.MobileViT_XXS(weights=path, classes=10)
    # Without the top, the classifier in the file is not needed.
    model = keras_mobilevit.MobileViT_XXS(weights=path, include_top=False)
    assert model.output_shape[-1] == 320


def test_corrupt_safetensors_file_is_named(tmp_path, checkpoints):
    _, path = checkpoints("MobileViT_XXS")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(open(path, "rb").read()[:5000])
    with pytest.raises(ValueError, match="truncated.safetensors.*corrupt"):
        keras_mobilevit.MobileViT_XXS(weights=str(truncated))


# Keras warns about every layer it cannot match before it raises: expected here.
@pytest.mark.filterwarnings("ignore:Skipping nested container")
def test_keras_weights_file_of_another_variant_loads_nothing(tmp_path):
    xs = keras_mobilevit.MobileViT_XS(weights=None)
    path = str(tmp_path / "xs.weights.h5")
    xs.save_weights(path)
    with pytest.raises(ValueError, match="xs.weights.h5"):
        keras_mobilevit.MobileViT_XXS(weights=path)
    model = keras_mobilevit.MobileViT_XXS(weights=None)
    before = snapshot(model)
    with pytest.raises(ValueError):
        loading.load(model, path, include_top=True)
    assert_unchanged(model, before)


def test_channels_first_is_refused_with_a_fix():
    keras.config.set_image_data_format("channels_first")
    try:
        with pytest.raises(ValueError, match="channels_last"):
            keras_mobilevit.MobileViT_XXS(weights=None)
    finally:
        keras.config.set_image_data_format("channels_last")


@pytest.mark.parametrize("variant", ["MobileViTV2_050", "MobileViTV2_125", "MobileViT_S"])
def test_imagenet22k_on_a_width_without_it_lists_the_widths_that_have_it(variant):
    with pytest.raises(
        ValueError, match="exist only for MobileViTV2_150, MobileViTV2_175, MobileViTV2_200"
    ):
        getattr(keras_mobilevit, variant)(weights="imagenet22k")


def test_imagenet22k_weights_need_1000_classes():
    with pytest.raises(ValueError, match="classes` must be 1000"):
        keras_mobilevit.MobileViTV2_150(weights="imagenet22k", classes=5)


def test_v1_checkpoint_into_v2_names_the_tensor(checkpoints):
    _, path = checkpoints("MobileViT_XXS")
    with pytest.raises(ValueError, match=r"stages.0.0.conv3_1x1.conv.weight.*\(16, 32, 1, 1\)"):
        keras_mobilevit.MobileViTV2_050(weights=path)
