"""The `keras-mobilevit` command, run as a user runs it."""

import os
import pathlib
import subprocess
import sys

import pytest
from hf_server import FakeHub
from testing import randomized_timm_model, run_cli, save_checkpoint

CAT = str(pathlib.Path(__file__).parents[1] / "examples" / "cat.jpg")


def keras_mobilevit_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "keras_mobilevit.cli", *args],
        env={**os.environ, "KERAS_BACKEND": "tensorflow", **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def xxs_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "xxs.safetensors"
    return save_checkpoint(randomized_timm_model("mobilevit_xxs"), path)


@pytest.mark.slow
def test_predict_with_a_mobilevitv2(tmp_path):
    path = save_checkpoint(randomized_timm_model("mobilevitv2_100"), tmp_path / "v2.safetensors")
    result = keras_mobilevit_cli("predict", CAT, "--model", "MobileViTV2_100", "--weights", path)
    assert result.returncode == 0, result.stderr
    assert len(parse_predictions(result.stdout)[CAT]) == 5


def parse_predictions(stdout):
    """`{image: [(name, probability), ...]}` from the printed ranking."""
    result, current = {}, None
    for line in stdout.splitlines():
        if not line.startswith(" "):
            current = line.strip()
            result[current] = []
        else:
            rank, name, probability, class_id = line.split()
            result[current].append((name, float(probability.rstrip("%")) / 100))
    return result


@pytest.mark.slow
def test_predict_prints_the_top_classes_of_each_image(xxs_checkpoint, tmp_path):
    second = tmp_path / "second.png"
    from PIL import Image

    Image.open(CAT).rotate(90, expand=True).save(second)
    result = keras_mobilevit_cli(
        "predict",
        CAT,
        str(second),
        "--model",
        "mobilevit_xxs",
        "--weights",
        xxs_checkpoint,
        "--top",
        "3",
    )
    assert result.returncode == 0, result.stderr
    predictions = parse_predictions(result.stdout)
    assert list(predictions) == [CAT, str(second)]
    for ranking in predictions.values():
        assert len(ranking) == 3
        probabilities = [p for _, p in ranking]
        assert probabilities == sorted(probabilities, reverse=True)
        assert 0 < sum(probabilities) <= 1.0001


@pytest.mark.slow
def test_predict_downloads_imagenet_weights_with_a_progress_line(xxs_checkpoint, tmp_path):
    with FakeHub() as hub:
        data = pathlib.Path(xxs_checkpoint).read_bytes()
        hub.add_file("timm/mobilevit_xxs.cvnets_in1k", "model.safetensors", data)
        env = hub.env(tmp_path / "hf_home")
        env.pop("HF_HUB_DISABLE_PROGRESS_BARS")
        env["TQDM_POSITION"] = "-1"  # show the bar although stderr is not a terminal
        result = keras_mobilevit_cli("predict", CAT, "--model", "MobileViT_XXS", env=env)
    assert result.returncode == 0, result.stderr
    assert "Fetching MobileViT_XXS weights from the Hugging Face Hub" in result.stderr
    assert "model.safetensors" in result.stderr  # huggingface_hub's progress bar
    assert len(parse_predictions(result.stdout)[CAT]) == 5


def test_unknown_model_is_refused_with_the_choices():
    result = keras_mobilevit_cli("predict", CAT, "--model", "MobileViT_XL")
    assert result.returncode == 2
    assert "MobileViT_XXS, MobileViT_XS, MobileViT_S, MobileViTV2_050" in result.stderr
    assert "MobileViTV2_200" in result.stderr


def test_missing_image_is_a_clear_error():
    result = keras_mobilevit_cli("predict", "no-such-image.jpg")
    assert result.returncode == 1
    assert "No image file at 'no-such-image.jpg'" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_weights_file_is_a_clear_error():
    result = keras_mobilevit_cli("predict", CAT, "--weights", "nowhere.safetensors")
    assert result.returncode == 1
    assert "No weights file" in result.stderr
    assert "Traceback" not in result.stderr


def test_truncated_image_is_named_before_the_weights_are_read(tmp_path, capsys):
    from keras_mobilevit import cli

    image = tmp_path / "photo.jpg"
    data = pathlib.Path(CAT).read_bytes()
    image.write_bytes(data[: len(data) // 2])
    # Not a weights file: reading the weights first would fail with another error.
    weights = tmp_path / "junk.weights.h5"
    weights.write_bytes(b"junk")
    argv = ["predict", str(image), "--weights", str(weights)]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert f"Could not read the image file '{image}'" in err
    assert "truncated" in err


@pytest.mark.slow
def test_predict_names_the_images_with_non_finite_outputs(tmp_path, capsys):
    import keras
    from PIL import Image

    import keras_mobilevit
    from keras_mobilevit import cli

    model = keras_mobilevit.MobileViT_XXS(weights=None)
    head = model.get_layer("head_fc")
    head.bias.assign(keras.ops.full(head.bias.shape, float("nan")))
    model.save_weights(tmp_path / "nan.weights.h5")
    second = tmp_path / "second.png"
    with Image.open(CAT) as cat:
        cat.save(second)
    argv = ["predict", CAT, str(second), "--model", "MobileViT_XXS"]
    assert cli.main([*argv, "--weights", str(tmp_path / "nan.weights.h5")]) == 1
    out, err = capsys.readouterr()
    assert out == ""  # no ranking of NaNs
    assert f"outputs for {CAT}, {second} are not finite" in err


def test_predict_refuses_weights_none_saying_why(capsys):
    code, _, err = run_cli(capsys, "predict", CAT, "--weights", "none")
    assert code == 2
    assert "predict needs trained weights ('none' would print random classes)" in err


@pytest.mark.parametrize("command", ["predict", "export", "train"])
def test_weights_of_another_model_are_refused_in_the_commands_words(capsys, tmp_path, command):
    args = {
        "predict": ["predict", CAT, "--model", "MobileViT_XXS"],
        "export": ["export", "MobileViT_XXS", "--format", "onnx", "--output", tmp_path / "m.onnx"],
        "train": ["train", "--model", "MobileViT_XXS", "--dataset", tmp_path],
    }[command]
    code, _, err = run_cli(capsys, *args, "--weights", "imagenet22k")
    assert code == 1
    assert "--weights imagenet22k exists only for MobileViTV2_150" in err
    # The values to pass on the command line: 'none' where the command takes it, never None.
    assert "MobileViT_XXS takes 'imagenet'" in err and "None" not in err
    assert ("'none'" in err) == (command != "predict")


def test_expected_errors_are_one_line_and_debug_shows_the_traceback(capsys, tmp_path):
    weights = tmp_path / "empty.safetensors"
    weights.write_bytes(b"")
    args = ["export", "MobileViT_XXS", "--format", "onnx", "--weights", weights]
    code, out, err = run_cli(capsys, *args, "--output", tmp_path / "m.onnx")
    assert code == 1
    assert err.startswith("keras-mobilevit: error: ") and err.count("\n") == 1, err
    assert "empty" in err
    with pytest.raises(ValueError, match="empty"):
        run_cli(capsys, *args, "--output", tmp_path / "m.onnx", "--debug")


def test_no_backend_installed_is_one_line(tmp_path):
    # Keras falls back to TensorFlow, which a user of the jax or torch extra does not have.
    absent = tmp_path / "no_tensorflow" / "tensorflow"
    absent.mkdir(parents=True)
    (absent / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'tensorflow'\", name='tensorflow')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["PYTHONPATH"] = os.pathsep.join([str(absent.parent), env.get("PYTHONPATH", "")])
    script = pathlib.Path(sys.executable).parent / "keras-mobilevit"
    result = subprocess.run(
        [str(script), "predict", CAT], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1
    assert result.stderr.startswith("keras-mobilevit: error: Keras' backend is TensorFlow")
    assert result.stderr.count("\n") == 1, result.stderr
    assert "KERAS_BACKEND=jax or KERAS_BACKEND=torch" in result.stderr


def test_version_is_the_package_version():
    from importlib.metadata import version

    import keras_mobilevit

    script = pathlib.Path(sys.executable).parent / "keras-mobilevit"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"keras-mobilevit {keras_mobilevit.__version__}"
    # The installed metadata has the same single source (pyproject reads __version__).
    assert version("keras-mobilevit") == keras_mobilevit.__version__


NO_KERAS = """
import sys
sys.argv = ["keras-mobilevit", *{args!r}]
from keras_mobilevit import cli
try:
    code = cli.main()
except SystemExit as e:
    code = e.code
heavy = sorted(m for m in ("keras", "tensorflow", "jax", "torch") if m in sys.modules)
print(code, heavy)
"""


@pytest.mark.parametrize(
    "args, code",
    [
        (["--help"], 0),
        (["--version"], 0),
        (["predict", "--help"], 0),
        (["predict", "no-such-image.jpg"], 1),
        (["export", "MobileViT_XX", "--format", "onnx", "--output", "m.onnx"], 2),
    ],
)
def test_help_and_argument_errors_do_not_import_keras(args, code):
    result = subprocess.run(
        [sys.executable, "-c", NO_KERAS.format(args=args)], capture_output=True, text=True
    )
    assert result.stdout.splitlines()[-1] == f"{code} []", result.stderr


def test_the_command_lists_every_model():
    from keras_mobilevit import cli
    from keras_mobilevit.builder import REGISTRY

    assert cli._models(segmentation=True) == tuple(REGISTRY)
    assert cli._models() == tuple(
        name for name, variant in REGISTRY.items() if variant.task == "classification"
    )


@pytest.mark.slow
def test_tensorflow_start_up_lines_only_with_verbose(xxs_checkpoint):
    script = pathlib.Path(sys.executable).parent / "keras-mobilevit"
    argv = [str(script), "predict", CAT, "--model", "MobileViT_XXS", "--weights", xxs_checkpoint]
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    quiet = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    assert "oneDNN" not in quiet.stderr and "absl" not in quiet.stderr, quiet.stderr
    assert len(parse_predictions(quiet.stdout)[CAT]) == 5
