"""Transfer learning with keras-mobilevit, end to end: fine-tune, save, reload, segment.

    python examples/transfer_learning.py --data-dir flowers/ --output-dir runs/transfer

1. Builds MobileViT_XS with a classifier for the folder's classes, its backbone
   initialised from `--weights`: `imagenet` (the default), `flowers102`, `none`
   (from scratch), a weights file or `hf://owner/repo`.
2. Fine-tunes it on the folder (one subfolder of images per class), 20% of the
   images held out for validation, augmented by Keras preprocessing layers.
3. Saves it as `model.keras` (with `classes.json`, the class names in order),
   loads that with `keras.models.load_model` in a new Python process and checks
   that it predicts what the trained model predicts.
4. Puts the fine-tuned backbone in a DeepLabV3 segmentation model, ready to be
   trained on masks as docs/segmentation.md shows.

The input pipeline is tf.data whatever the Keras backend: `pip install "keras-mobilevit[train]"`.
For the full recipe (schedules, checkpoints, test metrics, plots) see `keras-mobilevit train`.
"""

import argparse
import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import tempfile

import keras
import numpy as np

import keras_mobilevit
from keras_mobilevit import training

MODEL = "MobileViT_XS"
VALIDATION_SPLIT = 0.2
# AdamW at the recipe's rate for pretrained weights at batch 32 (docs/training.md).
LEARNING_RATE = 2.5e-4
# What a reloaded model may differ by from the trained one: float32 rounding.
RELOAD_TOLERANCE = 1e-5
OUTPUT_FILES = ("model.keras", "classes.json")

# Run by a new Python process: nothing of this one's state (registered objects, the model in
# memory) can help it load the file.
RELOAD_AND_PREDICT = """
import sys
import keras
import numpy as np
import keras_mobilevit  # registers the layers the file needs

model = keras.models.load_model(sys.argv[1])
np.save(sys.argv[3], model.predict(np.load(sys.argv[2]), verbose=0))
"""


@dataclasses.dataclass(frozen=True)
class Result:
    """What a run made: the trained classifier, its file, and the segmentation model."""

    classifier: keras.Model
    class_names: list
    history: dict  # per-epoch metrics, as `keras.callbacks.History.history`
    model_path: pathlib.Path
    reload_difference: float  # largest |difference| between the two processes' predictions
    segmenter: keras.Model


def load_folder(data_dir, image_size, batch_size, seed=0):
    """Training and validation batches of `(images in [0, 255], class indices)`, class names."""
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(
            f"No folder at {str(data_dir)!r}: --data-dir takes a folder of class folders of images."
        )
    train, validation = keras.utils.image_dataset_from_directory(
        data_dir,
        image_size=(image_size, image_size),
        crop_to_aspect_ratio=True,
        batch_size=batch_size,
        validation_split=VALIDATION_SPLIT,
        subset="both",
        seed=seed,
    )
    if len(train.class_names) < 2:
        raise ValueError(
            f"{data_dir} must hold a folder of images per class, at least two; it has "
            f"{train.class_names or 'none'}."
        )
    if int(validation.cardinality()) == 0:
        raise ValueError(
            f"{data_dir} has too few images to hold {VALIDATION_SPLIT:.0%} out for validation."
        )
    return train, validation, train.class_names


def augmentation(seed=0):
    """Random flips, rotations, zooms and contrast, applied to training batches only.

    A `Pipeline`, not a `Sequential`: it stays in tf.data's graph on every
    Keras backend, where a model would convert the images to JAX or torch.
    """
    return keras.layers.Pipeline(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(0.05, seed=seed),
            keras.layers.RandomZoom(0.1, seed=seed),
            keras.layers.RandomContrast(0.1, seed=seed),
        ],
        name="augmentation",
    )


def build_classifier(weights, num_classes, image_size):
    """MobileViT_XS's own classifier for `num_classes`, its backbone loaded from `weights`.

    The builder's classifier rather than a head of one's own: the saved model
    then has the builder's layers, so `keras_mobilevit.MobileViT_XS(weights=
    "model.keras", classes=num_classes)` rebuilds it at any input size, and
    `include_top=False` gives its backbone.
    """
    return training.build_classifier(MODEL, weights, num_classes, image_size)


