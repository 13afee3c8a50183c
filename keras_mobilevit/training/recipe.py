"""The recipe: `finetune()`, what `keras-mobilevit train` runs, checks its arguments, loads the
data, builds the classifier, trains it, evaluates it and writes the artefacts of the run, each
step done by a module of this package.
"""

import contextlib
import dataclasses
import datetime
import difflib
import os
import shutil

import keras

from keras_mobilevit import pretrained
from keras_mobilevit.builder import MIN_SIZE, REGISTRY
from keras_mobilevit.training.classifier import build_classifier, default_learning_rate
from keras_mobilevit.training.data import SHUFFLE_BUFFER, eval_pipeline, load_data, train_pipeline
from keras_mobilevit.training.distribution import (
    DISTRIBUTE_CHOICES,
    num_replicas,
    resolve_distribution,
    scope,
    shard_by_data,
    split_over_replicas,
)
from keras_mobilevit.training.evaluation import best_epoch, evaluate_test_split
from keras_mobilevit.training.loop import fit
from keras_mobilevit.training.run_dir import (
    check_run_dir,
    prepare_run_dir,
    run_directory,
    write_artefacts,
)

DEFAULT_DATASET = "oxford_flowers102"
EARLY_STOPPING_PATIENCE = 5


@dataclasses.dataclass(frozen=True)
class FinetuneResult:
    """What `finetune` returns: the trained model and the record of its run.

    Attributes:
        model: the trained classifier, with the weights of its best epoch.
        metrics: the test metrics, as written to `metrics.json`.
        output_dir: the directory of the run's artefacts.
        history: the `keras.callbacks.History` of every epoch of the run
            (those before an interruption included).
    """

    model: keras.Model
    metrics: dict
    output_dir: str
    history: keras.callbacks.History


