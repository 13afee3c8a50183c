"""Helpers and constants the test modules share; fixtures and hooks stay in conftest.py."""

import json
import os
import subprocess
import sys

import keras
import numpy as np

TESTS = os.path.dirname(os.path.abspath(__file__))

V1_VARIANTS = ["MobileViT_XXS", "MobileViT_XS", "MobileViT_S"]
V2_VARIANTS = [f"MobileViTV2_{w}" for w in ("050", "075", "100", "125", "150", "175", "200")]
# keras_mobilevit builder -> timm model name.
TIMM_NAMES = {
    **{v: v.lower() for v in V1_VARIANTS},
    **{v: v.lower() for v in V2_VARIANTS},
}
TOLERANCE = 1e-4

# Parity results collected during the run and printed in the terminal summary.
MEASURED = []


def randomized_timm_model(timm_name, seed=0):
    """A timm model in eval mode with random weights and random BatchNorm statistics.

    Fresh timm models have running mean 0 and variance 1, which would hide a
    converter that swaps or drops the statistics; randomising every norm's
    affine parameters likewise exposes a swapped gamma and beta.
    """
    import timm
    import torch

    torch.manual_seed(seed)
    model = timm.create_model(timm_name, pretrained=False).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
            if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    return model


def save_checkpoint(model, path):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return str(path)


def timm_forward(model, images, features=False):
    """Runs a timm model on NHWC images in [0, 1]; returns logits or NHWC features."""
    import torch

    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        if features:
            return model.forward_features(x).numpy().transpose(0, 2, 3, 1)
        return model(x).numpy()


def random_images(batch, height, width, seed=0):
    return np.random.default_rng(seed).random((batch, height, width, 3), dtype=np.float32)


def record(what, max_diff):
    MEASURED.append((what, float(max_diff)))


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def random_arrays(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape).astype("float32") for shape in shapes]


def training_gradients(layer, x, seed=0):
    """A training call's outputs, and the gradients of a random projection of them.

    Returns `(outputs, gradients)`: the gradients with respect to `x` and to
    each of the layer's trainable weights, in that order, as numpy arrays, by
    the running backend's autodiff (a `training=True` call, as in `fit`).
    """
    backend = keras.backend.backend()
    rng = np.random.default_rng([seed, 1])  # not the stream `random_arrays(seed)` drew x from
    projection = rng.normal(size=layer.compute_output_shape(x.shape))
    projection = projection.astype("float32")
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = layer(x, training=True)
            loss = tf.reduce_sum(tf.cast(outputs, "float32") * projection)
        gradients = tape.gradient(loss, [x, *layer.trainable_variables])
    elif backend == "jax":
        import jax

        def loss(x, trainable):
            # The weights traced as arguments; `__call__` keeps Keras' autocasting.
            mapping = list(zip(layer.trainable_variables, trainable, strict=True))
            with keras.StatelessScope(state_mapping=mapping):
                outputs = layer(x, training=True)
            return (outputs.astype("float32") * projection).sum(), outputs

        trainable = [v.value for v in layer.trainable_variables]
        (_, outputs), (x_gradient, weight_gradients) = jax.value_and_grad(
            loss, argnums=(0, 1), has_aux=True
        )(x, trainable)
        gradients = [x_gradient, *weight_gradients]
    else:
        import torch

        x = keras.ops.convert_to_tensor(x).detach().clone().requires_grad_(True)
        for variable in layer.trainable_variables:
            variable.value.grad = None  # not accumulated over calls
        outputs = layer(x, training=True)
        (outputs.float() * torch.from_numpy(projection)).sum().backward()
        gradients = [x.grad, *(v.value.grad for v in layer.trainable_variables)]
    return to_numpy(outputs), [to_numpy(g) for g in gradients]


def run_layer_test(make_layer, input_shapes, tmp_path):
    """The contract every registered layer keeps, as keras-hub's `run_layer_test` checks it.

    - `compute_output_shape` gives the shape `call` returns;
    - the config round-trips through `from_config`;
    - a model holding the layer saves to `.keras` and loads back (safe mode)
      with the same outputs;
    - under the `mixed_bfloat16` policy it computes in bfloat16.

    `input_shapes` is a list: one shape for a layer called on a tensor,
    several for one called on a list.
    """
    arrays = random_arrays(input_shapes)
    single = len(arrays) == 1
    args = arrays[0] if single else arrays
    layer = make_layer()
    outputs = to_numpy(layer(args))

    shapes = input_shapes[0] if single else input_shapes
    assert tuple(layer.compute_output_shape(shapes)) == outputs.shape

    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()

    inputs = [keras.Input(shape[1:]) for shape in input_shapes]
    inputs = inputs[0] if single else inputs
    model = keras.Model(inputs, layer(inputs))
    path = os.path.join(tmp_path, "layer.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(to_numpy(loaded(args)), to_numpy(model(args)), rtol=1e-6, atol=1e-6)

    mixed = type(layer).from_config({**layer.get_config(), "dtype": "mixed_bfloat16"})
    mixed_outputs = mixed(args)
    assert keras.backend.standardize_dtype(mixed_outputs.dtype) == "bfloat16"
    assert np.all(np.isfinite(to_numpy(keras.ops.cast(mixed_outputs, "float32"))))


def run_python(code, env=None, timeout=600):
    """Runs `code` in a fresh interpreter; returns the completed process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", code],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_cli(capsys, *args):
    """`keras-mobilevit ARGS` in this process: `(exit code, stdout, stderr)`.

    Spares the seconds a fresh interpreter takes to import TensorFlow.
    """
    from keras_mobilevit import cli

    try:
        code = cli.main([str(arg) for arg in args])
    except SystemExit as e:  # argparse's usage errors
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def predict_saved(path, images, backend):
    """A saved model's outputs on `images`, computed in a fresh process on `backend`.

    Returns the outputs and what `tests/predict_saved.py` reported.
    """
    images_path = os.path.join(os.path.dirname(str(path)), "images.npy")
    output = os.path.join(os.path.dirname(str(path)), "outputs.npy")
    np.save(images_path, images)
    result = subprocess.run(
        [sys.executable, os.path.join(TESTS, "predict_saved.py"), str(path), images_path, output],
        env={**os.environ, "KERAS_BACKEND": backend},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads(result.stdout.split("RESULT ")[-1])
    assert info["backend"] == backend
    return np.load(output), info


def record_measured(pytest_stdout, suffix=""):
    """Records the parity table of a pytest run in a subprocess here; returns the row count."""
    rows = 0
    in_table = False
    for line in pytest_stdout.splitlines():
        if "measured parity" in line:
            in_table = True
        elif in_table and line.startswith("="):
            break
        elif in_table and line.strip():
            what, _, diff = line.rstrip().rpartition(" ")
            try:
                value = float(diff)
            except ValueError:  # the closing "N passed in T s" line
                break
            record(what.strip() + suffix, value)
            rows += 1
    return rows


def run_pytest(paths, backend, extra_env=None, timeout=1200):
    """Runs test files with pytest in a fresh interpreter on another Keras backend."""
    env = {**os.environ, "KERAS_BACKEND": backend, **(extra_env or {})}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths],
        cwd=os.path.dirname(TESTS),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