def reload_and_predict(model_path, images):
    """`keras.models.load_model(model_path).predict(images)`, run by a new Python process."""
    with tempfile.TemporaryDirectory() as tmp:
        images_path, predictions_path = f"{tmp}/images.npy", f"{tmp}/predictions.npy"
        np.save(images_path, images)
        command = [sys.executable, "-c", RELOAD_AND_PREDICT, str(model_path)]
        result = subprocess.run(
            [*command, images_path, predictions_path], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise RuntimeError(f"Loading {model_path} in a new process failed:\n{result.stderr}")
        return np.load(predictions_path)


def segmentation_model(classifier, classes):
    """DeepLabV3 whose backbone is `classifier`'s, fine-tuned: same layer names, same weights.

    DeepLabV3's backbone is MobileViT_XS at output stride 16 without the final
    1x1 convolution; every one of its layers takes the weights of the
    classifier's layer of the same name. The segmentation head starts random.
    """
    segmenter = keras_mobilevit.MobileViT_XS_DeepLabV3(weights=None, classes=classes)
    trained = {layer.name: layer for layer in classifier.layers}
    for layer in segmenter.layers:
        if layer.weights and not layer.name.startswith("segmentation_head"):
            layer.set_weights(trained[layer.name].get_weights())
    return segmenter


def check_output_dir(output_dir, overwrite):
    """Refuses, before any work, to replace the files of an earlier run unless asked."""
    existing = [name for name in OUTPUT_FILES if (output_dir / name).exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{output_dir} already holds {', '.join(existing)} of an earlier run: pass "
            "--overwrite to replace them, or choose another --output-dir."
        )


def run(
    data_dir,
    output_dir,
    weights="imagenet",
    image_size=256,
    epochs=5,
    batch_size=16,
    segmentation_classes=21,
    overwrite=False,
    seed=0,
):
    """Fine-tunes, saves, reloads in a new process and builds the segmentation model."""
    output_dir = pathlib.Path(output_dir)
    check_output_dir(output_dir, overwrite)
    keras.utils.set_random_seed(seed)
    train, validation, class_names = load_folder(data_dir, image_size, batch_size, seed)
    augment = augmentation(seed)
    train = train.map(lambda images, labels: (augment(images, training=True), labels))

    classifier = build_classifier(weights, len(class_names), image_size)
    classifier.compile(
        optimizer=keras.optimizers.AdamW(LEARNING_RATE),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    # The folder's batches come shuffled every epoch; Keras cannot shuffle a tf.data pipeline.
    history = classifier.fit(
        train, validation_data=validation, epochs=epochs, shuffle=False, verbose=2
    )

    output_dir.mkdir(parents=True, exist_ok=True)
    model_path = output_dir / "model.keras"
    classifier.save(model_path)
    (output_dir / "classes.json").write_text(json.dumps(class_names, indent=1) + "\n")

    images = np.concatenate([batch for batch, _ in validation.as_numpy_iterator()])
    expected = classifier.predict(images, verbose=0)
    difference = float(np.max(np.abs(reload_and_predict(model_path, images) - expected)))
    if difference > RELOAD_TOLERANCE:
        raise RuntimeError(
            f"{model_path}, loaded in a new process, predicts differently: max |difference| "
            f"{difference:.3g} (more than {RELOAD_TOLERANCE})."
        )

    segmenter = segmentation_model(classifier, segmentation_classes)
    return Result(classifier, class_names, history.history, model_path, difference, segmenter)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="a folder of class folders of images")
    parser.add_argument("--output-dir", default="runs/transfer_learning")
    parser.add_argument(
        "--weights",
        default="imagenet",
        help="imagenet, flowers102, none (from scratch), a weights file or hf://owner/repo",
    )
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--segmentation-classes", type=int, default=21)
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier run's files")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = run(
        args.data_dir,
        args.output_dir,
        weights=None if args.weights.lower() == "none" else args.weights,
        image_size=args.image_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        segmentation_classes=args.segmentation_classes,
        overwrite=args.overwrite,
        seed=args.seed,
    )
    accuracy = result.history["val_accuracy"][-1]
    print(f"classes: {', '.join(result.class_names)}; validation accuracy {accuracy:.3f}")
    print(
        f"saved {result.model_path}; loaded in a new process, its predictions differ by at "
        f"most {result.reload_difference:.2g}"
    )
    print(
        f"segmentation model on the fine-tuned backbone: {result.segmenter.name}, "
        f"{result.segmenter.output.shape[-1]} classes (train it on masks: docs/segmentation.md)"
    )
    return result


if __name__ == "__main__":
    try:
        main()
    except (ValueError, OSError) as e:
        sys.exit(f"transfer_learning.py: error: {e}")
