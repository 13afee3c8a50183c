"""keras_mobilevit against timm, with random weights: logits and feature maps."""

import keras
import numpy as np
import pytest
from testing import (
    TOLERANCE,
    V1_VARIANTS,
    V2_VARIANTS,
    random_images,
    record,
    record_measured,
    run_pytest,
    timm_forward,
    to_numpy,
)

import keras_mobilevit

# Where the numbers come from, in the parity table: the backend, and whether
# the backend kernels were off (KERAS_MOBILEVIT_FAST_PATHS=0).
BACKEND = keras.backend.backend() + ("" if keras_mobilevit.fast_paths_enabled() else " kernels off")

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
    actual = to_numpy(model.predict(images, verbose=0))
    diff = np.abs(actual - expected).max()
    record(f"{variant} logits {size} {BACKEND}, dynamic input shape", diff)
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
    diff = np.abs(to_numpy(model.predict(images * 255.0, verbose=0)) - expected).max()
    record(f"{variant} logits (2, 200, 136) {BACKEND}, static shape, [0,255] input", diff)
    assert diff <= TOLERANCE


@pytest.mark.parametrize("variant", [*V1_VARIANTS, "MobileViTV2_075"])
def test_features_match_timm_forward_features(checkpoints, variant):
    timm_model, path = checkpoints(variant)
    model = getattr(keras_mobilevit, variant)(
        weights=path, include_top=False, include_preprocessing=False
    )
    images = random_images(1, 256, 192, seed=2)
    expected = timm_forward(timm_model, images, features=True)
    actual = to_numpy(model.predict(images, verbose=0))
    # Features before pooling are large with random weights (the logits'
    # tolerance is absolute); hold them to the same relative precision.
    scale = max(1.0, float(np.abs(expected).max()))
    diff = np.abs(actual - expected).max() / scale
    record(f"{variant} forward_features (1, 256, 192) {BACKEND}, relative to max |x|", diff)
    assert actual.shape == expected.shape
    assert diff <= TOLERANCE


@pytest.mark.parametrize("variant", ["MobileViT_XS", "MobileViTV2_100"])
def test_softmax_probabilities_match_timm(checkpoints, variant):
    timm_model, path = checkpoints(variant)
    model = getattr(keras_mobilevit, variant)(weights=path, include_preprocessing=False)
    images = random_images(1, 256, 256, seed=3)
    logits = timm_forward(timm_model, images)
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    actual = to_numpy(model.predict(images, verbose=0))
    assert np.abs(actual - expected).max() <= 1e-5
    assert actual.argmax() == expected.argmax()


@pytest.mark.parametrize("variant", ["MobileViT_XXS", "MobileViTV2_050"])
def test_folded_and_optimized_models_match_timm(checkpoints, variant):
    timm_model, path = checkpoints(variant)
    model = getattr(keras_mobilevit, variant)(
        weights=path, include_preprocessing=False, classifier_activation=None
    )
    rewrites = {
        "BatchNorm folded": keras_mobilevit.fold_batchnorm(model),
        "optimized": keras_mobilevit.optimize_for_inference(model),
    }
    for i, size in enumerate([(2, 256, 256), (1, 200, 136)]):
        images = random_images(*size, seed=10 + i)
        expected = timm_forward(timm_model, images)
        for name, rewritten in rewrites.items():
            diff = np.abs(to_numpy(rewritten(images, training=False)) - expected).max()
            record(f"{variant} logits {size} {BACKEND}, {name}", diff)
            assert diff <= TOLERANCE, (name, size)


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != "tensorflow", reason="run from the TensorFlow run")
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_on_other_backends(backend):
    """This file's smallest variants, run under JAX and PyTorch.

    Not the optimized MobileViT_XXS: tests/test_inference.py holds it to TensorFlow's
    outputs on these backends, and run eagerly on JAX it takes a minute.
    """
    optimized = "tests/test_parity.py::test_folded_and_optimized_models_match_timm[MobileViT_XXS]"
    result = run_pytest(
        ["tests/test_parity.py", "-m", "not slow", "-k", "XXS or V2_050", "--deselect", optimized],
        backend,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert record_measured(result.stdout) >= 10
