"""Loads a saved `.keras` model and saves its predictions, in a process of its own.

For the tests that save a model in the test process (TensorFlow) and load it
in a fresh one, on the same backend or another (`KERAS_BACKEND`):

    python tests/predict_saved.py MODEL.keras IMAGES.npy OUTPUT.npy

Prints `RESULT` and a JSON object: the backend, the model's name and class,
and its number of layers.
"""

import json
import sys

import keras
import numpy as np

import keras_mobilevit  # noqa: F401  (registers the layers the file needs)


def main(path, images, output):
    model = keras.models.load_model(path, safe_mode=True)
    np.save(output, keras.ops.convert_to_numpy(model(np.load(images), training=False)))
    info = {
        "backend": keras.backend.backend(),
        "name": model.name,
        "class": type(model).__name__,
        "layers": len(model.layers),
    }
    print("RESULT " + json.dumps(info))


if __name__ == "__main__":
    main(*sys.argv[1:4])
