"""The segmentation example the docs walk through runs as written."""

import pathlib
import sys

import numpy as np
import pytest
import torch
from test_segmentation import SEGMENTATION_CASES, randomized, save

ROOT = pathlib.Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "examples"))
segmentation = pytest.importorskip("segmentation")


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
