"""Fine-tuning a MobileViT on an image classification dataset: the transfer-learning recipe.

`finetune()` is what `keras-mobilevit train` runs: a `tf.data` pipeline over a
tensorflow-datasets dataset or a directory of class folders, AdamW with warm-up
and cosine decay, label smoothing, early stopping, checkpoints that survive an
interruption, optional data-parallel training, and the artefacts of the run
(model, history, test metrics, plots) in one directory. See docs/training.md.

The data pipeline is TensorFlow's (`tf.data`, tensorflow-datasets, Keras
preprocessing layers), whatever the Keras backend; TensorFlow and
tensorflow-datasets are imported only when a function here needs them, so
`import keras_mobilevit` stays light. Install them with
`pip install "keras-mobilevit[train]"`.
"""

import contextlib
import datetime
import difflib
import json
import math
import os
import shutil
import sys
import tempfile

import keras
import numpy as np

from keras_mobilevit import plots
from keras_mobilevit import weights as weights_lib
from keras_mobilevit.model import MIN_SIZE, REGISTRY

DEFAULT_DATASET = "oxford_flowers102"

# The learning rate when `learning_rate=None`: per 256 images of (global) batch,
# scaled linearly with the batch size. Fine-tuning pretrained weights takes a
# quarter of the rate that training from scratch does (8e-3 per 256 is 2e-3 at
# batch 64, keras.io's MobileViT-from-scratch recipe on tf_flowers).
PRETRAINED_LR_PER_256 = 2e-3
SCRATCH_LR_PER_256 = 8e-3
# The head-only epochs of `freeze_backbone_epochs` train a new classifier on
# frozen features, which takes a larger step than fine-tuning everything.
HEAD_LR_MULTIPLIER = 10.0
WEIGHT_DECAY = 0.01  # ml-cvnets' AdamW weight decay for MobileViT; not on norms or biases
WARMUP_FRACTION = 0.05  # of the steps of each phase, linear from 0, then cosine to 0
EARLY_STOPPING_PATIENCE = 5

# Training augmentation: Inception-style random resized crop (area fraction
# and aspect ratio ranges), horizontal flip, mild colour jitter.
CROP_AREA = (0.25, 1.0)
CROP_ASPECT_RATIO = (3 / 4, 4 / 3)
BRIGHTNESS = 0.1  # shift by up to 10% of the value range
CONTRAST = 0.2  # scale the contrast by a factor in [0.8, 1.2]
SATURATION = (0.4, 0.6)  # Keras' scale, 0.5 leaving the saturation as it is
SHUFFLE_BUFFER = 10_000  # encoded images, so a full buffer is a few hundred MB at most

# Fractions carved out of "train" where a dataset has no validation or test split.
HOLDOUT_FRACTION = 0.1

_VALIDATION_SPLITS = ("validation", "valid", "val")
_DISTRIBUTE_CHOICES = ("mirrored", "multi_worker")


