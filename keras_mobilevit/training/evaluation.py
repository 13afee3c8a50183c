"""Evaluation of the trained classifier on the test split: loss, top-1 and top-5 accuracy,
the confusion matrix and F1, per class and macro-averaged.
"""

import keras
import numpy as np

from keras_mobilevit.training.data import eval_pipeline
from keras_mobilevit.training.distribution import scope


def evaluate_test_split(
    model, data, image_size, batch_size, *, crop_pct, label_smoothing, distribution, replicas
):
    """`evaluate` on every test example of `data`, however many devices predict."""
    # Every test image is predicted: where the last batch would not split evenly
    # over the replicas (which Keras cannot predict on JAX), it is padded with
    # copies of the first image, whose predictions are then dropped.
    padding = -data.counts["test"] % replicas
    test_examples = data.examples["test"]
    test_ds = eval_pipeline(
        test_examples.concatenate(test_examples.take(1).repeat(padding)),
        data.num_classes, image_size, batch_size, crop_pct=crop_pct,
    )  # fmt: skip
    with scope(distribution):
        return evaluate(model, test_ds, test_examples, data.class_names, label_smoothing, padding)


def best_epoch(history):
    """The epoch (from 1) of the lowest validation loss, or None if no epoch was validated."""
    val_losses = [v if v is not None else np.inf for v in history.history.get("val_loss", [])]
    return int(np.argmin(val_losses)) + 1 if val_losses else None


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
