"""Bad input gets a clear error, and nothing is left half done."""

import pathlib
import re
import sys
import warnings

import keras
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file
from testing import to_numpy

import keras_mobilevit
from keras_mobilevit import loading


def test_unknown_weights_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"Unknown weights='imagenet21k'.*'imagenet'"):
        keras_mobilevit.MobileViT_XS(weights="imagenet21k")


@pytest.mark.parametrize("path", ["missing.safetensors", "some/dir/missing.weights.h5"])
def test_missing_weights_file(path):
    with pytest.raises(FileNotFoundError, match="missing"):
        keras_mobilevit.MobileViT_XS(weights=path)


def test_malformed_hub_reference():
    with pytest.raises(ValueError, match="hf://owner/repo"):
        keras_mobilevit.MobileViT_XS(weights="hf://just-a-name")


def test_imagenet_weights_need_1000_classes():
    # Checked before any download: no Hub is reachable here, and none is asked.
    with pytest.raises(ValueError, match="classes` must be 1000"):
        keras_mobilevit.MobileViT_XS(weights="imagenet", classes=10)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((31, 64, 3), "at least 32"),
        ((64, 16, 3), "at least 32"),
        ((256, 256), r"\(height, width, channels\)"),
    ],
)
def test_bad_input_shape(shape, message):
    with pytest.raises(ValueError, match=message):
        keras_mobilevit.MobileViT_XXS(weights=None, input_shape=shape)


@pytest.mark.parametrize("kwargs", [{"pooling": "mean"}, {"classes": 0}, {"weights": 3}])
def test_other_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        keras_mobilevit.MobileViT_XXS(**{"weights": None, **kwargs})


def snapshot(model):
    return [keras.ops.convert_to_numpy(w.value) for w in model.weights]


def assert_unchanged(model, before):
    for variable, value in zip(model.weights, before, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable.value), value)


FIRST_MISMATCH = (
    r"'stages.0.0.conv1_1x1.conv.weight' .* shape \(64, 16, 1, 1\), "
    r"but this model needs \(32, 16, 1, 1\)"
)


def test_checkpoint_of_another_variant_names_the_tensor_and_loads_nothing(checkpoints):
    _, xs_path = checkpoints("MobileViT_XS")
    with pytest.raises(ValueError, match=FIRST_MISMATCH) as info:
        keras_mobilevit.MobileViT_XXS(weights=xs_path)
    assert xs_path in str(info.value)
    # The same through the loader, on a model we keep: not one variable changed.
    model = keras_mobilevit.MobileViT_XXS(weights=None)
    before = snapshot(model)
    with pytest.raises(ValueError, match=FIRST_MISMATCH):
        loading.load(model, xs_path, include_top=True)
    assert_unchanged(model, before)


def test_classifier_of_another_size_is_reported(checkpoints):
    _, path = checkpoints("MobileViT_XXS")
    with pytest.raises(ValueError, match=r"'head.fc.weight'.*\(1000, 320\).*\(10, 320\)"):
        keras_mobilevit.MobileViT_XXS(weights=path, classes=10)
    # Without the top, the classifier in the file is not needed.
    model = keras_mobilevit.MobileViT_XXS(weights=path, include_top=False)
    assert model.output_shape[-1] == 320


def test_corrupt_safetensors_file_is_named(tmp_path, checkpoints):
    _, path = checkpoints("MobileViT_XXS")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(open(path, "rb").read()[:5000])
    with pytest.raises(ValueError, match="truncated.safetensors.*corrupt"):
        keras_mobilevit.MobileViT_XXS(weights=str(truncated))


