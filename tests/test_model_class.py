"""MobileViTModel: the builders' model class, and its direct inference path on PyTorch.

The direct-path tests run on PyTorch only; `test_on_pytorch` runs this file
there from the TensorFlow run.
"""

import keras
import numpy as np
import pytest
from testing import run_pytest, to_numpy

import keras_mobilevit
from keras_mobilevit import MobileViTModel

ON_TORCH = keras.backend.backend() == "torch"
torch_only = pytest.mark.skipif(not ON_TORCH, reason="the direct path is PyTorch's")


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


@pytest.fixture
def count_calls(monkeypatch):
    """Counts `Layer.__call__`s: one per model call on the direct path, one per layer on Keras'."""
    calls = []
    keras_call = keras.layers.Layer.__call__

    def counted_call(self, *args, **kwargs):
        calls.append(self.name)
        return keras_call(self, *args, **kwargs)

    monkeypatch.setattr(keras.layers.Layer, "__call__", counted_call)

    def run(model, images, **kwargs):
        calls.clear()
        outputs = model(images, **kwargs)
        return [to_numpy(t) for t in keras.tree.flatten(outputs)], len(calls)

    run.calls = calls
    return run


def randomized(model, seed=0):
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        value = to_numpy(weight)
        if "variance" in weight.path:
            value = rng.uniform(0.5, 1.5, value.shape)
        else:
            value = value + rng.normal(0, 0.1, value.shape)
        weight.assign(value.astype("float32"))
    return model


def through_keras(model):
    # The same layers in a plain functional model, which calls them the Keras way.
    return keras.Model(model.inputs, model.outputs)


IMAGES = np.random.default_rng(0).random((2, 200, 136, 3), dtype=np.float32) * 255


@pytest.fixture(scope="module")
def classifier():
    return randomized(keras_mobilevit.MobileViT_XXS(weights=None))


@torch_only
@pytest.mark.parametrize("kind", ["classifier", "optimized", "features"])
def test_inference_calls_the_layers_directly_with_the_same_results(kind, classifier, count_calls):
    model = {
        "classifier": lambda: classifier,
        "optimized": lambda: keras_mobilevit.optimize_for_inference(classifier),
        "features": lambda: randomized(
            keras_mobilevit.MobileViTV2_050(weights=None, include_top=False, feature_extractor=True)
        ),
    }[kind]()
    direct, direct_calls = count_calls(model, IMAGES, training=False)
    expected, keras_calls = count_calls(through_keras(model), IMAGES, training=False)
    # Bit for bit Keras' outputs, with one Layer.__call__ (the model's) instead of one per layer.
    for a, b in zip(direct, expected, strict=True):
        np.testing.assert_array_equal(a, b)
    assert direct_calls == 1
    assert keras_calls > 100
    assert len(direct) == (5 if kind == "features" else 1)


@torch_only
def test_predict_takes_the_direct_path(classifier, count_calls):
    expected, _ = count_calls(through_keras(classifier), IMAGES, training=False)
    count_calls.calls.clear()
    predicted = classifier.predict(IMAGES, verbose=0)
    assert len(count_calls.calls) == 1
    np.testing.assert_array_equal(predicted, expected[0])


@torch_only
def test_what_the_direct_path_would_not_reproduce_goes_through_keras(classifier, count_calls):
    # Training: dropout and batch statistics apply.
    _, training_calls = count_calls(classifier, IMAGES, training=True)
    assert training_calls > 100
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = keras_mobilevit.MobileViT_XXS(weights=None)
    finally:
        keras.config.set_dtype_policy("float32")
    outputs, mixed_calls = count_calls(mixed, IMAGES, training=False)
    assert mixed_calls > 100
    assert outputs[0].dtype == np.float32  # the classifier's softmax is float32


@torch_only
@pytest.mark.parametrize(
    "internal",
    [
        "nodes_by_depth",
        "standardize_inputs",
        "outputs_struct",
        "arguments",
        "remat",
        "get_keras_mask",
    ],
)
def test_a_keras_release_without_an_internal_takes_keras_path(
    internal, classifier, count_calls, monkeypatch
):
    from keras_mobilevit.kernels import torch as torch_kernels

    expected, _ = count_calls(classifier, IMAGES, training=False)
    model = keras_mobilevit.MobileViTModel(classifier.inputs, classifier.outputs)
    if internal == "remat":
        # A release with rematerialisation (keras.RematScope) but another attribute for it.
        monkeypatch.setattr(keras, "RematScope", object, raising=False)
        internal = "remat_mode"
    monkeypatch.setitem(torch_kernels.KERAS_INTERNALS, internal, "_renamed_by_a_new_release")
    outputs, calls = count_calls(model, IMAGES, training=False)
    assert calls > 100
    np.testing.assert_array_equal(outputs[0], expected[0])


@torch_only
def test_the_switch_sends_the_model_down_keras_path(classifier, count_calls):
    keras_mobilevit.set_fast_paths(False)
    try:
        _, calls = count_calls(classifier, IMAGES, training=False)
    finally:
        keras_mobilevit.set_fast_paths(True)
    assert calls > 100


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="run from the TensorFlow run")
def test_on_pytorch():
    result = run_pytest(["tests/test_model_class.py"], "torch")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
