"""The fine-tuning recipe (`keras_mobilevit.training`, `keras-mobilevit train`), offline.

tensorflow-datasets runs under `tfds.testing.mock_data` (random images, the real
feature specs: 102 classes for Flowers-102), directories of class folders are
generated JPEGs and PNGs, and the Hub is the loopback fake of `hf_server.py`.
Models are MobileViT_XXS at 32 or 64 pixels, from scratch, for one or two short
epochs: what is checked is the recipe's wiring and its artefacts, not accuracy.
"""

import io
import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image
from testing import TESTS

import keras_mobilevit
from keras_mobilevit import cli, imagenet, training

tfds = pytest.importorskip("tensorflow_datasets")
tf = pytest.importorskip("tensorflow")

# Class colours of the generated image folders: learnable at a glance.
COLOURS = {"daisy": (230, 220, 60), "rose": (200, 30, 40), "violet": (90, 40, 170)}


def make_class_folders(root, per_class=10, colours=COLOURS, seed=0):
    """Writes `per_class` noisy images of each colour, of assorted sizes, one class per folder."""
    rng = np.random.default_rng(seed)
    root = pathlib.Path(root)
    for name, colour in colours.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            height, width = rng.integers(40, 96, size=2)
            noise = rng.normal(0, 25, size=(height, width, 3))
            pixels = np.clip(np.asarray(colour) + noise, 0, 255).astype(np.uint8)
            suffix = "png" if i == 0 else "jpg"  # both formats are found and decoded
            Image.fromarray(pixels).save(root / name / f"{name}_{i:02d}.{suffix}")
    return str(root)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def assert_png(path, min_side=200):
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert min(image.size) >= min_side, image.size


class WeightsRecorder(keras.callbacks.Callback):
    """Copies of a few layers' weights at the start of training and at every epoch end."""

    def __init__(self, layer_names):
        super().__init__()
        self.layer_names = layer_names
        self.snapshots = {}

    def _snapshot(self):
        return {
            name: [np.array(w) for w in self.model.get_layer(name).get_weights()]
            for name in self.layer_names
        }

    def on_train_begin(self, logs=None):
        self.snapshots.setdefault("start", self._snapshot())

    def on_epoch_end(self, epoch, logs=None):
        self.snapshots[epoch] = self._snapshot()


def changed(before, after):
    return any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))


# -- the whole recipe ---------------------------------------------------------------------