def test_keras_weights_file_of_another_variant_loads_nothing(tmp_path):
    xs = keras_mobilevit.MobileViT_XS(weights=None)
    path = str(tmp_path / "xs.weights.h5")
    xs.save_weights(path)
    with pytest.raises(ValueError, match="xs.weights.h5"):
        keras_mobilevit.MobileViT_XXS(weights=path)
    model = keras_mobilevit.MobileViT_XXS(weights=None)
    before = snapshot(model)
    # One error, in one line; not the warning Keras gives for each of 123 layers first.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", DeprecationWarning)  # TensorFlow's, to numpy
        with pytest.raises(ValueError, match="another variant") as info:
            loading.load(model, path, include_top=True)
    assert [str(w.message) for w in caught] == []
    assert "\n" not in str(info.value)
    assert_unchanged(model, before)


def test_channels_first_is_refused_with_a_fix():
    keras.config.set_image_data_format("channels_first")
    try:
        with pytest.raises(ValueError, match="channels_last"):
            keras_mobilevit.MobileViT_XXS(weights=None)
    finally:
        keras.config.set_image_data_format("channels_last")


@pytest.mark.parametrize("variant", ["MobileViTV2_050", "MobileViTV2_125", "MobileViT_S"])
def test_imagenet22k_on_a_width_without_it_lists_the_widths_that_have_it(variant):
    with pytest.raises(
        ValueError, match="exist only for MobileViTV2_150, MobileViTV2_175, MobileViTV2_200"
    ):
        getattr(keras_mobilevit, variant)(weights="imagenet22k")


def test_imagenet22k_weights_need_1000_classes():
    with pytest.raises(ValueError, match="classes` must be 1000"):
        keras_mobilevit.MobileViTV2_150(weights="imagenet22k", classes=5)


def test_v1_checkpoint_into_v2_names_the_tensor(checkpoints):
    _, path = checkpoints("MobileViT_XXS")
    with pytest.raises(ValueError, match=r"stages.0.0.conv3_1x1.conv.weight.*\(16, 32, 1, 1\)"):
        keras_mobilevit.MobileViTV2_050(weights=path)


@pytest.fixture(scope="module")
def xxs_model():
    """One model to load into: every error below comes before a variable is assigned."""
    return keras_mobilevit.MobileViT_XXS(weights=None)


def checkpoint_without(tmp_path, checkpoints, missing):
    tensors = load_file(checkpoints("MobileViT_XXS")[1])
    del tensors[missing]
    path = str(tmp_path / "incomplete.safetensors")
    save_file(tensors, path)
    return path


@pytest.mark.parametrize("missing", ["stem.conv.weight", "stages.2.1.conv_kxk.conv.weight"])
def test_missing_tensor_is_named_as_the_file_must_spell_it(
    xxs_model, tmp_path, checkpoints, missing
):
    path = checkpoint_without(tmp_path, checkpoints, missing)
    with pytest.raises(ValueError, match=re.escape(f"has no tensor '{missing}' of shape")):
        loading.load(xxs_model, path, include_top=True)


def test_transformers_layout_without_a_key_names_it(xxs_model, tmp_path):
    attention = "mobilevit.encoder.layer.2.transformer.layer.0.attention.attention"
    tensors = {
        f"{attention}.{projection}.{parameter}": np.zeros(shape, "float32")
        for projection in ("query", "value")
        for parameter, shape in (("weight", (64, 64)), ("bias", (64,)))
    }
    path = str(tmp_path / "no_key.safetensors")
    save_file(tensors, path)
    with pytest.raises(
        ValueError,
        match=rf"no_key.safetensors has no tensor '{attention}.key.weight' of shape \(64, 64\), "
        "which layer 'stages_2_1_transformer_0_attn_qkv' needs.*transformers' layout",
    ):
        loading.load(xxs_model, path, include_top=True)


def test_transformers_layout_missing_a_tensor_says_its_layout(xxs_model, tmp_path):
    path = str(tmp_path / "stem_norm_only.safetensors")
    save_file({"mobilevit.conv_stem.normalization.weight": np.ones(16, "float32")}, path)
    with pytest.raises(
        ValueError, match=r"'stem\.conv\.weight' \(timm's name.*in transformers' layout"
    ):
        loading.load(xxs_model, path, include_top=True)


