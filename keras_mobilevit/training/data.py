"""The data of the recipe: tensorflow-datasets and class-folder datasets split three ways, and
the `tf.data` pipelines that augment the training images and prepare the evaluation ones.
TensorFlow and tensorflow-datasets are imported only inside the functions that need them.
"""

import concurrent.futures
import difflib
import math
import os
import sys

import keras
import numpy as np
from PIL import Image

from keras_mobilevit.builder import MIN_SIZE

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

# What `tf.io.decode_image` decodes, in Pillow's names (MPO: a camera's JPEG).
_DECODABLE_FORMATS = ("JPEG", "MPO", "PNG", "GIF", "BMP", "WEBP")
# Files each thread checks at a time: enough to keep the pool's overhead small.
_CHECK_CHUNK = 256
# Unreadable files named in a refusal; the rest are counted.
_NAMED_IN_ERRORS = 20


class _Data:
    """A dataset split three ways: `(encoded image, label)` examples and their counts."""

    def __init__(self, name, class_names, examples, counts, splits, skipped=None):
        self.name = name  # for file names and messages
        self.class_names = list(class_names)
        self.examples = examples  # {"train" | "validation" | "test": tf.data.Dataset}
        self.counts = counts  # {same keys: number of examples}
        self.splits = splits  # {same keys: where the examples come from, for the record}
        self.skipped = skipped or {}  # {path: why}: files of a directory that are not images

    @property
    def num_classes(self):
        return len(self.class_names)


def load_data(dataset, seed=0, max_examples=None, data_dir=None, strict_data=False):
    """The training, validation and test examples of `dataset`, as `(encoded image, label)`.

    `dataset` is a tensorflow-datasets name or a directory of class folders;
    see `finetune` for how the three splits are chosen. Images stay encoded
    (JPEG, PNG...) until the pipeline decodes them, so that shuffling holds
    bytes, not pixels. Every file of a directory is decoded once first, so
    that a file that is not an image, or a truncated one, is found now rather
    than mid-epoch: it is skipped and named on stderr, or with `strict_data`
    the dataset is refused with the list.
    """
    if not isinstance(dataset, (str, os.PathLike)):
        raise TypeError(f"dataset must be a name or a path, got {type(dataset).__name__}.")
    dataset = os.fspath(dataset)
    if os.path.isdir(dataset):
        data = _directory_data(dataset, strict_data)
    else:
        data = _tfds_data(dataset, seed, os.fspath(data_dir) if data_dir else None)
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
    try:
        builder.download_and_prepare()
    except ImportError:
        raise  # an install step missing, not the network
    except Exception as e:
        # Raised from deep inside tensorflow-datasets' downloader or a dataset's own code, with
        # no word of which dataset, where, or what to do instead.
        raise OSError(
            f"tensorflow-datasets could not download and prepare {name!r} in "
            f"{builder.data_dir}: {type(e).__name__}: {str(e).rstrip('.')}. Check the network "
            "connection (and any proxy), or prepare the dataset where there is one and pass its "
            "data directory (data_dir=, --data-dir), or train on a directory of class folders."
        ) from e
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


def _directory_data(directory, strict_data=False):
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
    paths, labels, skipped = {}, {}, {}
    class_names = None
    for role, folder in sources.items():
        if folder is None:
            continue
        found, found_labels, names = _index_directory(folder, class_names)
        unreadable = _unreadable_images(folder, found, strict_data)
        kept = [i for i, path in enumerate(found) if path not in unreadable]
        paths[role] = [found[i] for i in kept]
        labels[role] = [found_labels[i] for i in kept]
        skipped.update(unreadable)
        if class_names is None:
            _refuse_empty_classes(folder, names, labels[role], found_labels)
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
    return _Data(name, class_names, examples, counts, splits, skipped)


def _refuse_empty_classes(folder, class_names, labels, found_labels):
    """A class folder without images would be a class the model learns never to predict.

    `labels` are those of the readable images, `found_labels` of every file found.
    """
    present, found = set(labels), set(found_labels)
    empty = [name for i, name in enumerate(class_names) if i not in present]
    if not empty:
        return
    all_skipped = [name for i, name in enumerate(class_names) if i in found - present]
    because = (
        f" ({', '.join(repr(name) for name in all_skipped)}: only unreadable files, listed above)"
        if all_skipped
        else ""
    )
    raise ValueError(
        f"The class folder(s) {', '.join(repr(name) for name in empty)} in {folder!r} hold no "
        f"images{because}: each class needs images (.jpg .jpeg .png .bmp .gif) in its folder. "
        "Add some, or remove the folder(s) if they are not classes."
    )


def _unreadable_images(folder, paths, strict_data):
    """`{path: why}` for the files of `paths` that `tf.io.decode_image` would fail on.

    They are listed on stderr, or with `strict_data` refused. Each file is
    decoded with Pillow, in a thread pool (Pillow releases the GIL while
    decoding): opening alone, or `verify()`, does not see a truncated JPEG.
    JPEGs decode at 1/8 scale (Pillow's draft mode), which still reads every
    byte, for 0.9 ms per 500x375 image instead of 1.4 ms; PNGs need only
    `verify()`, whose chunk checksums see truncation and corruption.
    """
    chunks = [paths[i : i + _CHECK_CHUNK] for i in range(0, len(paths), _CHECK_CHUNK)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        reasons = [why for chunk in pool.map(_check_images, chunks) for why in chunk]
    unreadable = {path: why for path, why in zip(paths, reasons, strict=True) if why}
    if unreadable and strict_data:
        raise ValueError(
            f"{len(unreadable)} file(s) of {folder!r} are not images TensorFlow decodes: "
            "remove or replace them, or leave strict_data (--strict-data) off to skip them.\n"
            + _listing(unreadable, limit=_NAMED_IN_ERRORS)
        )
    if unreadable:
        print(
            f"Skipping {len(unreadable)} file(s) of {folder!r} that are not images TensorFlow "
            "decodes:\n" + _listing(unreadable),
            file=sys.stderr,
            flush=True,
        )
    return unreadable


def _check_images(paths):
    return [_why_unreadable(path) for path in paths]


def _why_unreadable(path):
    """Why `path` is not an image TensorFlow decodes, or `None` if it is one."""
    try:
        with Image.open(path) as image:
            if image.format not in _DECODABLE_FORMATS:
                return f"a {image.format} image, which TensorFlow does not decode"
            if image.format == "PNG":
                image.verify()
            else:
                image.draft("RGB", (1, 1))
                image.load()
    except Image.DecompressionBombError:
        return None  # large, but TensorFlow decodes it
    except Image.UnidentifiedImageError:
        return "not an image"
    except Exception as e:  # Pillow's decoders raise many kinds of error on bad data
        return f"truncated or corrupt ({e})"
    return None


def _listing(unreadable, limit=None):
    """The unreadable files and why, one a line, sorted; at most `limit` of them."""
    listed = sorted(unreadable.items())
    lines = [f"  {path}: {why}" for path, why in listed[:limit]]
    if limit is not None and len(listed) > limit:
        lines.append(f"  ... and {len(listed) - limit} more")
    return "\n".join(lines)


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