@pytest.mark.slow
def test_flowers102_recipe_end_to_end_under_mock_data(tmp_path):
    output = tmp_path / "flowers"
    recorder = WeightsRecorder(["stem_conv", "head_fc"])
    policy = keras.config.dtype_policy().name
    with tfds.testing.mock_data(num_examples=16):
        result = training.finetune(
            dataset="oxford_flowers102", model="MobileViT_XXS", weights=None, image_size=64,
            epochs=2, batch_size=8, freeze_backbone_epochs=1, output_dir=str(output),
            callbacks=[recorder],
        )  # fmt: skip

    # History: both epochs, training and validation, all finite.
    assert result.history.epoch == [0, 1]
    for key in ("loss", "accuracy", "top5_accuracy"):
        for name in (key, f"val_{key}"):
            assert len(result.history.history[name]) == 2, name
            assert np.all(np.isfinite(result.history.history[name])), name
    written = read_json(output / "history.json")
    assert written.keys() == result.history.history.keys()
    for key, values in result.history.history.items():
        assert written[key] == pytest.approx(values), key

    # Epoch 1 trained the classifier only (BatchNorm statistics frozen too), epoch 2 everything.
    start, first, second = (recorder.snapshots[k] for k in ("start", 0, 1))
    assert not changed(start["stem_conv"], first["stem_conv"])
    assert changed(start["head_fc"], first["head_fc"])
    assert changed(first["stem_conv"], second["stem_conv"])

    # Test metrics, computed on the 16 mock test images.
    metrics = read_json(output / "metrics.json")
    assert metrics == result.metrics and result.output_dir == str(output)
    assert metrics["test_examples"] == 16
    for key in ("test_accuracy", "test_top5_accuracy", "test_macro_f1"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["test_top5_accuracy"] >= metrics["test_accuracy"]
    assert np.isfinite(metrics["test_loss"]) and metrics["test_loss"] > 0
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.shape == (102, 102) and matrix.sum() == 16
    assert metrics["test_accuracy"] == pytest.approx(np.trace(matrix) / 16)
    assert metrics["class_names"][:2] == ["pink primrose", "hard-leaved pocket orchid"]

    # The settings, with the default learning rate from scratch: 8e-3 * 8 / 256.
    run = read_json(output / "run.json")
    assert run["splits"] == {"train": "train", "validation": "validation", "test": "test"}
    assert run["learning_rate"] == pytest.approx(8e-3 * 8 / 256)
    assert run["classes"] == 102

    # Plots.
    assert_png(output / "history.png")
    assert_png(output / "confusion_matrix.png")

    # The model, the best checkpoint, and no backup left behind.
    model = keras.saving.load_model(output / "model.keras")
    assert model.output_shape == (None, 102)
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    probabilities = model.predict(images, verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probabilities, result.model.predict(images, verbose=0), atol=1e-6)
    assert keras.saving.load_model(output / "checkpoints" / "best.keras").output_shape[-1] == 102
    assert not (output / "backup").exists()
    assert keras.config.dtype_policy().name == policy


# The settings of the finished run below, paths apart.
FINISHED_RUN = dict(
    model="MobileViT_XXS", weights=None, image_size=32, epochs=1, batch_size=4,
    mixed_precision=True,
)  # fmt: skip


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """`(class folders, output directory, FinetuneResult)` of one short run, shared.

    The folders hold a text file named like a JPEG, which the run skips: it
    would otherwise end training in its first epoch. Paths are `pathlib.Path`s.
    """
    root = tmp_path_factory.mktemp("finished")
    folder = pathlib.Path(make_class_folders(root / "colours", per_class=10))
    (folder / "rose" / "notes.jpg").write_text("not an image")
    output = root / "run"
    result = training.finetune(dataset=folder, output_dir=output, **FINISHED_RUN)
    return folder, output, result


@pytest.mark.slow
def test_directory_of_class_folders_in_mixed_precision(finished_run):
    folder, output, result = finished_run
    assert result.output_dir == str(output)  # a str, though given a pathlib.Path
    run = read_json(output / "run.json")
    assert run["skipped_files"] == {str(folder / "rose" / "notes.jpg"): "not an image"}
    assert run["class_names"] == ["daisy", "rose", "violet"]
    # 10% of each class (one image) for validation and one for test, the rest for training.
    assert run["examples"] == {"train": 24, "validation": 3, "test": 3}
    assert run["mixed_precision"] == "mixed_bfloat16"
    metrics = read_json(output / "metrics.json")
    assert metrics["test_examples"] == 3 and metrics["test_top5_accuracy"] is None
    assert np.array(metrics["confusion_matrix"]).shape == (3, 3)
    assert "top5_accuracy" not in result.history.history  # three classes: top-5 says nothing
    model = keras.saving.load_model(output / "model.keras")
    assert model.output_shape == (None, 3)
    assert model.get_layer("stem_conv").dtype_policy.name == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == "float32"
    # The builder takes the fine-tuned file as weights, at any input size.
    rebuilt = keras_mobilevit.MobileViT_XXS(weights=str(output / "model.keras"), classes=3)
    assert rebuilt.input_shape == (None, None, None, 3)
    for mine, theirs in zip(rebuilt.weights, model.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))
    with pytest.raises(ValueError, match="classifies into 3 classes.*classes=3"):
        keras_mobilevit.MobileViT_XXS(weights=str(output / "model.keras"), classes=5)


