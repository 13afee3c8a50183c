"""The layers: their maths against references, the kernels against Keras, and the contract
every registered layer keeps (config, saving, shapes, mixed precision).

Runs on every backend: `test_on_other_backends` runs this file again under JAX and PyTorch.
"""

import keras
import numpy as np
import pytest
import torch
from testing import (
    random_arrays,
    run_layer_test,
    run_pytest,
    run_python,
    to_numpy,
    training_gradients,
)

import keras_mobilevit
from keras_mobilevit import kernels
from keras_mobilevit.kernels.jax import depthwise_by_shifts
from keras_mobilevit.layers import (
    DotProductAttention,
    FastActivation,
    FastBatchNormalization,
    FastConv2D,
    FastDense,
    FastDepthwiseConv2D,
    FastLayerNormalization,
    Fold,
    GroupNorm1,
    ResizeLike,
    ResizeToPatchGrid,
    SeparableSelfAttention,
    Unfold,
)
from keras_mobilevit.maths import resize_bilinear

# Every registered layer, with the input shapes it is called on (odd sizes,
# which the patch size does not divide, where it takes feature maps).
LAYERS = {
    "Unfold": (lambda: Unfold(2), [(2, 9, 7, 5)]),
    "Fold": (lambda: Fold(2), [(8, 20, 5), (2, 9, 7, 5)]),
    "DotProductAttention": (lambda: DotProductAttention(4), [(2, 6, 24)]),
    "ResizeToPatchGrid": (lambda: ResizeToPatchGrid(2), [(2, 9, 7, 3)]),
    "ResizeLike": (lambda: ResizeLike(), [(2, 3, 4, 5), (2, 9, 7, 2)]),
    "GroupNorm1": (lambda: GroupNorm1(), [(2, 4, 6, 8)]),
    "SeparableSelfAttention": (lambda: SeparableSelfAttention(), [(2, 4, 6, 9)]),
    "FastConv2D": (lambda: FastConv2D(6, 3, activation="silu"), [(2, 9, 7, 4)]),
    "FastDepthwiseConv2D": (lambda: FastDepthwiseConv2D(3, strides=2), [(2, 9, 7, 4)]),
    "FastDense": (lambda: FastDense(5, activation="silu"), [(2, 7, 6)]),
    "FastLayerNormalization": (lambda: FastLayerNormalization(), [(2, 7, 6)]),
    "FastBatchNormalization": (lambda: FastBatchNormalization(), [(2, 5, 3, 4)]),
    "FastActivation": (lambda: FastActivation("silu"), [(2, 5, 3, 4)]),
}


def test_every_registered_layer_is_tested():
    registered = {
        name.partition(">")[2]
        for name, cls in keras.saving.get_custom_objects().items()
        if name.startswith("keras_mobilevit>") and cls.__module__ != "keras_mobilevit.legacy"
    }
    assert registered - {"MobileViTModel"} == set(LAYERS)


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_contract(name, tmp_path):
    make_layer, input_shapes = LAYERS[name]
    run_layer_test(make_layer, input_shapes, tmp_path)


@pytest.mark.parametrize("merge_positions", [True, False])
def test_unfold_without_merged_positions_has_its_own_shape(merge_positions, tmp_path):
    run_layer_test(lambda: Unfold(2, merge_positions=merge_positions), [(2, 8, 6, 5)], tmp_path)


# Configurations the models use: pointwise, strided, dilated, with and
# without the activations optimize_for_inference merges.
KERNEL_CASES = [
    (lambda: FastConv2D(6, 1, activation="silu"), (2, 9, 7, 4)),
    (lambda: FastConv2D(6, 1, use_bias=False), (2, 9, 7, 4)),
    (lambda: FastConv2D(6, 3, strides=2, padding="valid", activation="relu"), (2, 9, 7, 4)),
    (lambda: FastConv2D(6, 3, dilation_rate=2, padding="same"), (2, 11, 9, 4)),
    (lambda: FastDepthwiseConv2D(3, padding="same", activation="silu"), (2, 9, 7, 4)),
    (lambda: FastDepthwiseConv2D(3, strides=2, padding="valid"), (2, 9, 7, 4)),
    (lambda: FastDepthwiseConv2D(4, strides=2, padding="same", activation="silu"), (2, 10, 8, 4)),
    (lambda: FastDepthwiseConv2D(3, dilation_rate=2, padding="same"), (2, 11, 9, 4)),
    (lambda: FastDense(5), (5, 6)),
    (lambda: FastDense(5, activation="silu"), (5, 6)),
    (lambda: FastDense(5, activation="relu"), (2, 7, 6)),
    (lambda: FastDense(5, activation="silu"), (2, 3, 4, 6)),
    (lambda: FastLayerNormalization(epsilon=1e-5), (2, 7, 6)),
    (lambda: FastLayerNormalization(center=False, scale=False), (2, 7, 6)),
    (lambda: FastLayerNormalization(axis=(1, 2)), (2, 7, 6)),
    (lambda: DotProductAttention(4), (2, 9, 24)),
    (lambda: DotProductAttention(2, scale=1.0), (3, 1, 12)),
    (lambda: FastBatchNormalization(momentum=0.9, epsilon=1e-5), (2, 9, 7, 4)),
    (lambda: FastBatchNormalization(center=False, scale=False), (3, 4, 5, 6)),
    (lambda: FastBatchNormalization(axis=1), (2, 9, 7, 4)),
    (lambda: FastActivation("silu"), (2, 9, 7, 4)),
    (lambda: FastActivation("silu"), (2, 7, 6)),
    (lambda: FastActivation("relu"), (2, 9, 7, 4)),
]