class _Data:
    """A dataset split three ways: `(encoded image, label)` examples and their counts."""

    def __init__(self, name, class_names, examples, counts, splits):
        self.name = name  # for file names and messages
        self.class_names = list(class_names)
        self.examples = examples  # {"train" | "validation" | "test": tf.data.Dataset}
        self.counts = counts  # {same keys: number of examples}
        self.splits = splits  # {same keys: where the examples come from, for the record}

    @property
    def num_classes(self):
        return len(self.class_names)


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
    `output_dir` resumes from the last completed epoch.

    Args:
        dataset: a tensorflow-datasets name (`"oxford_flowers102"`,
            `"cats_vs_dogs"`, `"oxford_iiit_pet"`, ... any dataset with an
            image and a class label; downloaded and prepared on first use), or
            the path of a directory of class folders.
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
            resumed if it was interrupted, with the same settings.
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

    Returns:
        A `keras.callbacks.History` of every epoch of the run (those before an
        interruption included), its `model` the trained model.

    Raises:
        ValueError: for an unknown dataset name (with suggestions), a dataset
            that is not image classification, a directory with fewer than two
            class folders, `image_size` below 32, a `batch_size` larger than
            the training set, or an unknown model or `distribute` value.
        KeyboardInterrupt: re-raised after saying where the last checkpoint
            is and how to resume.
    """
    config = _check_arguments(
        model, image_size, epochs, batch_size, learning_rate, label_smoothing,
        freeze_backbone_epochs, patience, steps_per_epoch, max_examples, distribute,
    )  # fmt: skip
    policy = _policy_name(mixed_precision)
    # First: MultiWorkerMirroredStrategy must exist before TensorFlow runs anything.
    distribution, is_chief = _distribution(distribute)
    keras.utils.set_random_seed(seed)
    data = load_data(dataset, seed=seed, max_examples=max_examples, data_dir=data_dir)
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

    pretrained = weights is not None
    if learning_rate is None:
        per_256 = PRETRAINED_LR_PER_256 if pretrained else SCRATCH_LR_PER_256
        learning_rate = per_256 * batch_size / 256
    output_dir = output_dir or os.path.join(
        "runs", f"{model}-{data.name}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    )
    settings = {
        "dataset": os.path.abspath(dataset) if os.path.isdir(dataset) else os.fspath(dataset),
        "model": model,
        "weights": weights,
        "image_size": image_size,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "label_smoothing": label_smoothing,
        "mixed_precision": policy,
        "freeze_backbone_epochs": freeze_backbone_epochs,
        "seed": seed,
        "steps_per_epoch": steps_per_epoch,
        "max_examples": max_examples,
        "classes": data.num_classes,
        "class_names": data.class_names,
        "splits": data.splits,
        "examples": data.counts,
    }
    steps = steps_per_epoch or data.counts["train"] // batch_size

    previous_policy = keras.config.dtype_policy()
    run_dir = None
    if policy != "float32":
        keras.config.set_dtype_policy(policy)
    try:
        replicas = _replicas(distribution)
        if batch_size % replicas:
            raise ValueError(
                f"batch_size={batch_size} does not split evenly over the {replicas} replicas of "
                f"distribute={distribute!r}: use a multiple of {replicas}."
            )
        if replicas > 1 and data.counts["validation"] % replicas:
            # Keras 3 (TensorFlow trainer, `_maybe_symbolic_build`) averages the first
            # batch of every fit and evaluation over the replicas, which fails (an AddN
            # of unequal shapes) when that batch does not split evenly, and JAX cannot
            # shard such a batch at all: leave out at most replicas - 1 validation
            # images. The test metrics use every image.
            data.counts["validation"] -= data.counts["validation"] % replicas
            data.examples["validation"] = data.examples["validation"].take(
                data.counts["validation"]
            )
        run_dir = output_dir if is_chief else tempfile.mkdtemp(prefix="keras_mobilevit-worker-")
        previous = _prepare_run_dir(run_dir, settings)
        with _scope(distribution):
            classifier = build_classifier(model, weights, data.num_classes, image_size)
        train_ds = train_pipeline(
            data.examples["train"], data.num_classes, image_size, batch_size, seed=seed,
            shuffle_buffer=min(data.counts["train"], SHUFFLE_BUFFER),
            repeat=steps_per_epoch is not None,
        )  # fmt: skip
        val_ds = eval_pipeline(
            data.examples["validation"], data.num_classes, image_size, batch_size,
            crop_pct=config.eval_crop_pct,
        )  # fmt: skip
        train_ds, val_ds = (_shard_by_data(ds, distribute) for ds in (train_ds, val_ds))
        history = _fit(
            classifier, train_ds, val_ds, run_dir, output_dir, distribution, previous,
            epochs=epochs, steps=steps, repeat=steps_per_epoch is not None,
            learning_rate=learning_rate,
            label_smoothing=label_smoothing, freeze_backbone_epochs=freeze_backbone_epochs,
            patience=patience, extra_callbacks=callbacks or [], is_chief=is_chief,
            backup_root=os.path.join(output_dir, "backup"),
            worker_id=_worker_id(distribution),
        )  # fmt: skip
        # Every test image is predicted: where the last batch would not split evenly
        # over the replicas (which Keras cannot predict on JAX), it is padded with
        # copies of the first image, whose predictions are then dropped.
        padding = -data.counts["test"] % replicas
        test_examples = data.examples["test"]
        test_ds = eval_pipeline(
            test_examples.concatenate(test_examples.take(1).repeat(padding)),
            data.num_classes, image_size, batch_size, crop_pct=config.eval_crop_pct,
        )  # fmt: skip
        with _scope(distribution):
            metrics = evaluate(
                classifier, test_ds, test_examples, data.class_names, label_smoothing, padding
            )
        val_losses = [v if v is not None else np.inf for v in history.history.get("val_loss", [])]
        metrics["best_epoch"] = int(np.argmin(val_losses)) + 1 if val_losses else None
        _write_artefacts(run_dir, classifier, history, metrics, data)
        # The run is complete: no backup to resume from any more.
        shutil.rmtree(os.path.join(output_dir, "backup"), ignore_errors=True)
    finally:
        keras.config.set_dtype_policy(previous_policy)
        if not is_chief and run_dir is not None:
            shutil.rmtree(run_dir, ignore_errors=True)
    history.metrics = metrics
    history.output_dir = output_dir
    return history


def _check_arguments(
    model, image_size, epochs, batch_size, learning_rate, label_smoothing,
    freeze_backbone_epochs, patience, steps_per_epoch, max_examples, distribute,
):  # fmt: skip
    """Checks everything that needs no data; returns the model's configuration."""
    if model not in REGISTRY:
        close = difflib.get_close_matches(model, REGISTRY, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise ValueError(f"Unknown model {model!r}.{hint} Choose from {', '.join(REGISTRY)}.")
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
    if isinstance(distribute, str) and distribute not in _DISTRIBUTE_CHOICES:
        raise ValueError(
            f"Unknown distribute={distribute!r}: use None, "
            f"{' or '.join(repr(c) for c in _DISTRIBUTE_CHOICES)}, a tf.distribute.Strategy "
            "or a keras.distribution.Distribution."
        )
    return REGISTRY[model]


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


# -- data ---------------------------------------------------------------------------------


def load_data(dataset, seed=0, max_examples=None, data_dir=None):
    """The training, validation and test examples of `dataset`, as `(encoded image, label)`.

    `dataset` is a tensorflow-datasets name or a directory of class folders;
    see `finetune` for how the three splits are chosen. Images stay encoded
    (JPEG, PNG...) until the pipeline decodes them, so that shuffling holds
    bytes, not pixels.
    """
    if not isinstance(dataset, (str, os.PathLike)):
        raise TypeError(f"dataset must be a name or a path, got {type(dataset).__name__}.")
    dataset = os.fspath(dataset)
    if os.path.isdir(dataset):
        data = _directory_data(dataset)
    else:
        data = _tfds_data(dataset, seed, data_dir)
    if max_examples is not None:
        for split in data.examples:
            data.examples[split] = data.examples[split].take(max_examples)
            data.counts[split] = min(data.counts[split], max_examples)
    return data


def _tfds_data(name, seed, data_dir):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    known = tfds.list_builders(with_community_datasets=False)
    base = name.split(":")[0].split("/")[0]
    if base not in known:
        looks_like_path = os.sep in name or name.startswith((".", "~"))
        close = difflib.get_close_matches(base, known, n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"Unknown dataset {name!r}: it is neither a tensorflow-datasets name nor a directory."
            f"{hint} Image classification datasets include 'oxford_flowers102', "
            "'cats_vs_dogs', 'oxford_iiit_pet', 'food101' and 'caltech101' "
            "(tfds.list_builders() lists all); a directory must hold one folder of images "
            "per class." + (f" There is no directory at {name!r}." if looks_like_path else "")
        )
    builder = tfds.builder(name, data_dir=data_dir)
    features = builder.info.features
    image_key, label_key = _supervised_keys(builder.info)
    image = features[image_key] if image_key in features.keys() else None
    label = features[label_key] if label_key in features.keys() else None
    if not (isinstance(image, tfds.features.Image) and isinstance(label, tfds.features.ClassLabel)):
        raise ValueError(
            f"{name!r} is not an image classification dataset: finetune needs an image feature "
            f"and a class label, and its features are {', '.join(features.keys())}."
        )
    builder.download_and_prepare()
    available = dict(builder.info.splits)
    chosen = _choose_splits(name, set(available))
    read_config = tfds.ReadConfig(shuffle_seed=seed)
    examples, counts = {}, {}
    for role, split in chosen.items():
        ds = builder.as_dataset(
            split=split,
            decoders={image_key: tfds.decode.SkipDecoding()},
            shuffle_files=role == "train",
            read_config=read_config,
        )
        ds = ds.map(lambda e: (e[image_key], e[label_key]), num_parallel_calls=tf.data.AUTOTUNE)
        examples[role] = ds
        counts[role] = _count(builder.info.splits if available else {}, split, ds)
    return _Data(name, label.names, examples, counts, chosen)


def _supervised_keys(info):
    keys = info.supervised_keys
    if isinstance(keys, tuple) and len(keys) == 2 and all(isinstance(k, str) for k in keys):
        return keys
    return "image", "label"


def _choose_splits(name, available):
    """`{"train", "validation", "test": tfds split expression}` (see `finetune`)."""
    if not available:
        # tfds.testing.mock_data lists no splits (and serves any); assume the usual three.
        return {"train": "train", "validation": "validation", "test": "test"}
    if "train" not in available:
        raise ValueError(
            f"{name!r} has no 'train' split (it has {', '.join(sorted(available))}): "
            "finetune needs one to train on."
        )
    validation = next((s for s in _VALIDATION_SPLITS if s in available), None)
    test = "test" if "test" in available else None
    keep = round(100 * (1 - HOLDOUT_FRACTION))
    if validation and test:
        return {"train": "train", "validation": validation, "test": test}
    if test or validation:
        # A lone held-out split is the test set; validation comes out of train.
        held_out = test or validation
        return {"train": f"train[:{keep}%]", "validation": f"train[{keep}%:]", "test": held_out}
    second = round(100 * (1 - 2 * HOLDOUT_FRACTION))
    return {
        "train": f"train[:{second}%]",
        "validation": f"train[{second}%:{keep}%]",
        "test": f"train[{keep}%:]",
    }


def _count(info_splits, split, ds):
    try:
        count = info_splits[split].num_examples if info_splits else 0
    except (KeyError, ValueError):
        count = 0
    if not count:
        count = int(ds.reduce(np.int64(0), lambda n, _: n + 1))
    return count


def _directory_data(directory):
    """Examples from a directory of class folders, or of train/validation/test folders of them."""
    import tensorflow as tf

    def sub(names):
        folders = (os.path.join(directory, name) for name in names)
        return next((folder for folder in folders if os.path.isdir(folder)), None)

    train_dir = sub(("train",))
    if train_dir is None:
        sources = {"train": directory}
    else:
        sources = {
            "train": train_dir,
            "validation": sub(_VALIDATION_SPLITS),
            "test": sub(("test",)),
        }
    paths, labels = {}, {}
    class_names = None
    for role, folder in sources.items():
        if folder is None:
            continue
        paths[role], labels[role], names = _index_directory(folder, class_names)
        class_names = class_names or names
        if len(class_names) < 2:
            found = f"one class folder ({class_names[0]!r})" if class_names else "no class folder"
            raise ValueError(
                f"Found {found} in {folder!r}: a classifier needs at least two classes. "
                "Put the images of each class in a folder of its own, named after the class "
                "(e.g. flowers/daisy/*.jpg, flowers/rose/*.jpg)."
            )
    missing = [role for role in ("validation", "test") if role not in paths]
    if missing:
        carved = _carve(labels["train"], len(missing))
        all_paths, all_labels = paths["train"], labels["train"]
        for role, indices in zip(["train", *missing], carved, strict=True):
            paths[role] = [all_paths[i] for i in indices]
            labels[role] = [all_labels[i] for i in indices]
    splits = {}
    for role in ("train", "validation", "test"):
        if role in missing:
            splits[role] = f"{HOLDOUT_FRACTION:.0%} of each class of {sources['train']}"
        elif role == "train" and missing:
            splits[role] = f"the rest of {sources['train']}"
        else:
            splits[role] = sources[role]
    examples = {
        role: tf.data.Dataset.from_tensor_slices(
            (tf.constant(paths[role], tf.string), tf.constant(labels[role], tf.int64))
        ).map(lambda p, y: (tf.io.read_file(p), y), num_parallel_calls=tf.data.AUTOTUNE)
        for role in ("train", "validation", "test")
    }
    counts = {role: len(paths[role]) for role in examples}
    name = os.path.basename(os.path.normpath(directory)) or "images"
    return _Data(name, class_names, examples, counts, splits)


def _index_directory(folder, class_names=None):
    """Image paths, labels and class names of a folder of class folders, as Keras finds them.

    `keras.utils.image_dataset_from_directory` does the discovery (class
    folders in alphabetical order, .jpg .jpeg .png .bmp .gif, sub-folders
    included); its dataset is not used, as it would resize every image on
    load, before the random crop could see the whole picture.
    """
    listing = keras.utils.image_dataset_from_directory(
        folder,
        labels="inferred",
        label_mode="int",
        class_names=class_names,
        batch_size=None,
        image_size=(MIN_SIZE, MIN_SIZE),
        shuffle=False,
        verbose=False,
    )
    names = list(listing.class_names)
    root = os.path.abspath(folder)
    labels = []
    for path in listing.file_paths:
        relative = os.path.relpath(os.path.abspath(path), root)
        labels.append(names.index(relative.split(os.sep)[0]))
    return list(listing.file_paths), labels, names


def _carve(labels, holdouts):
    """Indices for train and `holdouts` held-out sets: 10% of each class each, fixed."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(0)  # the same split every run, whatever the training seed
    parts = [[] for _ in range(holdouts + 1)]
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        members = members[rng.permutation(len(members))]
        size = math.floor(HOLDOUT_FRACTION * len(members) + 0.5)
        for k in range(holdouts):
            parts[k + 1].extend(members[k * size : (k + 1) * size])
        parts[0].extend(members[holdouts * size :])
    return [sorted(int(i) for i in part) for part in parts]


def _decode(image):
    import tensorflow as tf

    if image.dtype == tf.string:
        image = tf.io.decode_image(image, channels=3, expand_animations=False)
    elif image.shape.rank == 3 and image.shape[-1] == 1:
        image = tf.image.grayscale_to_rgb(image)
    image = tf.ensure_shape(image, [None, None, 3])
    return tf.cast(image, tf.float32)


def _random_resized_crop(image, size, seed):
    """A crop of random area and aspect ratio (`CROP_AREA`, `CROP_ASPECT_RATIO`), resized."""
    import tensorflow as tf

    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=CROP_ASPECT_RATIO,
        area_range=CROP_AREA,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    crop = tf.slice(image, begin, crop_size)
    return tf.image.resize(crop, (size, size), method="bilinear", antialias=True)


def train_pipeline(
    examples, num_classes, image_size, batch_size, seed=0, shuffle_buffer=1024, repeat=False
):
    """The training `tf.data` pipeline: shuffle, decode, augment, one-hot, batch.

    Args:
        examples: a `tf.data.Dataset` of `(image, label)`, the image encoded
            (JPEG, PNG... bytes) or decoded (`uint8`, `(height, width, 3)`).
        num_classes: for the one-hot labels.
        image_size: the square output size.
        batch_size: examples per batch; the last incomplete batch is dropped.
        seed: seeds the shuffle and the augmentation.
        shuffle_buffer: examples in the shuffle buffer.
        repeat: repeat forever (for a fixed `steps_per_epoch`).

    Each image gets a random resized crop (`tf.image`, stateless, its seed
    drawn per image and per pass from `tf.data.Dataset.random`), a random
    horizontal flip and a mild colour jitter (Keras preprocessing layers), so
    the same image is augmented differently at every epoch. Returns batches of
    `float32` images in `[0, 255]` and one-hot labels.
    """
    import tensorflow as tf

    flip = keras.layers.RandomFlip("horizontal", seed=seed, dtype="float32")
    jitter = keras.layers.RandomColorJitter(
        value_range=(0, 255),
        brightness_factor=BRIGHTNESS,
        contrast_factor=CONTRAST,
        saturation_factor=SATURATION,
        seed=seed + 1,
        dtype="float32",
    )

    def augment(example, crop_seed):
        image, label = example
        image = _random_resized_crop(_decode(image), image_size, crop_seed)
        image = jitter(flip(image))
        image = tf.clip_by_value(image, 0.0, 255.0)
        return image, tf.one_hot(label, num_classes)

    ds = examples.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    # One (2,) stateless seed per image, a new stream at every pass over the data.
    crop_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    ds = tf.data.Dataset.zip((ds, crop_seeds))
    ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def eval_transform(image, image_size, crop_pct=0.9):
    """Evaluation preprocessing of one image: bicubic resize of the short side, centre crop.

    The short side becomes `floor(image_size / crop_pct)`, as timm evaluates
    the MobileViT checkpoints (`keras_mobilevit.imagenet.load_image` does the
    same with PIL). Deterministic; returns `float32` in `[0, 255]`.
    """
    import tensorflow as tf

    image = _decode(image)
    resize = math.floor(image_size / crop_pct)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = resize / tf.reduce_min(shape)
    new_shape = tf.maximum(tf.cast(tf.math.floor(shape * scale), tf.int32), image_size)
    image = tf.image.resize(image, new_shape, method="bicubic", antialias=True)
    top = (new_shape[0] - image_size) // 2
    left = (new_shape[1] - image_size) // 2
    image = tf.image.crop_to_bounding_box(image, top, left, image_size, image_size)
    return tf.clip_by_value(image, 0.0, 255.0)


def eval_pipeline(examples, num_classes, image_size, batch_size, crop_pct=0.9):
    """The validation and test `tf.data` pipeline: `eval_transform`, one-hot, batch; in order."""
    import tensorflow as tf

    def prepare(image, label):
        return eval_transform(image, image_size, crop_pct), tf.one_hot(label, num_classes)

    ds = examples.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _shard_by_data(ds, distribute):
    """Multi-worker input: every worker reads everything and keeps its share of batches.

    (tf.data's default, sharding by file, fails when a dataset has fewer
    files than there are workers.)
    """
    if distribute != "multi_worker" or keras.backend.backend() != "tensorflow":
        return ds
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


# -- model --------------------------------------------------------------------------------


def build_classifier(model, weights, num_classes, image_size):
    """`model`'s classifier for `num_classes`, its backbone initialised from `weights`.

    The classifier is the builder's own (`include_top=True`), so the trained
    model has the builder's layers and loads back with
    `keras_mobilevit.<model>(weights=..., classes=num_classes)`. Pretrained
    weights are loaded into a model without top and copied layer by layer.
    """
    import keras_mobilevit

    builder = getattr(keras_mobilevit, model)
    shape = (image_size, image_size, 3)
    classifier = builder(weights=None, include_top=True, classes=num_classes, input_shape=shape)
    if weights is not None:
        backbone = builder(weights=weights, include_top=False, input_shape=shape)
        for layer in backbone.layers:
            if layer.weights:
                classifier.get_layer(layer.name).set_weights(layer.get_weights())
    return classifier


def _is_head(layer):
    return layer.name.startswith("head_") or layer.name == "predictions"


def _compile(model, learning_rate, total_steps, label_smoothing, num_classes):
    warmup = int(WARMUP_FRACTION * total_steps)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else learning_rate,
        decay_steps=max(1, total_steps - warmup),
        warmup_target=learning_rate if warmup else None,
        warmup_steps=warmup,
    )
    optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=WEIGHT_DECAY)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
    if num_classes > 5:
        metrics.append(keras.metrics.TopKCategoricalAccuracy(k=5, name="top5_accuracy"))
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
        metrics=metrics,
    )


# -- distribution -------------------------------------------------------------------------


def _distribution(distribute):
    """`(strategy or distribution or None, is_chief)` for `distribute`."""
    if distribute is None:
        return None, True
    backend = keras.backend.backend()
    if _is_keras_distribution(distribute):
        return distribute, _jax_process_index() == 0
    if not isinstance(distribute, str):
        import tensorflow as tf

        if not isinstance(distribute, tf.distribute.Strategy):
            raise ValueError(
                f"distribute must be None, 'mirrored', 'multi_worker', a tf.distribute.Strategy "
                f"or a keras.distribution.Distribution, got {type(distribute).__name__}."
            )
        if backend != "tensorflow":
            raise ValueError(
                f"A tf.distribute strategy needs the TensorFlow backend (this is {backend}): "
                "set KERAS_BACKEND=tensorflow, or pass a keras.distribution.Distribution on JAX."
            )
        return distribute, _tf_is_chief(distribute)
    if backend == "tensorflow":
        import tensorflow as tf

        if distribute == "mirrored":
            return tf.distribute.MirroredStrategy(), True
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "distribute='multi_worker' reads the cluster from the TF_CONFIG environment "
                "variable, which is not set. See docs/training.md for an example."
            )
        try:
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as e:
            raise RuntimeError(
                f"{e}: TensorFlow had already run something in this process before finetune "
                "created its MultiWorkerMirroredStrategy. Create the strategy first thing "
                "(tf.distribute.MultiWorkerMirroredStrategy()) and pass it as distribute=, "
                "or use the `keras-mobilevit train --distribute multi_worker` command."
            ) from e
        return strategy, _tf_is_chief(strategy)
    if backend == "jax":
        if distribute == "multi_worker":
            keras.distribution.initialize()
        devices = keras.distribution.list_devices()
        return keras.distribution.DataParallel(devices=devices), _jax_process_index() == 0
    raise ValueError(
        f"distribute={distribute!r} is supported on the TensorFlow (tf.distribute) and JAX "
        f"(keras.distribution) backends; this is {backend}. Set KERAS_BACKEND."
    )


def _replicas(distribution):
    """Over how many devices each batch is split."""
    if distribution is None:
        return 1
    if hasattr(distribution, "num_replicas_in_sync"):  # tf.distribute
        return distribution.num_replicas_in_sync
    mesh = distribution.device_mesh  # keras.distribution: the batch is split over the mesh
    return int(np.prod(mesh.shape)) if _is_keras_data_parallel(distribution) else 1


def _is_keras_data_parallel(distribution):
    return isinstance(distribution, keras.distribution.DataParallel)


def _is_keras_distribution(value):
    # keras.distribution exports its distributions but not their base class.
    return isinstance(value, (keras.distribution.DataParallel, keras.distribution.ModelParallel))


def _tf_is_chief(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if task_type is None:
        return True
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and resolver.task_id == 0 and not has_chief


def _worker_id(distribution):
    resolver = getattr(distribution, "cluster_resolver", None)
    if getattr(resolver, "task_type", None) is not None:
        return f"{resolver.task_type}-{resolver.task_id}"
    if _is_keras_distribution(distribution):
        return f"process-{_jax_process_index()}"
    return None


def _jax_process_index():
    if keras.backend.backend() != "jax":
        return 0
    import jax

    return jax.process_index()


def _scope(distribution):
    if distribution is None:
        return contextlib.nullcontext()
    return distribution.scope()


# -- training -----------------------------------------------------------------------------


class _HistoryWriter(keras.callbacks.Callback):
    """Keeps the run's per-epoch metrics in `history.json`, rewritten after every epoch.

    Across an interruption: the epochs before it are kept, and those the
    resumed run repeats are replaced.
    """

    def __init__(self, path, history):
        super().__init__()
        self.path = path
        self.history = history

    def on_epoch_begin(self, epoch, logs=None):
        for key in self.history:
            del self.history[key][epoch:]

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, [])
            self.history[key].extend([None] * (epoch - len(self.history[key])))
            self.history[key].append(float(value))
        _write_json(self.path, self.history)


class _AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """Keras' `ModelCheckpoint`, writing to a temporary file that then replaces the checkpoint.

    An interruption while saving leaves the previous checkpoint whole.
    """

    def __init__(self, filepath, **kwargs):
        self.final_path = filepath
        folder, name = os.path.split(filepath)
        super().__init__(os.path.join(folder, f".partial-{name}"), **kwargs)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if os.path.exists(self.filepath):
            os.replace(self.filepath, self.final_path)


def _fit(
    model, train_ds, val_ds, run_dir, output_dir, distribution, previous, *, epochs, steps,
    repeat, learning_rate, label_smoothing, freeze_backbone_epochs, patience, extra_callbacks,
    is_chief, backup_root, worker_id,
):  # fmt: skip
    history = previous
    best = min((v for v in history.get("val_loss", []) if v is not None), default=None)
    checkpoint_path = os.path.join(run_dir, "checkpoints", "best.keras")
    writer = _HistoryWriter(os.path.join(run_dir, "history.json"), history)
    phases = []
    if freeze_backbone_epochs:
        phases.append(("head", 0, freeze_backbone_epochs, learning_rate * HEAD_LR_MULTIPLIER))
    if freeze_backbone_epochs < epochs:
        phases.append(("full", freeze_backbone_epochs, epochs, learning_rate))
    num_classes = model.output_shape[-1]
    result = keras.callbacks.History()
    try:
        for phase, first, last, rate in phases:
            for layer in model.layers:
                layer.trainable = phase == "full" or _is_head(layer)
            backup_dir = os.path.join(backup_root, phase)
            if worker_id is not None:
                backup_dir = os.path.join(backup_dir, worker_id)
            with _scope(distribution):
                _compile(model, rate, steps * (last - first), label_smoothing, num_classes)
            checkpoint = _AtomicModelCheckpoint(
                checkpoint_path, monitor="val_loss", save_best_only=True,
                initial_value_threshold=best,
            )  # fmt: skip
            stopper = keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=patience, restore_best_weights=True
            )
            callbacks = [
                keras.callbacks.BackupAndRestore(backup_dir, delete_checkpoint=False),
                writer,
                checkpoint,
                stopper,
                *extra_callbacks,
            ]
            with _scope(distribution), _explain_multi_worker_failure(distribution):
                result = model.fit(
                    train_ds,
                    validation_data=val_ds,
                    epochs=last,
                    initial_epoch=first,
                    # Only for a repeating dataset: Keras carries on a finite dataset's
                    # iterator from one epoch to the next when steps_per_epoch is given.
                    steps_per_epoch=steps if repeat else None,
                    callbacks=callbacks,
                    shuffle=False,  # the pipeline shuffles
                )
            if checkpoint.best is not None:
                best = checkpoint.best
    except KeyboardInterrupt:
        # A checkpoint interrupted while being written is a partial file, never the checkpoint.
        partial = os.path.join(os.path.dirname(checkpoint_path), ".partial-best.keras")
        with contextlib.suppress(FileNotFoundError):
            os.remove(partial)
        if is_chief:
            _report_interruption(output_dir, checkpoint_path, history)
        raise
    finally:
        for layer in model.layers:
            layer.trainable = True
    if os.path.exists(checkpoint_path):
        # The best epoch of the whole run, phases and resumed runs included (early
        # stopping restores the best of the last phase only).
        with _scope(distribution):
            weights_lib.load(model, checkpoint_path, include_top=True)
    merged = keras.callbacks.History()
    merged.set_model(model)
    merged.history = {key: list(values) for key, values in history.items()}
    merged.epoch = list(range(len(history.get("loss", []))))
    merged.params = result.params
    return merged


@contextlib.contextmanager
def _explain_multi_worker_failure(distribution):
    """Names the Keras 3 limitation behind a multi-worker `fit` failure."""
    try:
        yield
    except ValueError as e:
        resolver = getattr(distribution, "cluster_resolver", None)
        cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
        workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
        if workers > 1 and "PerReplica" in str(e):
            raise ValueError(
                "Keras 3 cannot fit with tf.distribute.MultiWorkerMirroredStrategy over "
                f"{workers} workers: its TensorFlow trainer averages the first input batch "
                "over the workers to build the model symbolically, and that fails "
                "(https://github.com/keras-team/keras/issues/20585). Train on one machine "
                "(distribute='mirrored'), or use the JAX backend, where "
                "distribute='multi_worker' uses keras.distribution."
            ) from e
        raise


def _report_interruption(output_dir, checkpoint_path, history):
    done = len(history.get("loss", []))
    lines = [f"\nTraining interrupted after {done} complete epoch(s)."]
    if os.path.exists(checkpoint_path):
        val = [v for v in history.get("val_loss", []) if v is not None]
        best = f" (val_loss {min(val):.4f})" if val else ""
        lines.append(
            f"The best model so far{best} is in {checkpoint_path}: load it with "
            f"`import keras_mobilevit; keras.saving.load_model({checkpoint_path!r})`."
        )
    else:
        lines.append("No epoch was completed, so there is no checkpoint yet.")
    lines.append(
        f"To resume from epoch {done + 1}, run the same command again with the same output "
        f"directory ({output_dir!r}); the state of the last epoch is in "
        f"{os.path.join(output_dir, 'backup')}."
    )
    print("\n".join(lines), file=sys.stderr, flush=True)


def _prepare_run_dir(run_dir, settings):
    """Creates `run_dir`; returns the history of an interrupted run to resume there, or {}."""
    os.makedirs(run_dir, exist_ok=True)
    run_file = os.path.join(run_dir, "run.json")
    backup = os.path.join(run_dir, "backup")
    previous = {}
    if os.path.isdir(backup) and os.listdir(backup):
        earlier = {}
        if os.path.exists(run_file):
            with open(run_file) as f:
                earlier = json.load(f)
        keys = ("dataset", "model", "weights", "image_size", "batch_size", "learning_rate",
                "classes", "epochs", "freeze_backbone_epochs", "mixed_precision",
                "steps_per_epoch", "max_examples")  # fmt: skip
        changed = [k for k in keys if earlier.get(k) != settings.get(k)]
        if changed:
            raise ValueError(
                f"{run_dir!r} holds an interrupted run with other settings "
                f"({', '.join(f'{k}={earlier.get(k)!r}' for k in changed)}): resume it with "
                "the same settings, or choose another output directory (or delete "
                f"{backup!r} to start over)."
            )
        history_file = os.path.join(run_dir, "history.json")
        if os.path.exists(history_file):
            with open(history_file) as f:
                previous = json.load(f)
        print(f"Resuming the interrupted run in {run_dir}.", file=sys.stderr, flush=True)
    else:
        # A fresh run: what an earlier run left here must not pass for this one's.
        shutil.rmtree(os.path.join(run_dir, "checkpoints"), ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(run_dir, "history.json"))
    _write_json(run_file, settings)
    return previous


def _write_json(path, value):
    partial = f"{path}.partial"
    with open(partial, "w") as f:
        json.dump(value, f, indent=2)
    os.replace(partial, path)


# -- evaluation ---------------------------------------------------------------------------


def evaluate(model, test_ds, test_examples, class_names, label_smoothing=0.0, padding=0):
    """Test metrics of `model`: loss, top-1 and top-5 accuracy, macro F1, confusion matrix.

    Args:
        model: the classifier (softmax outputs).
        test_ds: the batched evaluation pipeline (images, one-hot labels).
        test_examples: the examples `test_ds` was made from, in the same
            order; the labels are read from them, without decoding the images
            a second time.
        class_names: the names of the classes.
        label_smoothing: as in training, for a loss comparable to `val_loss`.
        padding: examples at the end of `test_ds` that are not in
            `test_examples` (to make the last batch split evenly over
            devices); their predictions are dropped.

    Returns:
        A dict, written to `metrics.json` by `finetune`.
    """
    import tensorflow as tf

    probabilities = np.asarray(
        model.predict(test_ds.map(lambda x, y: x), verbose=0), dtype=np.float64
    )
    label_batches = test_examples.map(lambda x, y: y).batch(1024).as_numpy_iterator()
    labels = np.concatenate([np.atleast_1d(y) for y in label_batches]).astype(np.int64)
    classes = len(class_names)
    if probabilities.shape != (len(labels) + padding, classes):
        raise RuntimeError(
            f"{probabilities.shape[0]} predictions for {len(labels)} test labels and {padding} "
            "padding examples: the test examples were not read the same way twice."
        )
    probabilities = probabilities[: len(labels)]
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
    test_loss = float(loss(tf.one_hot(labels, classes), probabilities.astype(np.float32)))
    predictions = probabilities.argmax(axis=1)
    top5 = np.argsort(-probabilities, axis=1)[:, :5]
    matrix = confusion_matrix(labels, predictions, classes)
    return {
        "test_loss": test_loss,
        "test_accuracy": float(np.mean(predictions == labels)),
        "test_top5_accuracy": float(np.mean((top5 == labels[:, None]).any(axis=1)))
        if classes > 5
        else None,
        "test_macro_f1": macro_f1(matrix),
        "test_examples": len(labels),
        "class_names": list(class_names),
        "per_class_f1": [float(f) for f in per_class_f1(matrix)],
        "confusion_matrix": matrix.tolist(),
    }


def confusion_matrix(labels, predictions, num_classes):
    """`matrix[i, j]`: the number of examples of class `i` predicted as class `j`."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
    return matrix


def per_class_f1(matrix):
    """F1 of each class from a confusion matrix; 0 for a class neither present nor predicted."""
    matrix = np.asarray(matrix, dtype=np.float64)
    true_positives = np.diag(matrix)
    denominator = matrix.sum(axis=0) + matrix.sum(axis=1)  # predicted + actual
    return np.divide(
        2 * true_positives, denominator, out=np.zeros_like(true_positives), where=denominator > 0
    )


def macro_f1(matrix):
    """Mean F1 over the classes that occur in the labels or the predictions.

    The same as scikit-learn's `f1_score(average="macro")` without `labels=`,
    which averages over the classes present in either.
    """
    matrix = np.asarray(matrix)
    present = (matrix.sum(axis=0) + matrix.sum(axis=1)) > 0
    if not present.any():
        return 0.0
    return float(per_class_f1(matrix)[present].mean())


def _write_artefacts(run_dir, model, history, metrics, data):
    model.save(os.path.join(run_dir, "model.keras"))
    _write_json(os.path.join(run_dir, "history.json"), history.history)
    _write_json(os.path.join(run_dir, "metrics.json"), metrics)
    plots.plot_history(history, os.path.join(run_dir, "history.png"))
    plots.plot_confusion_matrix(
        metrics["confusion_matrix"], data.class_names, os.path.join(run_dir, "confusion_matrix.png")
    )


# -- publishing ---------------------------------------------------------------------------


class HubUploadError(OSError):
    """The Hugging Face Hub refused an upload, or could not be reached."""


def push_to_hub(model, repo_id):
    """Saves a model to a Hugging Face Hub repository with `model.save("hf://owner/repo")`.

    The repository is created if needed (public, unless your account makes
    new repositories private) and receives Keras' files: `config.json`,
    `model.weights.h5`, `metadata.json` and a model card. It loads back with
    `keras.saving.load_model("hf://owner/repo")` (after `import
    keras_mobilevit`) or, for a keras_mobilevit classifier,
    `keras_mobilevit.<model>(weights="hf://owner/repo", classes=n)`.
    Authentication is huggingface_hub's: `hf auth login`, or `HF_TOKEN`.

    Args:
        model: a `keras.Model`, or the path of a `.keras` file.
        repo_id: `"owner/name"` (an `"hf://"` prefix is accepted).

    Returns:
        The repository's URL.
    """
    repo_id = str(repo_id).removeprefix("hf://").strip("/")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"A Hub repository is 'owner/name', got {repo_id!r}.")
    if isinstance(model, (str, os.PathLike)):
        import keras_mobilevit  # noqa: F401  (registers the layers for loading)

        model = keras.saving.load_model(model)
    from huggingface_hub import constants, errors

    try:
        model.save(f"hf://{repo_id}")
    except errors.LocalTokenNotFoundError as e:
        raise HubUploadError(f"No Hugging Face token: {e}") from e
    except errors.HfHubHTTPError as e:
        status = getattr(e.response, "status_code", None)
        if status in (401, 403):
            raise HubUploadError(
                f"The Hugging Face Hub refused to write to {repo_id!r} (HTTP {status}): log in "
                "with `hf auth login`, or set HF_TOKEN to a token with write access to "
                f"{repo_id.split('/')[0]!r}."
            ) from e
        raise HubUploadError(f"Uploading to {repo_id!r} failed: {e}") from e
    except Exception as e:
        # Connection errors of huggingface_hub's HTTP client are not OSErrors.
        if isinstance(e, OSError) or type(e).__module__.split(".")[0].startswith("http"):
            raise HubUploadError(
                f"Could not reach the Hugging Face Hub ({constants.ENDPOINT}) to upload "
                f"{repo_id!r}: {e}"
            ) from e
        raise
    return f"{constants.ENDPOINT}/{repo_id}"