def test_directory_splits_are_stratified_and_fixed(tmp_path):
    folder = make_class_folders(tmp_path / "colours", per_class=12)
    first = training.load_data(folder)
    again = training.load_data(folder, seed=5)  # the split does not depend on the seed

    def files(data, split):  # the encoded images of a split
        return sorted(image.numpy() for image, _ in data.examples[split])

    assert first.counts == {"train": 30, "validation": 3, "test": 3}
    for split in ("train", "validation", "test"):
        assert files(first, split) == files(again, split)
    labels = {
        split: sorted(int(y) for _, y in first.examples[split]) for split in ("validation", "test")
    }
    assert labels == {"validation": [0, 1, 2], "test": [0, 1, 2]}


def test_directory_with_train_validation_test_folders_uses_them(tmp_path):
    for split, count in (("train", 4), ("val", 2), ("test", 3)):
        make_class_folders(tmp_path / "data" / split, per_class=count, seed=len(split))
    data = training.load_data(str(tmp_path / "data"))
    assert data.counts == {"train": 12, "validation": 6, "test": 9}
    assert data.splits["validation"].endswith("val")
    assert data.class_names == ["daisy", "rose", "violet"]


# -- the data pipeline --------------------------------------------------------------------


def encoded_image(height=120, width=90, fmt="JPEG"):
    """A smooth colour gradient (interpolation-friendly), encoded."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([255 * y / height, 255 * x / width, 128 + 0 * x], axis=-1)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format=fmt, quality=95)
    return buffer.getvalue(), pixels


def test_augmentation_differs_per_image_and_per_epoch():
    data, _ = encoded_image()
    examples = tf.data.Dataset.from_tensors((data, tf.constant(1, tf.int64))).repeat(4)
    pipeline = training.train_pipeline(examples, 3, 32, batch_size=4, seed=0, shuffle_buffer=4)
    (epoch1, labels), (epoch2, _) = (next(iter(pipeline)) for _ in range(2))
    epoch1, epoch2 = np.asarray(epoch1), np.asarray(epoch2)
    assert epoch1.shape == (4, 32, 32, 3) and epoch1.dtype == np.float32
    assert epoch1.min() >= 0 and epoch1.max() <= 255
    np.testing.assert_array_equal(labels, np.tile([0, 1, 0], (4, 1)))
    # The same image, four times: four different augmentations, and others the next epoch.
    for i in range(4):
        for j in range(i):
            assert np.abs(epoch1[i] - epoch1[j]).mean() > 1, (i, j)
        assert np.abs(epoch1[i] - epoch2[i]).mean() > 1, i


def test_evaluation_preprocessing_is_deterministic_and_matches_the_reference(tmp_path):
    data, pixels = encoded_image(fmt="PNG")  # lossless: the reference sees the same pixels
    examples = tf.data.Dataset.from_tensors((data, tf.constant(2, tf.int64))).repeat(3)
    pipeline = training.eval_pipeline(examples, 3, 64, batch_size=3, crop_pct=0.9)
    first, second = (np.asarray(next(iter(pipeline))[0]) for _ in range(2))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first[0], first[2])
    # The same transform as the PIL reference (bicubic short side 71, centre crop 64).
    Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / "image.png")
    reference = imagenet.load_image(tmp_path / "image.png", size=64, crop_pct=0.9)
    assert first.shape == (3, 64, 64, 3)
    assert np.abs(first[0] - reference).mean() < 2.0


# -- data-parallel training ---------------------------------------------------------------

# Two devices on one CPU: TensorFlow's logical devices (configured in the
# script), XLA's host platform split in two for JAX.
TWO_DEVICES = {
    "tensorflow": {"KERAS_BACKEND": "tensorflow"},
    "jax": {
        "KERAS_BACKEND": "jax",
        "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2",
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("backend", list(TWO_DEVICES))
def test_data_parallel_on_two_cpu_devices_learns_like_one_device(tmp_path, backend):
    """MirroredStrategy (TensorFlow) or DataParallel (JAX) on two devices against one.

    Same data, same seed. The backbone is frozen (BatchNorm included) and the
    classifier trained: with the whole network trained, BatchNorm normalises
    each replica's half batch by its own statistics, which at these batch sizes
    moves the curves apart by more than the comparison could tolerate
    (measured: up to 40% per epoch, though both learn). Then only the dropout
    and flip/jitter draws differ.
    """
    folder = make_class_folders(tmp_path / "colours", per_class=10)
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(TESTS, "finetune_on_two_devices.py"),
            str(folder),
            str(tmp_path),
        ],
        env={**os.environ, **TWO_DEVICES[backend]},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    result = json.loads(line.removeprefix("RESULT "))
    one, two = result["None"], result["mirrored"]
    assert (one["replicas"], two["replicas"]) == (1, 2)
    print("loss, one device:", one["loss"], "two:", two["loss"])
    for losses in (one["loss"], two["loss"]):
        assert losses[0] > losses[1] > losses[2]  # both learn, epoch after epoch
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=0.05)
    # Three validation images do not split over two replicas, which Keras 3 cannot
    # evaluate: one is left out of validation. The test metrics use all three.
    assert one["run"]["examples"]["validation"] == 3
    assert two["run"]["examples"]["validation"] == 2
    assert one["test_examples"] == two["test_examples"] == 3


# -- interruption -------------------------------------------------------------------------


class Interrupt(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt


class EpochCounter(keras.callbacks.Callback):
    """The epochs run, and the optimizer's step count as each phase of training begins."""

    def __init__(self):
        super().__init__()
        self.epochs = []
        self.iterations = []

    def on_train_begin(self, logs=None):
        self.iterations.append(int(self.model.optimizer.iterations))

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