@pytest.mark.parametrize("suffix", [".safetensors", ".bin"])
def test_integer_tensor_is_refused_by_name_and_dtype(xxs_model, tmp_path, checkpoints, suffix):
    import torch

    state_dict = checkpoints("MobileViT_XXS")[0].state_dict()
    state_dict["stages.1.0.conv1_1x1.bn.running_var"] = torch.ones(64, dtype=torch.int32)
    path = str(tmp_path / f"ints{suffix}")
    if suffix == ".bin":
        torch.save(state_dict, path)
    else:
        save_file({name: tensor.numpy() for name, tensor in state_dict.items()}, path)
    before = snapshot(xxs_model)
    with pytest.raises(ValueError, match=r"'stages.1.0.conv1_1x1.bn.running_var'.* is int32"):
        loading.load(xxs_model, path, include_top=True)
    assert_unchanged(xxs_model, before)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("model.weights.h5", b"", r"model.weights.h5 is empty \(0 bytes\)"),
        ("model.keras", b"", r"model.keras is empty \(0 bytes\)"),
        ("model.safetensors", b"", r"model.safetensors is empty \(0 bytes\)"),
        ("model.weights.h5", b"<html>Not Found</html>", "not a Keras weights file.*HDF5"),
        ("model.keras", b"<html>Not Found</html>", "not a Keras model file.*zip archive"),
    ],
)
def test_empty_or_foreign_file_is_called_so(xxs_model, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        loading.load(xxs_model, str(path), include_top=True)


def test_truncated_keras_weights_file_is_called_so(xxs_model, tmp_path):
    path = tmp_path / "model.weights.h5"
    xxs_model.save_weights(path)
    path.write_bytes(path.read_bytes()[:20000])
    with pytest.raises(ValueError, match="model.weights.h5: .*truncated or corrupt"):
        loading.load(xxs_model, str(path), include_top=True)


@pytest.fixture(scope="module")
def xxs_files(checkpoints, tmp_path_factory):
    """One model, and its weights in each file format the builders take, as `pathlib.Path`s."""
    import torch

    reference, safetensors_path = checkpoints("MobileViT_XXS")
    model = keras_mobilevit.MobileViT_XXS(weights=safetensors_path)
    directory = tmp_path_factory.mktemp("formats")
    paths = {
        ".safetensors": pathlib.Path(safetensors_path),
        ".weights.h5": directory / "model.weights.h5",
        ".keras": directory / "model.keras",
        ".bin": directory / "pytorch_model.bin",
    }
    model.save_weights(paths[".weights.h5"])
    model.save(paths[".keras"])
    torch.save(reference.state_dict(), paths[".bin"])
    return model, paths


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".safetensors", ".weights.h5", ".keras", ".bin"])
def test_weights_may_be_a_pathlib_path(xxs_files, suffix):
    source, paths = xxs_files
    model = keras_mobilevit.MobileViT_XXS(weights=paths[suffix])
    for variable, expected in zip(model.weights, source.weights, strict=True):
        np.testing.assert_array_equal(to_numpy(variable), to_numpy(expected))


def test_deeplabv3_takes_a_pathlib_path(tmp_path):
    # Refused as an unknown name before; now looked for, before anything is built.
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        keras_mobilevit.MobileViT_XXS_DeepLabV3(weights=tmp_path / "missing.safetensors")


def test_pytorch_checkpoint_without_torch_says_how_to_read_it(tmp_path, monkeypatch):
    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(b"a pickle")
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    message = r'needs torch.*pip install "keras-mobilevit\[torch\]".*\.safetensors'
    # Said before any model is built.
    with pytest.raises(ImportError, match=message):
        loading.resolve(str(path))
    with pytest.raises(ImportError, match=message):
        keras_mobilevit.MobileViT_XXS(weights=str(path))
