"""Saving and loading: `.keras` archives and `.weights.h5`, read back in a fresh process."""

import json

import keras
import numpy as np
import pytest
from conftest import random_images, run_python

import keras_mobilevit
from keras_mobilevit.layers import Fold, MultiHeadSelfAttention, Unfold

LOAD_MODEL = """
import json, sys
import numpy as np
import keras, keras_mobilevit
model = keras.models.load_model({path!r}, safe_mode=True)
out = model.predict(np.load({images!r}), verbose=0)
np.save({output!r}, out)
print("RESULT " + json.dumps({{"name": model.name, "layers": len(model.layers)}}))
"""

LOAD_WEIGHTS = """
import numpy as np
import keras, keras_mobilevit
model = keras_mobilevit.MobileViT_XXS(weights={path!r}, input_shape=(None, None, 3))
np.save({output!r}, model.predict(np.load({images!r}), verbose=0))
"""


@pytest.fixture(scope="module")
def trained_like_model(checkpoints):
    """A model with non-trivial weights and BatchNorm statistics."""
    _, path = checkpoints("MobileViT_XXS")
    return keras_mobilevit.MobileViT_XXS(weights=path)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_keras_archive_round_trip_in_a_fresh_process(trained_like_model, tmp_path, backend):
    path = str(tmp_path / "model.keras")
    trained_like_model.save(path)
    images = random_images(2, 200, 136) * 255
    np.save(tmp_path / "images.npy", images)
    output = str(tmp_path / "out.npy")
    code = LOAD_MODEL.format(path=path, images=str(tmp_path / "images.npy"), output=output)
    result = run_python(code, env={"KERAS_BACKEND": backend})
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads(result.stdout.split("RESULT ")[-1])
    assert info == {"name": "MobileViT_XXS", "layers": len(trained_like_model.layers)}
    expected = trained_like_model.predict(images, verbose=0)
    np.testing.assert_allclose(np.load(output), expected, atol=1e-6)


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
    "layer", [Unfold(2, name="u"), Fold(2, name="f"), MultiHeadSelfAttention(4, name="a")]
)
def test_custom_layers_are_registered_and_configurable(layer):
    config = keras.saving.serialize_keras_object(layer)
    assert config["registered_name"].startswith("keras_mobilevit>")
    clone = keras.saving.deserialize_keras_object(config, safe_mode=True)
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()
