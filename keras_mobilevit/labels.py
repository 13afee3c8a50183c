"""Class names of the label sets the pretrained classifiers predict, and decoding predictions.

The names ship with the package (`data/`), so decoding downloads nothing:
ImageNet's class index in the format of Keras' own, and Oxford Flowers-102's
102 names in tensorflow-datasets' class order (that of the `oxford_flowers102`
weights). Which set a batch of predictions indexes is never guessed from its
width: ImageNet's 1000 classes unless `labels=` says otherwise.
"""

import functools
import json
import pathlib

import numpy as np

from keras_mobilevit import pretrained

_DATA = pathlib.Path(__file__).parent / "data"
IMAGENET = "imagenet"
FLOWERS102 = "oxford_flowers102"
# Label set -> its file. ImageNet's is `{"index": [wnid, name]}`, the others a list of names.
_FILES = {IMAGENET: "imagenet_class_index.json", FLOWERS102: "oxford_flowers102_labels.json"}
LABEL_SETS = tuple(_FILES)


@functools.cache
def _entries(label_set):
    """`[(class_id, name), ...]` of a shipped label set, in class order."""
    with open(_DATA / _FILES[label_set], encoding="utf-8") as f:
        content = json.load(f)
    if label_set == IMAGENET:
        return tuple(tuple(content[str(i)]) for i in range(len(content)))
    return tuple(enumerate(content))


def class_names(labels):
    """The class names of a label set or weight-set name, in class order.

    Args:
        labels: a label set (`"imagenet"`, `"oxford_flowers102"`), the name of
            a weight set that has one (`"flowers102"`), or a sequence of names
            (returned as a list).

    Raises:
        ValueError: for a name that is neither.
    """
    if not isinstance(labels, str):
        return list(labels)
    return [name for _, name in _entries(_label_set(labels))]


def _label_set(name):
    if name in _FILES:
        return name
    sets = {row.labels for row in pretrained.WEIGHT_SETS if row.name == name}
    if len(sets) == 1 and next(iter(sets)) in _FILES:
        return next(iter(sets))
    raise ValueError(
        f"Unknown labels={name!r}: pass a label set ({', '.join(map(repr, LABEL_SETS))}), the "
        "name of weights that have one ('imagenet', 'flowers102'), or a list of class names."
    )


def _entries_for(labels, columns, shape):
    """`[(class_id, name), ...]` for predictions of `columns` classes, as `labels` says."""
    if labels is None:
        if columns != 1000:
            raise ValueError(
                f"`decode_predictions` received predictions of shape {shape}: {columns} classes, "
                "not ImageNet's 1000, and it does not guess which classes they are. Pass "
                'labels="oxford_flowers102" for the flowers102 weights (102 classes), or '
                f"labels=[...] with the {columns} class names of your classifier, in order."
            )
        return _entries(IMAGENET)
    if isinstance(labels, str):
        entries = _entries(_label_set(labels))
        what = f"labels={labels!r} has"
    else:
        names = list(labels)
        if not all(isinstance(name, str) for name in names):
            raise ValueError("`labels` must be a label set's name or a sequence of class names.")
        entries = tuple(enumerate(names))
        what = "`labels` has"
    if len(entries) != columns:
        raise ValueError(
            f"`decode_predictions` received predictions of shape {shape}, {columns} classes, "
            f"but {what} {len(entries)}: pass the labels of the model that made them."
        )
    return entries


def decode_predictions(preds, top=5, labels=None):
    """Decodes the predictions of a classifier into class names.

    Args:
        preds: array of shape `(batch, classes)`, probabilities or logits.
        top: how many top guesses to return per image.
        labels: which classes the columns are: `None` for ImageNet's 1000
            (any other width is refused, not guessed), a label set
            (`"imagenet"`, `"oxford_flowers102"`) or the name of weights that
            have one (`"flowers102"`), or a sequence of class names.

    Returns:
        A list (one entry per image) of lists of `(class_id, class_name, score)`
        tuples, best first: `class_id` is the WordNet id for ImageNet
        (`("n01440764", "tench", 0.91)`), the class index otherwise
        (`(76, "morning glory", 0.88)`).

    Raises:
        ValueError: if `preds` is not a batch of finite scores, one per class
            of the labels.
    """
    preds = np.asarray(preds)
    if preds.ndim != 2:
        raise ValueError(
            "`decode_predictions` expects a batch of predictions, an array of shape "
            f"(samples, classes), such as (samples, 1000) for ImageNet. Received shape "
            f"{preds.shape}."
        )
    if not isinstance(top, int) or top < 1:
        raise ValueError(f"`top` must be a positive integer, got {top!r}.")
    entries = _entries_for(labels, preds.shape[1], preds.shape)
    finite = np.isfinite(preds).all(axis=1)
    if not finite.all():
        samples = ", ".join(str(i) for i in np.flatnonzero(~finite))
        raise ValueError(
            f"`decode_predictions` received non-finite scores (NaN or infinity) for sample(s) "
            f"{samples} of {len(preds)}, which rank no classes. The model's input or its weights "
            "hold non-finite values: check that the images are finite pixels in [0, 255]."
        )
    results = []
    for row in preds:
        best = np.argsort(-row, kind="stable")[:top]
        results.append([(*entries[i], float(row[i])) for i in best])
    return results