@pytest.mark.slow
def test_interrupted_run_leaves_a_usable_checkpoint_and_resumes(tmp_path, capsys):
    folder = make_class_folders(tmp_path / "colours", per_class=6)
    output = tmp_path / "run"
    options = dict(
        dataset=pathlib.Path(folder), model="MobileViT_XXS", weights=None, image_size=32,
        epochs=2, batch_size=4, freeze_backbone_epochs=1, output_dir=output,
    )  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        training.finetune(**options, callbacks=[Interrupt()])
    message = capsys.readouterr().err
    checkpoint = output / "checkpoints" / "best.keras"
    assert "interrupted after 1 complete epoch" in message
    assert str(checkpoint) in message and "resume from epoch 2" in message
    assert f"({str(output)!r})" in message  # the path as the user typed it, not PosixPath(...)
    model = keras.saving.load_model(checkpoint)  # whole, and loadable
    assert model.output_shape == (None, 3)
    assert len(read_json(output / "history.json")["loss"]) == 1
    assert (output / "backup").is_dir()
    assert not list((output / "checkpoints").glob(".partial*"))

    # The same call again picks up at epoch 2 and keeps epoch 1's history. The
    # head-only phase is restored, its optimizer included (3 steps: 12 training
    # images, batch 4), not run again; the second phase starts afresh.
    counter = EpochCounter()
    result = training.finetune(**options, callbacks=[counter])
    assert counter.epochs == [1]
    assert counter.iterations == [3, 0]
    assert "Resuming the interrupted run" in capsys.readouterr().err
    assert result.history.epoch == [0, 1] and len(read_json(output / "history.json")["loss"]) == 2
    assert (output / "model.keras").exists() and not (output / "backup").exists()


