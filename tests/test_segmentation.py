"""Backbone features, output strides, DeepLabV3, and checkpoints in transformers' layout."""

import json

import keras
import numpy as np
import pytest
import torch
from testing import TOLERANCE, random_images, record, run_python

import keras_mobilevit

transformers = pytest.importorskip("transformers")

XXS_CONFIG = dict(
    hidden_sizes=[64, 80, 96], neck_hidden_sizes=[16, 16, 24, 48, 64, 80, 320], expand_ratio=2.0
)


def randomized(model):
    """A transformers model in eval mode with random norm parameters and statistics."""
    torch.manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
            if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.LayerNorm, torch.nn.GroupNorm)):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    return model.eval()


def save(model, path):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return str(path)


def bgr_nchw(images):
    """Apple's checkpoints take BGR: what the reference is fed for the same RGB images."""
    return torch.from_numpy(np.ascontiguousarray(images[..., ::-1].transpose(0, 3, 1, 2)))


SEGMENTATION_CASES = {
    "MobileViT_XXS_DeepLabV3": lambda: transformers.MobileViTForSemanticSegmentation(
        transformers.MobileViTConfig(**XXS_CONFIG, num_labels=21, output_stride=16)
    ),
    "MobileViTV2_100_DeepLabV3": lambda: transformers.MobileViTV2ForSemanticSegmentation(
        transformers.MobileViTV2Config(num_labels=21, output_stride=16)
    ),
}


@pytest.fixture(scope="module")
def segmentation_checkpoints(tmp_path_factory):
    directory = tmp_path_factory.mktemp("segmentation")
    return {
        variant: (model, save(model, directory / f"{variant}.safetensors"))
        for variant, make in SEGMENTATION_CASES.items()
        for model in [randomized(make())]
    }


