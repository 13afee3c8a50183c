"""`keras_mobilevit.plots`: training curves and confusion matrices, drawn headless."""

import keras
import numpy as np
import pytest
from PIL import Image

from keras_mobilevit import plots

pytest.importorskip("matplotlib")

HISTORY = {
    "loss": [2.0, 1.5, 1.2],
    "val_loss": [2.1, 1.7, 1.6],
    "accuracy": [0.2, 0.5, 0.6],
    "val_accuracy": [0.1, 0.4, 0.5],
    "top5_accuracy": [0.5, 0.8, 0.9],
}


def line_data(axis):
    return {line.get_label(): list(line.get_ydata()) for line in axis.get_lines()}


def test_plot_history_draws_loss_and_accuracy_for_training_and_validation(tmp_path):
    path = tmp_path / "history.png"
    figure = plots.plot_history(HISTORY, path=path)
    loss, accuracy = figure.axes
    assert loss.get_title() == "Loss" and accuracy.get_title() == "Top-1 accuracy"
    assert line_data(loss) == {"training": HISTORY["loss"], "validation": HISTORY["val_loss"]}
    assert line_data(accuracy) == {
        "training": HISTORY["accuracy"],
        "validation": HISTORY["val_accuracy"],
    }
    assert list(loss.get_lines()[0].get_xdata()) == [1, 2, 3]  # epochs count from 1
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > image.size[1] > 100


def test_plot_history_takes_a_keras_history():
    history = keras.callbacks.History()
    history.history = {"loss": [1.0, 0.5]}  # no validation, no accuracy
    figure = plots.plot_history(history)
    (axis,) = figure.axes
    assert line_data(axis) == {"training": [1.0, 0.5]}


def test_plot_history_refuses_what_it_cannot_plot():
    with pytest.raises(ValueError, match="no 'loss' or 'accuracy'"):
        plots.plot_history({"top5_accuracy": [0.3]})
    with pytest.raises(TypeError, match="keras.callbacks.History"):
        plots.plot_history([1.0, 0.5])


def test_confusion_matrix_rows_are_normalised(tmp_path):
    matrix = np.array([[3, 1, 0], [0, 0, 0], [1, 1, 2]])
    figure = plots.plot_confusion_matrix(matrix, ["a", "b", "c"], path=tmp_path / "cm.png")
    image = figure.axes[0].get_images()[0].get_array()
    np.testing.assert_allclose(image, [[0.75, 0.25, 0], [0, 0, 0], [0.25, 0.25, 0.5]])
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == ["a", "b", "c"]
    assert (tmp_path / "cm.png").stat().st_size > 1000
    counts = plots.plot_confusion_matrix(matrix, normalize=False).axes[0].get_images()[0]
    np.testing.assert_array_equal(counts.get_array(), matrix)


def test_confusion_matrix_of_many_classes_has_no_tick_labels():
    figure = plots.plot_confusion_matrix(np.eye(102), [f"class {i}" for i in range(102)])
    assert figure.axes[0].get_xticklabels()[0].get_text() != "class 0"


def test_confusion_matrix_checks_its_input():
    with pytest.raises(ValueError, match="square"):
        plots.plot_confusion_matrix(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="2 class names for a 3-class matrix"):
        plots.plot_confusion_matrix(np.eye(3), ["a", "b"])