def test_resuming_with_other_settings_is_refused(tmp_path):
    output = tmp_path / "run"
    (output / "backup" / "full").mkdir(parents=True)
    (output / "run.json").write_text(json.dumps({"model": "MobileViT_XS", "image_size": 256}))
    settings = {"model": "MobileViT_XXS", "image_size": 256}
    with pytest.raises(ValueError, match=r"other settings \(model='MobileViT_XS'.*--overwrite"):
        training.run_dir.check_run_dir(str(output), settings)


def file_contents(folder):
    """`{relative path: bytes}` of every file under `folder`."""
    folder = pathlib.Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_a_finished_run_is_refused_and_left_as_it_was(finished_run, capsys):
    folder, output, _ = finished_run
    before = file_contents(output)
    assert {"model.keras", "history.json", "checkpoints/best.keras"} <= before.keys()
    capsys.readouterr()

    # Other settings, from the command line: refused, naming the folder and the flag.
    code = cli.main(
        ["train", "--dataset", str(folder), "--model", "MobileViT_XXS", "--weights", "none",
         "--image-size", "64", "--epochs", "1", "--batch-size", "4", "--output", str(output)]
    )  # fmt: skip
    error = capsys.readouterr().err
    assert code == 1
    assert f"{str(output)!r} holds a finished run with other settings (image_size=32" in error
    assert "--overwrite" in error

    # The same settings: refused too, saying the run is done and where its model is.
    with pytest.raises(ValueError, match="finished run with the same settings") as info:
        training.finetune(dataset=folder, output_dir=output, **FINISHED_RUN)
    assert str(output / "model.keras") in str(info.value) and "overwrite=True" in str(info.value)

    assert file_contents(output) == before


def test_overwrite_replaces_a_run_and_leaves_other_files(tmp_path):
    output = tmp_path / "run"
    (output / "checkpoints").mkdir(parents=True)
    (output / "backup" / "full").mkdir(parents=True)  # even interrupted
    (output / "run.json").write_text(json.dumps({"model": "MobileViT_XS"}))
    for name in ("model.keras", "metrics.json", "history.json", "history.png", "checkpoints/a"):
        (output / name).write_bytes(b"old " + name.encode())
    (output / "backup" / "full" / "state.json").write_text("{}")
    (output / "notes.txt").write_text("mine")
    settings = {"model": "MobileViT_XXS"}
    assert training.run_dir.check_run_dir(str(output), settings, overwrite=True) == {}
    training.run_dir.prepare_run_dir(str(output), settings, overwrite=True)
    assert file_contents(output) == {
        "notes.txt": b"mine",
        "run.json": json.dumps(settings, indent=2).encode(),
    }


def test_a_folder_holding_artefacts_of_no_known_run_is_refused(tmp_path):
    output = tmp_path / "mine"
    output.mkdir()
    (output / "model.keras").write_bytes(b"someone's model")
    with pytest.raises(ValueError, match=r"already holds model.keras, which .*--overwrite"):
        training.run_dir.check_run_dir(str(output), {"model": "MobileViT_XXS"})
    assert file_contents(output) == {"model.keras": b"someone's model"}


# -- bad input ----------------------------------------------------------------------------


def test_unknown_dataset_name_suggests_close_ones():
    with pytest.raises(
        ValueError, match=r"Unknown dataset 'oxford_flower102'.*'oxford_flowers102'"
    ):
        training.finetune(dataset="oxford_flower102", weights=None)


def test_missing_directory_is_named(tmp_path):
    missing = str(tmp_path / "no-such-folder")
    with pytest.raises(ValueError, match=f"no directory at '{missing}'"):
        training.finetune(dataset=missing, weights=None)


def test_dataset_that_is_not_image_classification():
    with pytest.raises(ValueError, match="'imdb_reviews' is not an image classification dataset"):
        training.finetune(dataset="imdb_reviews", weights=None)