def relative_difference(actual, expected):
    return np.max(np.abs(actual - expected)) / np.max(np.abs(expected))


def _perturbed(make_layer, shape):
    layer = make_layer()
    layer.build(shape)
    # Nonzero biases and betas, non-unit gammas and statistics: what the kernels move around.
    layer.set_weights([w + np.float32(0.1 * (i + 1)) for i, w in enumerate(layer.get_weights())])
    return layer


@pytest.mark.parametrize("case", range(len(KERNEL_CASES)))
def test_kernels_compute_what_keras_computes(case):
    make_layer, shape = KERNEL_CASES[case]
    (x,) = random_arrays([shape], seed=case)
    layer = _perturbed(make_layer, shape)
    fast = to_numpy(layer(x))
    kernels.set_fast_paths(False)
    try:
        expected = to_numpy(layer(x))
    finally:
        kernels.set_fast_paths(True)
    np.testing.assert_allclose(fast, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", range(len(KERNEL_CASES)))
def test_kernels_train_with_the_gradients_of_keras(case, monkeypatch):
    # Training runs the kernels too: the outputs of a training call, the
    # gradients for the input and every weight, and the moving statistics
    # BatchNorm updates must be Keras' own, to float32 rounding.
    make_layer, shape = KERNEL_CASES[case]
    (x,) = random_arrays([shape], seed=case)
    x = x * 3 + 2  # BatchNorm's statistics away from 0 and 1
    layer = _perturbed(make_layer, shape)
    weights = layer.get_weights()
    chosen = []
    kernel_for = kernels.kernel_for

    def recorded_kernel_for(*args):
        chosen.append(kernel_for(*args))
        return chosen[-1]

    monkeypatch.setattr(kernels, "kernel_for", recorded_kernel_for)
    results = {}
    for fast in (True, False):
        layer.set_weights(weights)
        kernels.set_fast_paths(fast)
        try:
            outputs, gradients = training_gradients(layer, x, seed=case)
        finally:
            kernels.set_fast_paths(True)
        if not any(chosen):
            pytest.skip(f"no {keras.backend.backend()} kernel for this layer: Keras' own runs")
        statistics = [to_numpy(v) for v in layer.non_trainable_variables]
        results[fast] = (outputs, gradients, statistics)
    (fast_outputs, fast_gradients, fast_statistics) = results[True]
    (outputs, gradients, statistics) = results[False]
    assert len(fast_gradients) == len(gradients) == 1 + len(layer.trainable_variables)
    assert relative_difference(fast_outputs, outputs) <= 1e-5
    for fast_gradient, gradient in zip(fast_gradients, gradients, strict=True):
        assert relative_difference(fast_gradient, gradient) <= 1e-5
    for fast_statistic, statistic in zip(fast_statistics, statistics, strict=True):
        assert relative_difference(fast_statistic, statistic) <= 1e-5


@pytest.mark.parametrize(
    "make_layer",
    [
        lambda: FastBatchNormalization(momentum=0.9, epsilon=1e-5, dtype="mixed_bfloat16"),
        lambda: FastActivation("silu", dtype="mixed_bfloat16"),
        lambda: FastDepthwiseConv2D(3, strides=2, padding="valid", dtype="mixed_bfloat16"),
        lambda: FastDepthwiseConv2D(4, strides=2, padding="same", dtype="mixed_bfloat16"),
    ],
)
def test_kernels_train_under_mixed_precision_as_keras_does(make_layer):
    # The BatchNorm kernel reads and writes bfloat16 maps where Keras casts them
    # to float32 and back, and strided depthwise convolutions compute their
    # gradients in float32: the same to bfloat16 rounding (2 ** -8). JAX's
    # depthwise kernel also sums its taps in another order (1.1e-2 measured).
    tolerance = 3e-2 if keras.backend.backend() == "jax" else 1e-2
    shape = (2, 9, 7, 4)
    (x,) = random_arrays([shape], seed=1)
    layer = _perturbed(make_layer, shape)
    x = keras.ops.cast(x * 3 + 2, "bfloat16")
    results = {}
    for fast in (True, False):
        kernels.set_fast_paths(fast)
        try:
            outputs, gradients = training_gradients(layer, x)
        finally:
            kernels.set_fast_paths(True)
        results[fast] = [outputs, *gradients]
    assert keras.backend.standardize_dtype(results[True][0].dtype) == "bfloat16"
    for fast, keras_own in zip(results[True], results[False], strict=True):
        fast, keras_own = fast.astype("float32"), keras_own.astype("float32")
        assert relative_difference(fast, keras_own) <= tolerance


def test_the_switch_sends_every_layer_to_keras():
    example = {
        "tensorflow": ("dense", FastDense(4), (2, 3, 5)),
        "jax": ("conv2d", FastConv2D(4, 1), (1, 4, 4, 3)),
        "torch": ("conv2d", FastConv2D(4, 1), (1, 4, 4, 3)),
    }
    op, layer, shape = example[keras.backend.backend()]
    (x,) = random_arrays([shape])
    layer.build(shape)
    x = keras.ops.convert_to_tensor(x)
    assert kernels.kernel_for(op, layer, x) is not None
    keras_mobilevit.set_fast_paths(False)
    try:
        assert not keras_mobilevit.fast_paths_enabled()
        assert kernels.kernel_for(op, layer, x) is None
    finally:
        keras_mobilevit.set_fast_paths(True)


def test_the_environment_variable_turns_the_kernels_off():
    code = "import keras_mobilevit; print('RESULT', keras_mobilevit.fast_paths_enabled())"
    for value, expected in (("0", "False"), ("off", "False"), ("1", "True")):
        result = run_python(code, env={"KERAS_MOBILEVIT_FAST_PATHS": value})
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.split("RESULT ")[-1].strip() == expected


@pytest.mark.parametrize("size", [(8, 8), (4, 10), (6, 2)])
def test_unfold_groups_each_pixel_position_across_patches(size):
    height, width = size
    x = np.random.default_rng(0).random((2, height, width, 5), dtype=np.float32)
    patches = to_numpy(Unfold(2)(x))
    grid_h, grid_w = height // 2, width // 2
    assert patches.shape == (2 * 4, grid_h * grid_w, 5)
    # Sequence of pixel position (ph, pw) of image b: that pixel of every patch,
    # patches in row-major order, as the reference lays them out.
    for b in range(2):
        for ph in range(2):
            for pw in range(2):
                expected = x[b, ph::2, pw::2].reshape(grid_h * grid_w, 5)
                np.testing.assert_array_equal(patches[b * 4 + ph * 2 + pw], expected)
    np.testing.assert_array_equal(to_numpy(Fold(2)([patches, x])), x)


@pytest.mark.parametrize(
    ("source", "target"), [((5, 7), (6, 8)), ((6, 8), (5, 7)), ((1, 3), (2, 4)), ((9, 4), (9, 4))]
)
def test_bilinear_resize_matches_pytorch(source, target):
    x = np.random.default_rng(0).random((2, *source, 3), dtype=np.float32)
    expected = (
        torch.nn.functional.interpolate(
            torch.from_numpy(x).permute(0, 3, 1, 2),
            size=target,
            mode="bilinear",
            align_corners=False,
        )
        .permute(0, 2, 3, 1)
        .numpy()
    )
    np.testing.assert_allclose(to_numpy(resize_bilinear(x, *target)), expected, atol=1e-6)


@pytest.mark.parametrize(
    ("size", "strides", "padding", "dilation"),
    [
        ((9, 7), 1, "same", 1),
        ((9, 7), 2, "valid", 1),
        ((10, 8), 2, "same", 1),
        ((11, 9), 1, "same", 2),
    ],
)
def test_depthwise_by_shifts_equals_the_convolution(size, strides, padding, dilation):
    # The arithmetic of the JAX CPU depthwise kernel.
    rng = np.random.default_rng(0)
    x = rng.random((2, *size, 4), dtype=np.float32)
    kernel = rng.random((3, 3, 4, 1), dtype=np.float32)
    expected = keras.ops.depthwise_conv(x, kernel, strides, padding, dilation_rate=dilation)
    actual = depthwise_by_shifts(x, kernel, (strides,) * 2, padding, (dilation,) * 2)
    np.testing.assert_allclose(to_numpy(actual), to_numpy(expected), atol=1e-6)


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="run from the TensorFlow run")
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_on_other_backends(backend):
    # The environment variable is read by keras_mobilevit, whatever the backend.
    result = run_pytest(
        ["tests/test_layers.py", "-m", "not slow", "-k", "not environment_variable"], backend
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
