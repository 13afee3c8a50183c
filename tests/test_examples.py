"""The examples the docs walk through run as written: segmentation, transfer learning."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_segmentation import SEGMENTATION_CASES, randomized, save

import keras_mobilevit

ROOT = pathlib.Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "examples"))
segmentation = pytest.importorskip("segmentation")
transfer_learning = pytest.importorskip("transfer_learning")


@pytest.fixture(scope="module")
def voc_checkpoint(tmp_path_factory):
    model = randomized(SEGMENTATION_CASES["MobileViT_XXS_DeepLabV3"]())
    return save(model, tmp_path_factory.mktemp("voc") / "voc.safetensors")


@pytest.mark.slow
def test_predict_draws_the_mask_over_the_image(voc_checkpoint, tmp_path):
    from PIL import Image

    output = tmp_path / "cat-mask.png"
    segmentation.main(
        ["predict", str(ROOT / "examples" / "cat.jpg"), "--weights", voc_checkpoint,
         "--output", str(output)]
    )  # fmt: skip
    with Image.open(output) as image:
        assert image.format == "PNG" and min(image.size) > 100


def test_replace_classifier_keeps_the_network_and_changes_the_classes(voc_checkpoint):
    import keras_mobilevit

    base = keras_mobilevit.MobileViT_XXS_DeepLabV3(weights=voc_checkpoint)
    model = segmentation.replace_classifier(base, classes=3)
    images = np.random.default_rng(0).random((1, 96, 64, 3), dtype=np.float32) * 255
    assert model.predict(images, verbose=0).shape == (1, 96, 64, 3)
    shared = base.get_layer("segmentation_head_aspp_project_conv")
    assert model.get_layer("segmentation_head_aspp_project_conv") is shared


@pytest.mark.slow
def test_finetune_runs_on_oxford_pets_under_mock_data(voc_checkpoint, tmp_path):
    import tensorflow_datasets as tfds

    torch.manual_seed(0)
    with tfds.testing.mock_data(num_examples=4):
        history = segmentation.finetune(
            weights=voc_checkpoint, epochs=1, image_size=64, batch_size=2,
            output=str(tmp_path / "pets.keras"),
        )  # fmt: skip
    assert np.isfinite(history.history["loss"][0])
    assert "val_mean_iou" in history.history
    assert (tmp_path / "pets.keras").exists()


def test_load_image_scales_a_16_bit_png(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((40, 48), 32896, np.uint16)).save(tmp_path / "grey.png")
    image = segmentation.load_image(tmp_path / "grey.png", short_side=32)
    assert image.shape == (32, 38, 3)
    np.testing.assert_array_equal(image, 128)  # 32896 / 65535 * 255, not clipped to white


def test_predict_mask_refuses_non_finite_outputs():
    import keras

    nan_model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Rescaling(np.nan)])
    with pytest.raises(ValueError, match="not finite"):
        segmentation.predict_mask(nan_model, np.zeros((32, 32, 3), np.float32))


def make_class_folders(root, classes=("daisy", "rose", "tulip"), per_class=4, size=64):
    """Folders of generated JPEGs, one per class, each class its own colour and noise."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for index, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.normal(60 + 60 * index, 30, (size, size, 3)).clip(0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i}.jpg")
    return root


@pytest.mark.slow
def test_transfer_learning_fine_tunes_saves_reloads_and_segments(tmp_path):
    data = make_class_folders(tmp_path / "flowers")
    output = tmp_path / "run"
    # On PyTorch: TensorFlow spends about 30 s building MobileViT_XS's training step here,
    # PyTorch about 3 s.
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "transfer_learning.py"), "--data-dir", str(data),
         "--output-dir", str(output), "--weights", "none", "--image-size", "64", "--epochs", "1",
         "--batch-size", "4", "--segmentation-classes", "3"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "classes: daisy, rose, tulip" in result.stdout
    assert "loaded in a new process, its predictions differ by at most 0" in result.stdout
    assert "MobileViT_XS_DeepLabV3, 3 classes" in result.stdout
    assert json.loads((output / "classes.json").read_text()) == ["daisy", "rose", "tulip"]
    # Trained on PyTorch; its backbone, rebuilt on TensorFlow from the file, as docs/index.md shows.
    backbone = keras_mobilevit.MobileViT_XS(weights=str(output / "model.keras"), include_top=False)
    assert backbone.output.shape == (None, None, None, 384)


def test_transfer_learning_segments_with_the_fine_tuned_backbone():
    classifier = keras_mobilevit.MobileViT_XS(weights=None, classes=3, input_shape=(64, 64, 3))
    segmenter = transfer_learning.segmentation_model(classifier, classes=4)
    backbone = [layer for layer in segmenter.layers if layer.weights]
    backbone = [layer for layer in backbone if not layer.name.startswith("segmentation_head")]
    assert len(backbone) > 100
    for layer in backbone:
        trained = classifier.get_layer(layer.name).get_weights()
        for ours, theirs in zip(layer.get_weights(), trained, strict=True):
            np.testing.assert_array_equal(ours, theirs)
    masks = segmenter(np.zeros((1, 96, 64, 3), np.float32))
    assert tuple(masks.shape) == (1, 96, 64, 4)


def test_transfer_learning_refuses_to_replace_an_earlier_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"an earlier model")
    with pytest.raises(FileExistsError, match="--overwrite"):
        transfer_learning.main(["--data-dir", str(tmp_path), "--output-dir", str(run)])
    assert (run / "model.keras").read_bytes() == b"an earlier model"


def test_transfer_learning_names_a_missing_data_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such-folder"):
        transfer_learning.main(
            ["--data-dir", str(tmp_path / "no-such-folder"), "--output-dir", str(tmp_path / "o")]
        )
