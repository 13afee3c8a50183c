"""keras_mobilevit against timm, with random weights: logits and feature maps."""

import json

import numpy as np
import pytest
from testing import (
    TOLERANCE,
    V1_VARIANTS,
    V2_VARIANTS,
    random_images,
    record,
    run_python,
    timm_forward,
)

import keras_mobilevit

# (batch, height, width): the training size; for v1 a common smaller one; for
# one v2 width the 384 size of the ImageNet-21k checkpoints; and a non-square
# size whose MobileViT stages (25x17, 13x9, 7x5 pixels) the patch size does
# not divide, so the reference's bilinear resizes are exercised.
CASES = [
    *[(v, size) for v in V1_VARIANTS for size in [(2, 256, 256), (1, 224, 224), (1, 200, 136)]],
    *[(v, size) for v in V2_VARIANTS for size in [(2, 256, 256), (1, 200, 136)]],
    ("MobileViTV2_100", (1, 384, 384)),
]


@pytest.fixture(scope="module")
def dynamic_models(checkpoints):
    """One model with `input_shape=(None, None, 3)` per variant, used at every size."""
    cache = {}

    def get(variant):
        if variant not in cache:
            timm_model, path = checkpoints(variant)
            model = getattr(keras_mobilevit, variant)(
                weights=path, include_preprocessing=False, classifier_activation=None
            )
            cache[variant] = timm_model, model
        return cache[variant]

    return get


@pytest.mark.parametrize(("variant", "size"), CASES, ids=lambda c: str(c).replace(", ", "x"))
def test_logits_match_timm(dynamic_models, variant, size):
    timm_model, model = dynamic_models(variant)
    images = random_images(*size)
    expected = timm_forward(timm_model, images)
    # Random weights must still give logits that differ across classes, or
    # the comparison would prove little.
    assert expected.std() > 0.05
    actual = np.asarray(model.predict(images, verbose=0))
    diff = np.abs(actual - expected).max()
    record(f"{variant} logits {size} tensorflow, dynamic input shape", diff)
    assert actual.shape == expected.shape
    assert diff <= TOLERANCE


@pytest.mark.parametrize(
    "variant", ["MobileViT_XXS", "MobileViT_XS", "MobileViT_S", "MobileViTV2_050"]
)
def test_static_input_shape_and_preprocessing_match_timm(checkpoints, variant):
    """A fixed non-divisible input size, with the built-in [0, 255] rescaling."""
    timm_model, path = checkpoints(variant)
    model = getattr(keras_mobilevit, variant)(
        weights=path, input_shape=(200, 136, 3), classifier_activation=None
    )
    images = random_images(2, 200, 136, seed=1)
    expected = timm_forward(timm_model, images)
    diff = np.abs(np.asarray(model.predict(images * 255.0, verbose=0)) - expected).max()
    record(f"{variant} logits (2, 200, 136) tensorflow, static shape, [0,255] input", diff)
    assert diff <= TOLERANCE


@pytest.mark.parametrize("variant", [*V1_VARIANTS, "MobileViTV2_075"])
def test_features_match_timm_forward_features(checkpoints, variant):
    timm_model, path = checkpoints(variant)
    model = getattr(keras_mobilevit, variant)(
        weights=path, include_top=False, include_preprocessing=False
    )
    images = random_images(1, 256, 192, seed=2)
    expected = timm_forward(timm_model, images, features=True)
    actual = np.asarray(model.predict(images, verbose=0))
    # Features before pooling are large with random weights (the logits'
    # tolerance is absolute); hold them to the same relative precision.
    scale = max(1.0, float(np.abs(expected).max()))
    diff = np.abs(actual - expected).max() / scale
    record(f"{variant} forward_features (1, 256, 192) tensorflow, relative to max |x|", diff)
    assert actual.shape == expected.shape
    assert diff <= TOLERANCE


@pytest.mark.parametrize("variant", ["MobileViT_XS", "MobileViTV2_100"])
def test_softmax_probabilities_match_timm(checkpoints, variant):
    timm_model, path = checkpoints(variant)
    model = getattr(keras_mobilevit, variant)(weights=path, include_preprocessing=False)
    images = random_images(1, 256, 256, seed=3)
    logits = timm_forward(timm_model, images)
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    actual = np.asarray(model.predict(images, verbose=0))
    assert np.abs(actual - expected).max() <= 1e-5
    assert actual.argmax() == expected.argmax()


OTHER_BACKEND_CHECK = """
import json, sys
import numpy as np
import keras, keras_mobilevit
assert keras.backend.backend() == {backend!r}, keras.backend.backend()
model = keras_mobilevit.{variant}(
    weights={path!r}, include_preprocessing=False, classifier_activation=None,
    input_shape=(None, None, 3))
folded = keras_mobilevit.fold_batchnorm(model)
optimized = keras_mobilevit.optimize_for_inference(model)
data = np.load({inputs!r})
diffs = {{}}
for key in data.files:
    if key.startswith("images"):
        for name, m in (("", model), (" BatchNorm folded", folded), (" optimized", optimized)):
            out = keras.ops.convert_to_numpy(m(data[key], training=False))
            diffs[key + name] = float(np.abs(out - data["logits" + key[6:]]).max())
print("RESULT " + json.dumps(diffs))
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
@pytest.mark.parametrize("variant", ["MobileViT_XXS", "MobileViTV2_050"])
def test_logits_match_timm_on_other_backends(checkpoints, tmp_path, backend, variant):
    timm_model, path = checkpoints(variant)
    arrays = {}
    for i, size in enumerate([(2, 256, 256), (1, 200, 136)]):
        arrays[f"images{i}"] = random_images(*size, seed=10 + i)
        arrays[f"logits{i}"] = timm_forward(timm_model, arrays[f"images{i}"])
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, **arrays)
    code = OTHER_BACKEND_CHECK.format(
        backend=backend, variant=variant, path=path, inputs=str(inputs)
    )
    result = run_python(code, env={"KERAS_BACKEND": backend})
    assert result.returncode == 0, result.stderr[-3000:]
    line = [ln for ln in result.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    diffs = json.loads(line[len("RESULT ") :])
    for key, diff in diffs.items():
        images, _, folded = key.partition(" ")
        record(f"{variant} logits {arrays[images].shape[:3]} {backend} {folded}", diff)
        assert diff <= TOLERANCE, (key, diff)