def finetune(
    dataset=DEFAULT_DATASET,
    model="MobileViT_XS",
    weights="imagenet",
    image_size=256,
    epochs=30,
    batch_size=32,
    learning_rate=None,
    label_smoothing=0.1,
    mixed_precision=False,
    freeze_backbone_epochs=0,
    output_dir=None,
    distribute=None,
    seed=0,
    patience=EARLY_STOPPING_PATIENCE,
    steps_per_epoch=None,
    max_examples=None,
    callbacks=None,
    data_dir=None,
    overwrite=False,
    strict_data=False,
):
    """Fine-tunes a MobileViT classifier on an image classification dataset.

    The model is the builder's own classifier (`include_top=True`) with
    `classes` set to the dataset's, its backbone initialised from `weights`
    and its classifier fresh, so that the result loads back with
    `keras_mobilevit.<model>(weights=..., classes=n)` as well as with
    `keras.saving.load_model`.

    Data. Training images get a random resized crop (area 25-100%, aspect
    ratio 3/4 to 4/3) to `image_size`, a random horizontal flip and a mild
    colour jitter (Keras' `RandomFlip` and `RandomColorJitter`), drawn anew for
    every image at every epoch. Validation and test images are resized
    (bicubic, short side `image_size / crop_pct`, the model's evaluation crop)
    and centre-cropped, with no randomness. Labels are one-hot, for label
    smoothing.

    Splits. A tensorflow-datasets dataset with `train`, `validation` and
    `test` splits (Flowers-102) uses them as they are. Where one is missing it
    is carved out of `train` with tfds split slicing, deterministically:
    `train[:80%]` / `train[80%:90%]` / `train[90%:]` when there is only
    `train` (cats_vs_dogs); `train[:90%]` / `train[90%:]` for validation when
    there is a `test` split; and a dataset with `train` and `validation` only
    (ImageNet-style) keeps `validation` as the test set and validates on
    `train[90%:]`, so the reported test accuracy is never the one early
    stopping chose. A directory may hold `train/`, `validation/` (or `val/`)
    and `test/` folders of class folders; otherwise it is one folder of class
    folders and 10% of each class (rounded) goes to validation and 10% to test,
    the same images every run.

    Optimisation. AdamW (weight decay 0.01, not on biases and norm scales),
    label smoothing, a linear warm-up over the first 5% of the steps and a
    cosine decay to zero. `learning_rate=None` picks `2e-3 * batch_size / 256`
    for pretrained weights and `8e-3 * batch_size / 256` from scratch. Early
    stopping on the validation loss (`patience` epochs) restores the best
    weights. `freeze_backbone_epochs` first trains only the classifier, for
    that many epochs, with `10 * learning_rate` and the backbone frozen
    (BatchNorm statistics included), then everything for the remaining epochs.

    Output. `output_dir` receives `model.keras` (the final model, best
    weights), `history.json` (per-epoch metrics, written as training goes),
    `metrics.json` (test loss, top-1 and top-5 accuracy, macro F1, the
    confusion matrix), `history.png`, `confusion_matrix.png`, `run.json` (the
    settings and splits) and `checkpoints/best.keras` (the best model so far,
    written at the end of each improving epoch). While training, `backup/`
    holds the state of the last epoch (Keras' `BackupAndRestore`): after an
    interruption (Ctrl-C included), running the same call again with the same
    `output_dir` resumes from the last completed epoch. A finished run there,
    or an interrupted one with other settings, is refused unless `overwrite`.

    Args:
        dataset: a tensorflow-datasets name (`"oxford_flowers102"`,
            `"cats_vs_dogs"`, `"oxford_iiit_pet"`, ... any dataset with an
            image and a class label; downloaded and prepared on first use), or
            the path of a directory of class folders. Every file of a directory
            is checked before training (each decoded with Pillow): those that
            are not images TensorFlow decodes, or are truncated, are skipped
            and listed on stderr and in `run.json` (refused with `strict_data`).
        model: a builder name, e.g. `"MobileViT_XS"` or `"MobileViTV2_100"`.
        weights: what the backbone starts from: `"imagenet"` (downloaded from
            the Hugging Face Hub), `None` (from scratch), a weights file or
            `"hf://owner/repo"`, as for the builders.
        image_size: the square training and evaluation size, at least 32.
        epochs: the number of epochs, head-only ones included.
        batch_size: the global batch size (split across devices when
            distributed). Training drops the last incomplete batch.
        learning_rate: the peak learning rate, or `None` for the default above.
        label_smoothing: for the cross-entropy loss.
        mixed_precision: `True` for the `"mixed_bfloat16"` policy (bfloat16
            compute, float32 weights), or a Keras policy name such as
            `"mixed_float16"` (GPUs older than Ampere). The global policy is
            restored afterwards; the saved model keeps its policy.
        freeze_backbone_epochs: head-only epochs before fine-tuning everything,
            `0 <= freeze_backbone_epochs <= epochs` (equal: a linear probe).
        output_dir: where the artefacts go; default
            `runs/<model>-<dataset>-<YYYYmmdd-HHMMSS>`. An existing run there is
            resumed if it was interrupted, with the same settings; any other run
            there is refused, its files untouched, unless `overwrite`.
        distribute: `None` (one device); `"mirrored"`: all local devices
            (`tf.distribute.MirroredStrategy` on TensorFlow,
            `keras.distribution.DataParallel` on JAX); `"multi_worker"`: several
            machines (`tf.distribute.MultiWorkerMirroredStrategy`, configured
            by `TF_CONFIG`; on JAX, `keras.distribution.initialize()` from its
            environment variables, then `DataParallel`); or a
            `tf.distribute.Strategy` or `keras.distribution.Distribution`
            instance. In multi-worker training only the chief (worker 0)
            writes to `output_dir`. (Keras 3's TensorFlow trainer cannot fit
            with MultiWorkerMirroredStrategy over more than one worker,
            keras-team/keras#20585; that is reported as a ValueError.)
        seed: seeds Python, NumPy and the backend (`keras.utils.set_random_seed`),
            the shuffling and the augmentation draws. (Keras' random layers draw
            from a stateful generator, and with parallel preprocessing which
            image gets which flip can differ between runs.)
        patience: epochs without improvement of the validation loss before
            stopping early.
        steps_per_epoch: training steps per epoch; default one pass over the
            training set. Set it to make epochs shorter than a pass over a
            large dataset (the training set then repeats).
        max_examples: use at most this many examples of each split, for a
            quick trial run of the whole recipe.
        callbacks: extra Keras callbacks, called in every phase of training.
        data_dir: where tensorflow-datasets stores its data (its default,
            `~/tensorflow_datasets`, otherwise).
        overwrite: replace the run in `output_dir`, finished or interrupted:
            its artefacts and backup are removed (other files are left alone)
            and training starts over.
        strict_data: refuse a directory dataset holding files that are not
            decodable images, listing them, instead of skipping them.

    Returns:
        A `FinetuneResult`: the trained `model` (the weights of its best
        epoch), the test `metrics` (as in `metrics.json`), the `output_dir`,
        and the `history`, a `keras.callbacks.History` of every epoch of the
        run (those before an interruption included).

    Raises:
        ValueError: for an unknown dataset name (with suggestions), a dataset
            that is not image classification, a directory with fewer than two
            class folders or a class folder without images, unreadable images
            with `strict_data`, an earlier run in `output_dir` that cannot be
            resumed (without `overwrite`), `image_size` below 32, a `batch_size`
            larger than the training set, or an unknown model or `distribute`
            value.
        TypeError: for a path that is neither a `str` nor an `os.PathLike`.
        KeyboardInterrupt: re-raised after saying where the last checkpoint
            is and how to resume.
    """
    crop_pct = _check_arguments(
        model, image_size, epochs, batch_size, learning_rate, label_smoothing,
        freeze_backbone_epochs, patience, steps_per_epoch, max_examples, distribute,
    )  # fmt: skip
    policy = _policy_name(mixed_precision)
    output_dir, data_dir = _path("output_dir", output_dir), _path("data_dir", data_dir)
    # First: MultiWorkerMirroredStrategy must exist before TensorFlow runs anything.
    distribution, is_chief = resolve_distribution(distribute)
    keras.utils.set_random_seed(seed)
    data = load_data(
        dataset, seed=seed, max_examples=max_examples, data_dir=data_dir, strict_data=strict_data
    )
    _check_data(data, batch_size)
    if learning_rate is None:
        learning_rate = default_learning_rate(weights is not None, batch_size)
    output_dir = output_dir or os.path.join(
        "runs", f"{model}-{data.name}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    )
    # `examples` is `data.counts` itself, so that run.json records the validation
    # examples left once they split over the replicas.
    settings = dict(
        dataset=os.path.abspath(dataset) if os.path.isdir(dataset) else os.fspath(dataset),
        model=model, weights=weights, image_size=image_size, epochs=epochs,
        batch_size=batch_size, learning_rate=learning_rate, label_smoothing=label_smoothing,
        mixed_precision=policy, freeze_backbone_epochs=freeze_backbone_epochs, seed=seed,
        steps_per_epoch=steps_per_epoch, max_examples=max_examples, classes=data.num_classes,
        class_names=data.class_names, splits=data.splits, examples=data.counts,
        skipped_files=data.skipped,
    )  # fmt: skip
    steps = steps_per_epoch or data.counts["train"] // batch_size
    repeat = steps_per_epoch is not None
    with _global_policy(policy):
        replicas = num_replicas(distribution)
        split_over_replicas(data, batch_size, replicas, distribute)
        with run_directory(output_dir, is_chief) as run_dir:
            previous = check_run_dir(run_dir, settings, overwrite=overwrite)
            with scope(distribution):
                classifier = build_classifier(model, weights, data.num_classes, image_size)
            # Only now: with overwrite, bad weights must not have cost the earlier run.
            prepare_run_dir(run_dir, settings, overwrite=overwrite)
            train_ds = train_pipeline(
                data.examples["train"], data.num_classes, image_size, batch_size, seed=seed,
                shuffle_buffer=min(data.counts["train"], SHUFFLE_BUFFER), repeat=repeat,
            )  # fmt: skip
            val_ds = eval_pipeline(
                data.examples["validation"], data.num_classes, image_size, batch_size,
                crop_pct=crop_pct,
            )  # fmt: skip
            train_ds, val_ds = (shard_by_data(ds, distribute) for ds in (train_ds, val_ds))
            history = fit(
                classifier, train_ds, val_ds, run_dir, output_dir, distribution, previous,
                epochs=epochs, steps=steps, repeat=repeat, learning_rate=learning_rate,
                label_smoothing=label_smoothing, freeze_backbone_epochs=freeze_backbone_epochs,
                patience=patience, extra_callbacks=callbacks or [], is_chief=is_chief,
            )  # fmt: skip
            metrics = evaluate_test_split(
                classifier, data, image_size, batch_size, crop_pct=crop_pct,
                label_smoothing=label_smoothing, distribution=distribution, replicas=replicas,
            )  # fmt: skip
            metrics["best_epoch"] = best_epoch(history)
            write_artefacts(run_dir, classifier, history, metrics, data)
            # The run is complete: no backup to resume from any more.
            shutil.rmtree(os.path.join(output_dir, "backup"), ignore_errors=True)
    return FinetuneResult(model=classifier, metrics=metrics, output_dir=output_dir, history=history)


def _check_arguments(
    model, image_size, epochs, batch_size, learning_rate, label_smoothing,
    freeze_backbone_epochs, patience, steps_per_epoch, max_examples, distribute,
):  # fmt: skip
    """Checks everything that needs no data; returns the model's evaluation crop."""
    classifiers = [name for name, variant in REGISTRY.items() if variant.task == "classification"]
    if model not in classifiers:
        close = difflib.get_close_matches(model, classifiers, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise ValueError(f"Unknown model {model!r}.{hint} Choose from {', '.join(classifiers)}.")
    if not isinstance(image_size, int) or image_size < MIN_SIZE:
        raise ValueError(
            f"image_size must be an integer of at least {MIN_SIZE} (the smallest input MobileViT "
            f"takes), got {image_size!r}. 256 is what the ImageNet weights were trained at."
        )
    for name, value, minimum in (
        ("epochs", epochs, 1),
        ("batch_size", batch_size, 1),
        ("patience", patience, 1),
        ("steps_per_epoch", steps_per_epoch, 1),
        ("max_examples", max_examples, 1),
    ):
        if value is None and name in ("steps_per_epoch", "max_examples"):
            continue
        if not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    if not isinstance(freeze_backbone_epochs, int) or not 0 <= freeze_backbone_epochs <= epochs:
        raise ValueError(
            f"freeze_backbone_epochs must be between 0 and epochs={epochs}, got "
            f"{freeze_backbone_epochs!r}."
        )
    if learning_rate is not None and not learning_rate > 0:
        raise ValueError(f"learning_rate must be positive (or None), got {learning_rate!r}.")
    if not 0 <= label_smoothing < 1:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}.")
    if isinstance(distribute, str) and distribute not in DISTRIBUTE_CHOICES:
        raise ValueError(
            f"Unknown distribute={distribute!r}: use None, "
            f"{' or '.join(repr(c) for c in DISTRIBUTE_CHOICES)}, a tf.distribute.Strategy "
            "or a keras.distribution.Distribution."
        )
    # The crop its ImageNet weights are evaluated with, whatever it starts from.
    return pretrained.find(model, "imagenet").crop_pct


def _path(name, value):
    """`value` as a `str` path (or `None`), from a `str` or an `os.PathLike`."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{name} must be a path (str or os.PathLike), got {type(value).__name__}.")


def _policy_name(mixed_precision):
    if mixed_precision is True:
        return "mixed_bfloat16"
    if not mixed_precision:
        return "float32"
    if mixed_precision not in ("mixed_bfloat16", "mixed_float16", "bfloat16", "float16"):
        raise ValueError(
            f"mixed_precision must be True, False or a Keras policy name such as "
            f"'mixed_bfloat16', got {mixed_precision!r}."
        )
    return mixed_precision


def _check_data(data, batch_size):
    """Checks that the splits can train with `batch_size`, validate and test."""
    if data.counts["train"] < batch_size:
        raise ValueError(
            f"batch_size={batch_size} is larger than the training set of {data.name!r} "
            f"({data.counts['train']} images): lower the batch size to at most "
            f"{data.counts['train']}, or use more data."
        )
    for split in ("validation", "test"):
        if data.counts[split] == 0:
            raise ValueError(
                f"The {split} split of {data.name!r} ({data.splits[split]}) is empty: "
                "use a larger dataset (each class needs at least 5 images for a 10% "
                "hold-out to round to one) or provide the split."
            )


@contextlib.contextmanager
def _global_policy(policy):
    """Sets Keras' global dtype policy for the run; restores the previous one afterwards."""
    previous = keras.config.dtype_policy()
    if policy != "float32":
        keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