@pytest.mark.parametrize("variant", list(SEGMENTATION_CASES))
@pytest.mark.parametrize("size", [(512, 512), (512, 384)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_deeplabv3_matches_transformers(segmentation_checkpoints, variant, size):
    reference, path = segmentation_checkpoints[variant]
    model = getattr(keras_mobilevit, variant)(
        weights=path, upsample=False, include_preprocessing=False
    )
    images = random_images(1, *size)
    with torch.no_grad():
        expected = reference(bgr_nchw(images)).logits.numpy().transpose(0, 2, 3, 1)
    assert expected.std() > 0.05
    actual = np.asarray(model.predict(images, verbose=0))
    diff = np.abs(actual - expected).max()
    record(f"{variant} logits (1, {size[0]}, {size[1]}) vs transformers (BGR)", diff)
    assert actual.shape == expected.shape == (1, size[0] // 16, size[1] // 16, 21)
    assert diff <= TOLERANCE


def test_deeplabv3_upsamples_to_the_input_size(segmentation_checkpoints):
    _, path = segmentation_checkpoints["MobileViT_XXS_DeepLabV3"]
    model = keras_mobilevit.MobileViT_XXS_DeepLabV3(weights=path)
    small = keras_mobilevit.MobileViT_XXS_DeepLabV3(weights=path, upsample=False)
    images = random_images(2, 200, 136) * 255
    full = np.asarray(model.predict(images, verbose=0))
    assert full.shape == (2, 200, 136, 21)
    coarse = np.asarray(small.predict(images, verbose=0))
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(coarse.transpose(0, 3, 1, 2)), size=(200, 136), mode="bilinear"
    )
    np.testing.assert_allclose(full, expected.numpy().transpose(0, 2, 3, 1), atol=1e-5)


@pytest.mark.parametrize(
    ("variant", "make"),
    [
        (
            "MobileViT_XXS",
            lambda: transformers.MobileViTForImageClassification(
                transformers.MobileViTConfig(**XXS_CONFIG, num_labels=1000)
            ),
        ),
        (
            "MobileViTV2_100",
            lambda: transformers.MobileViTV2ForImageClassification(
                transformers.MobileViTV2Config(num_labels=1000)
            ),
        ),
    ],
)
def test_classifier_loads_transformers_layout(tmp_path, variant, make):
    reference = randomized(make())
    path = save(reference, tmp_path / "apple-layout.safetensors")
    model = getattr(keras_mobilevit, variant)(
        weights=path, include_preprocessing=False, classifier_activation=None
    )
    images = random_images(2, 256, 192)
    with torch.no_grad():
        expected = reference(bgr_nchw(images)).logits.numpy()
    diff = np.abs(np.asarray(model.predict(images, verbose=0)) - expected).max()
    record(f"{variant} logits (2, 256, 192), transformers layout", diff)
    assert diff <= TOLERANCE


@pytest.mark.parametrize("output_stride", [8, 16])
def test_output_stride_matches_transformers_dilation(tmp_path, output_stride):
    """P5 at output stride 8 and 16 equals transformers' backbone with the same setting."""
    classifier = randomized(
        transformers.MobileViTForImageClassification(
            transformers.MobileViTConfig(**XXS_CONFIG, num_labels=1000)
        )
    )
    path = save(classifier, tmp_path / "apple-layout.safetensors")
    backbone = randomized(
        transformers.MobileViTModel(
            transformers.MobileViTConfig(**XXS_CONFIG, output_stride=output_stride)
        )
    )
    backbone.load_state_dict(
        {k[len("mobilevit.") :]: v for k, v in classifier.state_dict().items() if "mobilevit." in k}
    )
    model = keras_mobilevit.MobileViT_XXS(
        weights=path,
        include_top=False,
        feature_extractor=True,
        output_stride=output_stride,
        include_preprocessing=False,
    )
    images = random_images(1, 256, 256)
    with torch.no_grad():
        expected = backbone(bgr_nchw(images)).last_hidden_state.numpy().transpose(0, 2, 3, 1)
    actual = np.asarray(model.predict(images, verbose=0)["P5"])
    assert actual.shape == (1, 256 // output_stride, 256 // output_stride, 320)
    scale = max(1.0, float(np.abs(expected).max()))
    diff = np.abs(actual - expected).max() / scale
    record(f"MobileViT_XXS P5 at output stride {output_stride} vs transformers, relative", diff)
    assert diff <= TOLERANCE


@pytest.mark.parametrize("variant", ["MobileViT_XS", "MobileViTV2_050"])
@pytest.mark.parametrize("output_stride", [8, 16, 32])
@pytest.mark.parametrize("size", [(256, 256), (200, 136)])
def test_feature_extractor_shapes(variant, output_stride, size):
    model = getattr(keras_mobilevit, variant)(
        weights=None, include_top=False, feature_extractor=True, output_stride=output_stride
    )
    features = model.predict(random_images(1, *size) * 255, verbose=0)
    assert sorted(features) == ["P1", "P2", "P3", "P4", "P5"]
    for level, feature in features.items():
        stride = min(2 ** int(level[1]), output_stride)
        # A stride-2 convolution of size n gives ceil(n / 2); MobileViTV2 blocks
        # may round odd sizes up once more.
        expected = [-(-side // stride) for side in size]
        assert feature.shape[0] == 1
        assert all(0 <= f - e <= 1 for f, e in zip(feature.shape[1:3], expected, strict=True))


@pytest.mark.parametrize("variant", ["MobileViT_XXS", "MobileViTV2_050"])
def test_p5_at_stride_32_is_the_include_top_false_output(checkpoints, variant):
    _, path = checkpoints(variant)
    features = getattr(keras_mobilevit, variant)(
        weights=path, include_top=False, feature_extractor=True
    )
    plain = getattr(keras_mobilevit, variant)(weights=path, include_top=False)
    images = random_images(1, 256, 192) * 255
    np.testing.assert_array_equal(
        features.predict(images, verbose=0)["P5"], plain.predict(images, verbose=0)
    )


def shapes_dataset(count, size=64, seed=0):
    """Images of bright squares and discs on noisy backgrounds, with their masks."""
    rng = np.random.default_rng(seed)
    images = rng.random((count, size, size, 3), dtype=np.float32) * 80
    masks = np.zeros((count, size, size), dtype=np.int32)
    yy, xx = np.mgrid[:size, :size]
    for i in range(count):
        for label, color in ((1, (230, 40, 40)), (2, (40, 40, 230))):
            cy, cx = rng.integers(12, size - 12, 2)
            radius = rng.integers(6, 12)
            if label == 1:
                shape = (np.abs(yy - cy) < radius) & (np.abs(xx - cx) < radius)
            else:
                shape = (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
            images[i][shape] = color
            masks[i][shape] = label
    return images, masks


@pytest.mark.slow
def test_deeplabv3_fine_tunes_on_a_small_segmentation_set():
    images, masks = shapes_dataset(24)
    keras.utils.set_random_seed(0)
    model = keras_mobilevit.MobileViT_XXS_DeepLabV3(weights=None, classes=3)
    miou = keras.metrics.MeanIoU(num_classes=3, sparse_y_pred=False, name="mean_iou")
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[miou],
    )
    before = model.evaluate(images, masks, verbose=0, return_dict=True)
    history = model.fit(images, masks, batch_size=8, epochs=12, verbose=0)
    after = model.evaluate(images, masks, verbose=0, return_dict=True)
    record("DeepLabV3 fine-tuning: training mIoU before", before["mean_iou"])
    record("DeepLabV3 fine-tuning: training mIoU after 12 epochs", after["mean_iou"])
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert after["loss"] < before["loss"]
    assert after["mean_iou"] > before["mean_iou"]


LOAD_SEGMENTATION = """
import numpy as np, keras, keras_mobilevit
model = keras.models.load_model({path!r}, safe_mode=True)
np.save({output!r}, model.predict(np.load({images!r}), verbose=0))
"""


@pytest.mark.slow
def test_segmentation_model_round_trip_in_a_fresh_process(segmentation_checkpoints, tmp_path):
    _, path = segmentation_checkpoints["MobileViTV2_100_DeepLabV3"]
    model = keras_mobilevit.MobileViTV2_100_DeepLabV3(weights=path)
    archive = str(tmp_path / "deeplab.keras")
    model.save(archive)
    images = random_images(1, 160, 224) * 255
    np.save(tmp_path / "images.npy", images)
    output = str(tmp_path / "out.npy")
    result = run_python(
        LOAD_SEGMENTATION.format(path=archive, output=output, images=str(tmp_path / "images.npy"))
    )
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_allclose(np.load(output), model.predict(images, verbose=0), atol=1e-5)


def test_pascal_voc_weights_need_21_classes():
    with pytest.raises(ValueError, match="21 classes, got classes=5"):
        keras_mobilevit.MobileViT_XXS_DeepLabV3(classes=5)


@pytest.mark.parametrize("output_stride", [4, 12, 64, "16"])
def test_bad_output_stride(output_stride):
    with pytest.raises(ValueError, match="output_stride` must be 8, 16 or 32"):
        keras_mobilevit.MobileViT_XS(weights=None, include_top=False, output_stride=output_stride)


def test_feature_extractor_needs_include_top_false():
    with pytest.raises(ValueError, match="include_top=False"):
        keras_mobilevit.MobileViTV2_050(weights=None, feature_extractor=True)


TORCH_BIN_LOAD = """
import json, numpy as np, keras_mobilevit
model = keras_mobilevit.MobileViT_XXS_DeepLabV3(include_preprocessing=False, upsample=False)
out = model.predict(np.load({images!r}), verbose=0)
print("RESULT " + json.dumps(float(np.abs(out - np.load({expected!r})).max())))
"""


@pytest.mark.slow
def test_pascal_voc_from_a_hub_repo_with_only_pytorch_model_bin(segmentation_checkpoints, tmp_path):
    """Read with torch.load(weights_only=True) when the repo has no safetensors file."""
    from hf_server import FakeHub

    reference, _ = segmentation_checkpoints["MobileViT_XXS_DeepLabV3"]
    binary = tmp_path / "pytorch_model.bin"
    torch.save(reference.state_dict(), binary)
    images = random_images(1, 256, 256)
    with torch.no_grad():
        expected = reference(bgr_nchw(images)).logits.numpy().transpose(0, 2, 3, 1)
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "expected.npy", expected)
    with FakeHub() as hub:
        hub.add_file("apple/deeplabv3-mobilevit-xx-small", "pytorch_model.bin", binary.read_bytes())
        code = TORCH_BIN_LOAD.format(
            images=str(tmp_path / "images.npy"), expected=str(tmp_path / "expected.npy")
        )
        result = run_python(
            code, env={**hub.env(tmp_path / "hf_home"), "KERAS_BACKEND": "tensorflow"}
        )
    assert result.returncode == 0, result.stderr[-3000:]
    diff = json.loads(result.stdout.split("RESULT ")[-1])
    record("MobileViT_XXS_DeepLabV3 from pytorch_model.bin via the Hub", diff)
    assert diff <= TOLERANCE


def test_pytorch_checkpoint_without_torch_names_the_extra(tmp_path):
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from keras_mobilevit import loading\n"
        "try:\n"
        f"    loading.read_checkpoint({str(tmp_path / 'pytorch_model.bin')!r})\n"
        "except ImportError as e:\n"
        "    print('RESULT', e)\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'pip install "keras-mobilevit[torch]"' in result.stdout
