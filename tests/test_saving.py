"""Saving and loading: `.keras` archives and `.weights.h5`, read back in a fresh process."""

import keras
import numpy as np
import pytest
from testing import predict_saved, random_images, run_python

import keras_mobilevit
from keras_mobilevit.layers import (
    DotProductAttention,
    Fold,
    GroupNorm1,
    ResizeToPatchGrid,
    SeparableSelfAttention,
    Unfold,
)

LOAD_WEIGHTS = """
import numpy as np
import keras, keras_mobilevit
model = keras_mobilevit.MobileViT_XXS(weights={path!r}, input_shape=(None, None, 3))
np.save({output!r}, model.predict(np.load({images!r}), verbose=0))
"""


@pytest.fixture(scope="module")
def trained_like_models(checkpoints):
    """Models with non-trivial weights and BatchNorm statistics."""
    cache = {}

    def get(variant):
        if variant not in cache:
            _, path = checkpoints(variant)
            cache[variant] = getattr(keras_mobilevit, variant)(weights=path)
        return cache[variant]

    return get


@pytest.fixture
def trained_like_model(trained_like_models):
    return trained_like_models("MobileViT_XXS")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("variant", "backend"),
    [("MobileViT_XXS", "tensorflow"), ("MobileViT_XXS", "jax"), ("MobileViTV2_050", "tensorflow")],
)
def test_keras_archive_round_trip_in_a_fresh_process(
    trained_like_models, tmp_path, variant, backend
):
    trained_like_model = trained_like_models(variant)
    path = tmp_path / "model.keras"
    trained_like_model.save(path)
    images = random_images(2, 200, 136) * 255
    outputs, info = predict_saved(path, images, backend)
    assert (info["name"], info["class"]) == (variant, "MobileViTModel")
    assert info["layers"] == len(trained_like_model.layers)
    expected = trained_like_model.predict(images, verbose=0)
    np.testing.assert_allclose(outputs, expected, atol=1e-6)


@pytest.mark.slow
def test_weights_h5_round_trip_in_a_fresh_process(trained_like_model, tmp_path):
    path = str(tmp_path / "model.weights.h5")
    trained_like_model.save_weights(path)
    images = random_images(1, 256, 256) * 255
    np.save(tmp_path / "images.npy", images)
    output = str(tmp_path / "out.npy")
    result = run_python(
        LOAD_WEIGHTS.format(path=path, images=str(tmp_path / "images.npy"), output=output)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = trained_like_model.predict(images, verbose=0)
    np.testing.assert_array_equal(np.load(output), expected)


@pytest.mark.parametrize(
    "layer",
    [
        Unfold(2, name="u"),
        Unfold(2, merge_positions=False, name="u2"),
        Fold(2, name="f"),
        DotProductAttention(4, name="a"),
        ResizeToPatchGrid(2, name="r"),
        GroupNorm1(epsilon=1e-6, name="g"),
        SeparableSelfAttention(name="s"),
    ],
)
def test_custom_layers_are_registered_and_configurable(layer):
    config = keras.saving.serialize_keras_object(layer)
    assert config["registered_name"].startswith("keras_mobilevit>")
    clone = keras.saving.deserialize_keras_object(config, safe_mode=True)
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()


LOAD_WITHOUT_IMPORT = """
import sys, keras
try:
    keras.saving.load_model({path!r})
except TypeError as e:
    sys.exit(str(e)[:1000])
"""


@pytest.mark.slow
def test_loading_without_the_import_says_what_the_file_needs(tmp_path):
    # Keras finds no class of a package it was not told of, whatever the file says; a
    # fresh process is the user who forgot `import keras_mobilevit`.
    path = str(tmp_path / "model.keras")
    keras_mobilevit.MobileViT_XXS(weights=None, input_shape=(32, 32, 3)).save(path)
    result = run_python(LOAD_WITHOUT_IMPORT.format(path=path), env={"KERAS_BACKEND": "numpy"})
    assert "Could not locate class 'MobileViTModel'" in result.stderr
    assert (
        "this file needs keras_mobilevit: pip install keras-mobilevit and "
        "`import keras_mobilevit` before load_model"
    ) in result.stderr
