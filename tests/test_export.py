"""Export to LiteRT and ONNX: builtin ops only, parity with Keras, quantization, bad input."""

import os
import pathlib
import stat
import time

import keras
import numpy as np
import pytest
from testing import V1_VARIANTS, V2_VARIANTS, record, run_cli, run_python

import keras_mobilevit
from keras_mobilevit import export

pytest.importorskip("ai_edge_litert")
pytest.importorskip("onnxruntime")

SEGMENTATION = ["MobileViT_XXS_DeepLabV3", "MobileViTV2_100_DeepLabV3"]


def build(variant):
    if variant.endswith("DeepLabV3"):
        return getattr(keras_mobilevit, variant)(weights=None, upsample=False)
    return getattr(keras_mobilevit, variant)(weights=None, classifier_activation=None)


def max_transpose_rank(path):
    interpreter = export._litert_interpreter(path)
    shapes = {t["index"]: t["shape"] for t in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()
    return max(len(shapes[op["inputs"][0]]) for op in ops if op["op_name"] == "TRANSPOSE")


# The narrowest and widest of each family: the widths between add no layer, only channels.
EXTREMES = [V1_VARIANTS[0], V1_VARIANTS[-1], V2_VARIANTS[0], V2_VARIANTS[-1]]


@pytest.mark.slow
@pytest.mark.parametrize("variant", [*EXTREMES, *SEGMENTATION])
def test_litert_float32_uses_builtin_ops_and_matches_keras(tmp_path, variant):
    keras.utils.set_random_seed(0)
    report = export.export(
        build(variant), tmp_path / f"{variant}.tflite", "litert", None, None, True, None, 1
    )
    record(f"{variant} LiteRT fp32 vs Keras, 1x256x256", report.max_difference)
    assert report.max_difference <= 1e-4
    assert not [op for op in report.ops if op.startswith("Flex") or op == "CUSTOM"]
    assert max_transpose_rank(report.path) <= 4
    # The models take any size; the file gets the documented default.
    details = export._litert_interpreter(report.path).get_input_details()[0]
    assert tuple(details["shape"]) == (1, 256, 256, 3)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["MobileViT_XXS", "MobileViTV2_050", "MobileViT_XXS_DeepLabV3"])
def test_onnx_float32_matches_keras(tmp_path, variant):
    path = export.export_onnx(build(variant), tmp_path / "model.onnx", input_size=(224, 160))
    report = export.export(
        build(variant), tmp_path / "again.onnx", "onnx", None, None, True, (224, 160), 1
    )
    record(f"{variant} ONNX fp32 vs Keras, 1x224x160", report.max_difference)
    assert os.path.exists(path) and report.max_difference <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize(("format", "suffix"), [("litert", ".tflite"), ("onnx", ".onnx")])
def test_optimized_models_export_and_match_keras(tmp_path, format, suffix):
    # optimize_for_inference's merged layers (fused activations, 4x4 "same" strided
    # depthwise kernels) at a size whose feature maps turn odd.
    model = keras_mobilevit.optimize_for_inference(build("MobileViT_XXS"))
    path = tmp_path / f"fast{suffix}"
    report = export.export(model, path, format, None, None, True, (200, 136), 1)
    record(f"MobileViT_XXS optimized, {format} fp32 vs Keras, 1x200x136", report.max_difference)
    assert report.max_difference <= 1e-4
    assert not [op for op in report.ops if op.startswith("Flex") or op == "CUSTOM"]


@pytest.mark.slow
def test_float16_and_dynamic_range_files(tmp_path):
    model = build("MobileViT_XXS")
    float32_weights = 4 * model.count_params()  # bytes, what the float32 file mostly holds
    sizes = {}
    for quantization in ("float16", "dynamic"):
        report = export.export(
            model, tmp_path / f"{quantization}.tflite", "litert", quantization, None, True, 256, 1
        )
        sizes[quantization] = report.size
        record(f"MobileViT_XXS LiteRT {quantization} vs Keras", report.max_difference)
    assert sizes["float16"] < 0.6 * float32_weights
    assert sizes["dynamic"] < 0.35 * float32_weights


