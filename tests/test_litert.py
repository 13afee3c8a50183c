"""The models convert to LiteRT with builtin ops only (a guard until the export issue).

Flex (TensorFlow) ops and transposes of more than 4 dimensions break on-device
runtimes; GroupNorm and the patch unfold/fold are the usual culprits.
"""

import warnings

import numpy as np
import pytest
from conftest import random_images, record

import keras_mobilevit

tf = pytest.importorskip("tensorflow")


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["MobileViT_XXS", "MobileViTV2_050"])
@pytest.mark.parametrize("size", [(256, 256), (200, 136)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_litert_export_uses_builtin_ops_and_matches_keras(tmp_path, variant, size):
    model = getattr(keras_mobilevit, variant)(
        weights=None, input_shape=(*size, 3), classifier_activation=None
    )
    path = str(tmp_path / "model.tflite")
    model.export(path, format="litert", verbose=False)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        interpreter = tf.lite.Interpreter(model_path=path)
    ops = interpreter._get_ops_details()
    names = {op["op_name"] for op in ops}
    assert not {n for n in names if n.startswith("Flex") or n in ("CUSTOM", "DELEGATE")}, names
    shapes = {t["index"]: t["shape"] for t in interpreter.get_tensor_details()}
    transpose_ranks = {len(shapes[op["inputs"][0]]) for op in ops if op["op_name"] == "TRANSPOSE"}
    assert transpose_ranks and max(transpose_ranks) <= 4

    interpreter.allocate_tensors()
    images = random_images(1, *size) * 255
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images)
    interpreter.invoke()
    logits = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    diff = np.abs(logits - model.predict(images, verbose=0)).max()
    record(f"{variant} LiteRT fp32 vs Keras, logits (1, {size[0]}, {size[1]})", diff)
    assert diff <= 1e-4