def test_a_dataset_that_cannot_be_downloaded_says_what_to_do(tmp_path, monkeypatch):
    # A proxy that requests refuses at once: tensorflow-datasets would retry a refused
    # connection for minutes.
    monkeypatch.setenv("HTTPS_PROXY", "invalid://proxy")
    monkeypatch.setenv("HTTP_PROXY", "invalid://proxy")
    with pytest.raises(OSError, match="could not download and prepare 'oxford_flowers102'") as e:
        training.load_data("oxford_flowers102", data_dir=tmp_path)
    assert "--data-dir" in str(e.value) and "unsupported scheme" in str(e.value)


@pytest.mark.parametrize("image_size", [16, 31, 64.0])
def test_image_size_below_32_is_refused(image_size):
    with pytest.raises(ValueError, match="image_size must be an integer of at least 32"):
        training.finetune(image_size=image_size, weights=None)


def test_batch_larger_than_the_training_set(tmp_path):
    with tfds.testing.mock_data(num_examples=6):
        with pytest.raises(ValueError, match=r"batch_size=8 is larger than the training set .*6"):
            training.finetune(batch_size=8, weights=None, output_dir=str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_directory_with_one_class(tmp_path):
    folder = make_class_folders(tmp_path / "one", per_class=3, colours={"rose": (200, 30, 40)})
    with pytest.raises(ValueError, match=r"one class folder \('rose'\).*at least two classes"):
        training.finetune(dataset=folder, weights=None)


def write_bad_images(folder):
    """A text file named like a JPEG, a truncated JPEG, a TIFF named like a PNG: their paths."""
    folder = pathlib.Path(folder)
    jpeg, _ = encoded_image(40, 40)
    tiff = io.BytesIO()
    Image.new("RGB", (40, 40)).save(tiff, format="TIFF")
    bad = {
        folder / "daisy" / "readme.jpg": b"not an image",
        folder / "rose" / "cut.jpg": jpeg[: len(jpeg) // 2],
        folder / "violet" / "scan.png": tiff.getvalue(),
    }
    for path, data in bad.items():
        path.write_bytes(data)
    return sorted(str(path) for path in bad)


def test_files_that_are_not_images_are_skipped_and_named(tmp_path, capsys):
    folder = make_class_folders(tmp_path / "colours", per_class=5)
    bad = write_bad_images(folder)
    data = training.load_data(folder)
    assert sorted(data.skipped) == bad
    assert data.skipped[bad[2]] == "a TIFF image, which TensorFlow does not decode"
    assert data.counts == {"train": 9, "validation": 3, "test": 3}  # the 15 images, no more
    summary = capsys.readouterr().err
    assert "Skipping 3 file(s)" in summary and all(path in summary for path in bad)
    # Every example left decodes: nothing is left to fail mid-epoch.
    for split in ("train", "validation", "test"):
        for images, _ in training.eval_pipeline(data.examples[split], 3, 32, batch_size=16):
            assert np.isfinite(np.asarray(images)).all()


def test_strict_data_refuses_files_that_are_not_images(tmp_path, capsys):
    folder = make_class_folders(tmp_path / "colours", per_class=5)
    bad = write_bad_images(folder)
    code = cli.main(["train", "--dataset", folder, "--strict-data", "--weights", "none"])
    error = capsys.readouterr().err
    assert code == 1 and "3 file(s)" in error and all(path in error for path in bad)


@pytest.mark.parametrize("content", ["nothing", "no image file", "only unreadable files"])
def test_class_folder_without_images_is_refused_by_name(tmp_path, content):
    folder = pathlib.Path(make_class_folders(tmp_path / "colours", per_class=5))
    (folder / "tulip").mkdir()
    if content == "no image file":
        (folder / "tulip" / "README.txt").write_text("tulips to come")
    elif content == "only unreadable files":
        (folder / "tulip" / "tulip.jpg").write_text("not an image")
    with pytest.raises(ValueError, match=r"class folder\(s\) 'tulip' in .* hold no images") as info:
        training.load_data(folder)
    assert ("only unreadable files" in str(info.value)) == (content == "only unreadable files")


def test_one_class_with_images_and_an_empty_one_is_refused(tmp_path, capsys):
    folder = make_class_folders(tmp_path / "one", per_class=5, colours={"rose": (200, 30, 40)})
    (tmp_path / "one" / "daisy").mkdir()
    code = cli.main(
        ["train", "--dataset", folder, "--weights", "none", "--output", str(tmp_path / "run")]
    )
    error = capsys.readouterr().err
    assert code == 1 and "class folder(s) 'daisy'" in error and "hold no images" in error
    assert not (tmp_path / "run").exists()


def test_a_path_that_is_not_a_path_is_refused_as_such():
    with pytest.raises(TypeError, match="output_dir must be a path .*got int"):
        training.finetune(dataset="no_such_dataset_is_looked_up", weights=None, output_dir=3)


def test_too_few_images_for_the_held_out_splits(tmp_path):
    folder = make_class_folders(tmp_path / "few", per_class=2)
    with pytest.raises(ValueError, match="validation split .* is empty"):
        training.finetune(dataset=folder, weights=None, batch_size=2)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"model": "MobileViT_XL"}, "Unknown model 'MobileViT_XL'. Did you mean"),
        ({"distribute": "tpu"}, "Unknown distribute='tpu'"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"freeze_backbone_epochs": 3, "epochs": 2}, "freeze_backbone_epochs must be between"),
        ({"mixed_precision": "int8"}, "mixed_precision must be"),
        ({"label_smoothing": 1.0}, "label_smoothing must be in"),
    ],
)
def test_other_bad_arguments_are_refused_before_loading_data(options, message):
    with pytest.raises(ValueError, match=message):
        training.finetune(dataset="no_such_dataset_is_looked_up", weights=None, **options)