def synthetic_classes(count, size, seed):
    """Three visually distinct classes: dark, bright, and red images, with noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 3
    images = rng.uniform(0, 60, (count, size, size, 3)).astype(np.float32)
    images[labels == 1] += 150
    images[labels == 2, ..., 0] += 180
    return images, labels


@pytest.mark.slow
def test_int8_files_are_small_and_agree_with_float32_on_top1(tmp_path):
    keras.utils.set_random_seed(0)
    images, labels = synthetic_classes(48, 64, seed=0)
    model = keras_mobilevit.MobileViT_XXS(weights=None, classes=3, input_shape=(64, 64, 3))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    model.fit(images, labels, batch_size=8, epochs=4, verbose=0)

    float_path = export.export_litert(model, tmp_path / "float.tflite")
    run_float = export._litert_runner(float_path)
    test_images, _ = synthetic_classes(30, 64, seed=1)
    for quantization in ("int8", "int8_full"):
        path = export.export_litert(
            model,
            tmp_path / f"{quantization}.tflite",
            quantization=quantization,
            representative_dataset=lambda: (images[i : i + 4] for i in range(0, 48, 4)),
        )
        assert os.path.getsize(path) <= 0.35 * os.path.getsize(float_path)
        run = export._litert_runner(path)
        agree = [
            np.argmax(run(x[None])[0]) == np.argmax(run_float(x[None])[0]) for x in test_images
        ]
        record(
            f"{quantization} vs float32 LiteRT top-1 agreement (30 synthetic images)",
            np.mean(agree),
        )
        assert np.mean(agree) >= 0.9

    # "int8" runs convolutions and projections in int8 and keeps the ops
    # XNNPACK lacks int8 kernels for in float; "int8_full" quantizes those too.
    selective = input_dtypes(tmp_path / "int8.tflite")
    full = input_dtypes(tmp_path / "int8_full.tflite")
    for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        assert selective[op] == full[op] == {"int8"}, op
    for op in ("BATCH_MATMUL", "SOFTMAX", "RSQRT", "SUB"):
        assert selective[op] == {"float32"} and full[op] == {"int8"}, op


def input_dtypes(path):
    """`{op name: dtypes of its first input}` in a LiteRT file."""
    interpreter = export._litert_interpreter(path)
    dtypes = {t["index"]: np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}
    found = {}
    for op in interpreter._get_ops_details():
        if op["op_name"] != "DELEGATE" and len(op["inputs"]):
            found.setdefault(op["op_name"], set()).add(dtypes[op["inputs"][0]])
    return found


def test_unknown_format_and_quantization_list_the_valid_ones(tmp_path):
    model = build("MobileViT_XXS")
    with pytest.raises(ValueError, match="valid: litert, onnx"):
        export.export(model, tmp_path / "m.tflite", "coreml", None, None, True, None, 1)
    with pytest.raises(ValueError, match="valid: None, 'float16', 'dynamic', 'int8', 'int8_full'"):
        export.export_litert(model, tmp_path / "m.tflite", quantization="int4")


def test_int8_without_calibration_says_why(tmp_path):
    with pytest.raises(ValueError, match="needs a representative_dataset"):
        export.export_litert(build("MobileViT_XXS"), tmp_path / "m.tflite", quantization="int8")


def test_missing_output_directory_fails_before_converting(tmp_path):
    model = build("MobileViT_XXS")
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export.export_litert(model, tmp_path / "missing" / "m.tflite")
    assert time.perf_counter() - start < 2


def directory_named_like_a_file(tmp_path):
    path = tmp_path / "named.tflite"
    path.mkdir()
    return path


def read_only_directory(tmp_path):
    """A directory this process cannot create files in.

    A mode 555 one; for root, whom modes do not stop, /sys, where Linux lets
    nobody create files.
    """
    directory = tmp_path / "read-only"
    directory.mkdir()
    directory.chmod(0o555)
    for candidate in (directory, pathlib.Path("/sys")):
        try:
            (candidate / "probe.tflite").touch()
        except OSError:
            return candidate
        (candidate / "probe.tflite").unlink()
    pytest.skip("this process can create files in any directory")


def read_only_file(tmp_path):
    path = tmp_path / "earlier.tflite"
    path.write_bytes(b"an earlier export")
    path.chmod(0o444)
    if os.access(path, os.W_OK):
        pytest.skip("this process can write read-only files (root)")
    return path


@pytest.mark.parametrize(
    ("output", "error", "message"),
    [
        (directory_named_like_a_file, IsADirectoryError, "is a directory; name the file"),
        (lambda tmp: read_only_directory(tmp) / "m.tflite", PermissionError, "Cannot write"),
        (read_only_file, PermissionError, "exists and is read-only; make it writable"),
    ],
    ids=["directory", "read-only directory", "read-only file"],
)
def test_unwritable_outputs_fail_before_converting(tmp_path, output, error, message):
    path = output(tmp_path)
    before = sorted(os.listdir(path.parent))
    model = build("MobileViT_XXS")
    start = time.perf_counter()
    with pytest.raises(error, match=message):
        export.export_litert(model, path)
    assert time.perf_counter() - start < 2
    assert sorted(os.listdir(path.parent)) == before


@pytest.fixture
def umask():
    """A umask of 027 for the test: neither the usual 022 nor what mkstemp's 600 gives."""
    previous = os.umask(0o027)
    yield 0o027
    os.umask(previous)


