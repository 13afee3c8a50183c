"""MobileViTModel: the builders' model class, and its direct inference path on PyTorch."""

import json

import keras
import pytest
from conftest import run_python

import keras_mobilevit
from keras_mobilevit import MobileViTModel

ON_TORCH = r"""
import json
import numpy as np
import keras, keras_mobilevit

calls = []
keras_call = keras.layers.Layer.__call__
def counted_call(self, *args, **kwargs):
    calls.append(self.name)
    return keras_call(self, *args, **kwargs)
keras.layers.Layer.__call__ = counted_call

rng = np.random.default_rng(0)
def randomized(model):
    for weight in model.weights:
        value = keras.ops.convert_to_numpy(weight)
        if "variance" in weight.path:
            value = rng.uniform(0.5, 1.5, value.shape)
        else:
            value = value + rng.normal(0, 0.1, value.shape)
        weight.assign(value.astype("float32"))
    return model

def run(model, images, **kwargs):
    # Outputs as lists, and how many Layer.__call__s the forward pass made.
    calls.clear()
    outputs = model(images, **kwargs)
    flat = [keras.ops.convert_to_numpy(t) for t in keras.tree.flatten(outputs)]
    return flat, len(calls)

def through_keras(model):
    # The same layers in a plain functional model, which calls them the Keras way.
    return keras.Model(model.inputs, model.outputs)

images = rng.random((2, 200, 136, 3), dtype=np.float32) * 255
report = {}
classifier = randomized(keras_mobilevit.MobileViT_XXS(weights=None))
features = randomized(keras_mobilevit.MobileViTV2_050(
    weights=None, include_top=False, feature_extractor=True))
for name, model in [
    ("classifier", classifier),
    ("optimized", keras_mobilevit.optimize_for_inference(classifier)),
    ("features", features),
]:
    direct, direct_calls = run(model, images, training=False)
    expected, keras_calls = run(through_keras(model), images, training=False)
    report[name] = {
        "type": type(model).__name__,
        "equal": all(np.array_equal(a, b) for a, b in zip(direct, expected, strict=True)),
        "calls": direct_calls,
        "keras_calls": keras_calls,
        "outputs": len(direct),
    }

calls.clear()
predicted = classifier.predict(images, verbose=0)
report["predict"] = {"calls": len(calls), "equal": bool(np.array_equal(
    predicted, run(through_keras(classifier), images, training=False)[0][0]))}

# Training runs Keras' path: dropout and batch statistics apply.
_, report["training_calls"] = run(classifier, images, training=True)

keras.config.set_dtype_policy("mixed_bfloat16")
mixed = keras_mobilevit.MobileViT_XXS(weights=None)
keras.config.set_dtype_policy("float32")
mixed_outputs, mixed_calls = run(mixed, images, training=False)
report["mixed"] = {"calls": mixed_calls, "dtype": str(mixed_outputs[0].dtype)}
print("RESULT " + json.dumps(report))
"""


@pytest.mark.slow
def test_pytorch_inference_calls_the_layers_directly_with_the_same_results():
    result = run_python(ON_TORCH, env={"KERAS_BACKEND": "torch"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.split("RESULT ")[-1])

    for name in ("classifier", "optimized", "features"):
        case = report[name]
        assert case["type"] == "MobileViTModel", name
        # Bit for bit the outputs of Keras' own path, with one Layer.__call__ (the
        # model's) instead of one per layer.
        assert case["equal"], name
        assert case["calls"] == 1, name
        assert case["keras_calls"] > 100, name
    assert report["features"]["outputs"] == 5
    assert report["predict"] == {"calls": 1, "equal": True}
    # What the direct path would not reproduce goes through Keras.
    assert report["training_calls"] > 100
    assert report["mixed"]["calls"] > 100
    assert report["mixed"]["dtype"] == "float32"  # the classifier's softmax is float32


@pytest.mark.parametrize(
    "build",
    [
        lambda: keras_mobilevit.MobileViT_XXS(weights=None),
        lambda: keras_mobilevit.MobileViTV2_050(weights=None, include_top=False, pooling="avg"),
        lambda: keras_mobilevit.MobileViT_XXS_DeepLabV3(weights=None),
        lambda: keras_mobilevit.optimize_for_inference(keras_mobilevit.MobileViT_XXS(weights=None)),
    ],
)
def test_builders_and_inference_copies_are_mobilevit_models(build):
    model = build()
    assert isinstance(model, MobileViTModel)
    assert isinstance(model, keras.Model)
    config = keras.saving.serialize_keras_object(model)
    assert config["registered_name"] == "keras_mobilevit>MobileViTModel"