def test_cli_refuses_a_malformed_hub_repository(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--push-to-hub", "just-a-name"])
    assert info.value.code == 2
    assert "is not a Hub repository: write it as 'owner/repo'" in capsys.readouterr().err


# -- metrics ------------------------------------------------------------------------------


def test_confusion_matrix_and_macro_f1_by_hand():
    labels = [0, 0, 0, 1, 1, 2]
    predictions = [0, 0, 1, 1, 2, 2]
    matrix = training.confusion_matrix(labels, predictions, 4)
    np.testing.assert_array_equal(matrix, [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
    # Class 0: P 1, R 2/3, F1 0.8; class 1: P 1/2, R 1/2, F1 0.5; class 2: P 1/2, R 1, F1 2/3.
    np.testing.assert_allclose(training.per_class_f1(matrix), [0.8, 0.5, 2 / 3, 0.0])
    # Class 3 is neither present nor predicted: not averaged (scikit-learn's convention).
    assert training.macro_f1(matrix) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    # A class predicted but never present counts, with F1 0.
    matrix = training.confusion_matrix([0, 0], [0, 1], 2)
    assert training.macro_f1(matrix) == pytest.approx((2 / 3 + 0) / 2)


# -- the benchmark ------------------------------------------------------------------------


@pytest.mark.slow
def test_train_throughput_benchmark_runs_and_prints_a_table(capsys):
    import importlib.util

    path = pathlib.Path(__file__).parents[1] / "benchmarks" / "train_throughput.py"
    spec = importlib.util.spec_from_file_location("train_throughput", path)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    results = benchmark.main(
        ["--model", "MobileViT_XXS", "--size", "32", "--batch", "4", "--steps", "2",
         "--warmup", "1", "--precisions", "float32"]
    )  # fmt: skip
    assert results.keys() == {"float32"} and results["float32"] > 0
    rows = [x for x in capsys.readouterr().out.splitlines() if x.startswith("| MobileViT_XXS")]
    assert len(rows) == 1 and rows[0].split("|")[2].strip() == "float32"
    assert keras.config.dtype_policy().name == "float32"