def test_files_get_the_mode_writing_with_open_would_give_them(tmp_path, umask):
    # How the file is written does not depend on the model: a tiny one converts in a second.
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(
        inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(inputs))
    )
    path = export.export_litert(model, tmp_path / "m.tflite")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask
    os.chmod(path, 0o604)
    export.export_litert(model, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o604
    assert os.listdir(tmp_path) == ["m.tflite"]


def test_exporting_to_a_symbolic_link_writes_the_file_it_names(tmp_path):
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    (tmp_path / "exports").mkdir()
    target = tmp_path / "exports" / "m.tflite"
    target.write_bytes(b"an earlier export")
    link = tmp_path / "latest.tflite"
    link.symlink_to(target)
    export.export_litert(model, link)
    assert link.is_symlink() and target.read_bytes()[4:8] == b"TFL3"
    assert sorted(os.listdir(tmp_path / "exports")) == ["m.tflite"]


@pytest.mark.slow
def test_cli_export_with_weights_none_says_it_replaced_a_file_and_keeps_its_mode(capsys, tmp_path):
    import onnx

    output = tmp_path / "m.onnx"
    output.write_bytes(b"an earlier export")
    output.chmod(0o640)
    # ONNX: it converts in half the time LiteRT takes.
    code, out, err = run_cli(
        capsys, "export", "MobileViT_XXS", "--weights", "none", "--format", "onnx",
        "--input-size", "64", "--output", output,
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith(f"{output}: ") and "(replaced the existing file)" in out.splitlines()[0]
    assert stat.S_IMODE(output.stat().st_mode) == 0o640
    assert onnx.load(output).graph.node
    assert os.listdir(tmp_path) == ["m.onnx"]


@pytest.mark.slow
def test_failed_conversion_leaves_no_file(tmp_path):
    def wrong_size_images():
        yield np.zeros((1, 128, 128, 3), np.float32)

    with pytest.raises(ValueError, match="Calibration batches must be images of shape"):
        export.export_litert(
            build("MobileViT_XXS"),
            tmp_path / "m.tflite",
            quantization="int8",
            representative_dataset=wrong_size_images,
        )
    assert os.listdir(tmp_path) == []


CLI = """
import sys
from keras_mobilevit import cli
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_cli_export_int8_with_calibration_images(checkpoints, tmp_path):
    from PIL import Image

    _, weights = checkpoints("MobileViT_XXS")
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(
            calibration / f"{i}.jpg"
        )
    output = tmp_path / "xxs-int8.tflite"
    code = CLI + ""
    args = [
        "export", "MobileViT_XXS", "--weights", weights, "--format", "litert", "--quantize",
        "int8", "--calibration-images", str(calibration), "--input-size", "128",
        "--output", str(output),
    ]  # fmt: skip
    result = run_python(
        f"import sys; sys.argv = ['keras-mobilevit', *{args!r}]\n" + code,
        env={"KERAS_BACKEND": "tensorflow"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MiB, litert, int8, input 1x128x128x3" in result.stdout
    assert "CONV_2D" in result.stdout and "max |difference| from Keras" in result.stdout
    assert output.exists()


def test_cli_export_int8_without_images_is_refused(tmp_path):
    code = CLI
    args = ["export", "MobileViT_XXS", "--weights", "x.safetensors", "--format", "litert",
            "--quantize", "int8", "--output", str(tmp_path / "m.tflite")]  # fmt: skip
    result = run_python(f"import sys; sys.argv = ['keras-mobilevit', *{args!r}]\n" + code)
    assert result.returncode == 1
    assert "needs --calibration-images" in result.stderr
