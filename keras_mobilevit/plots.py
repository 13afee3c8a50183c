"""Plots of a training run: the loss and accuracy curves, and a confusion matrix.

Figures are built with matplotlib's object-oriented API (`matplotlib.figure.Figure`),
not `pyplot`: nothing is drawn on screen, no global state is touched, and PNGs are
rendered with the Agg backend, so this works on a headless server as well as in a
notebook (where a returned figure displays itself). Needs matplotlib
(`pip install "keras-mobilevit[train]"`).
"""

import numpy as np

# (history key of the training value, label) for each panel; the validation
# value is the same key with a "val_" prefix.
_PANELS = (("loss", "Loss"), ("accuracy", "Top-1 accuracy"))


def _figure(**kwargs):
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(
            'Plotting needs matplotlib: pip install matplotlib (or "keras-mobilevit[train]").'
        ) from e
    return Figure(**kwargs)


def _history_dict(history):
    """`{metric: [value per epoch]}` from a `keras.callbacks.History` or a dict."""
    values = getattr(history, "history", history)
    if not isinstance(values, dict):
        raise TypeError(
            "`history` must be a keras.callbacks.History (what model.fit returns) or a dict "
            f"of metric name to per-epoch values, got {type(history).__name__}."
        )
    # An epoch without a value (None in history.json) is a gap in the curve.
    return {
        key: [float("nan") if v is None else float(v) for v in series]
        for key, series in values.items()
    }


def plot_history(history, path=None):
    """Plots the loss and top-1 accuracy per epoch, training and validation.

    Args:
        history: what `model.fit` (or `keras_mobilevit.training.finetune`)
            returns, a `keras.callbacks.History`, or its `.history` dict (for
            instance read back from a run's `history.json`). Panels are drawn
            for `"loss"` and `"accuracy"` where present, each with its
            `"val_"` counterpart where present.
        path: if given, the figure is also saved there (PNG, or any format
            matplotlib knows from the extension).

    Returns:
        The `matplotlib.figure.Figure`.
    """
    values = _history_dict(history)
    panels = [(key, label) for key, label in _PANELS if key in values or f"val_{key}" in values]
    if not panels:
        raise ValueError(
            f"Nothing to plot: the history has no 'loss' or 'accuracy' entries (it has "
            f"{sorted(values) or 'none'})."
        )
    figure = _figure(figsize=(5.5 * len(panels), 4), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for axis, (key, label) in zip(axes, panels, strict=True):
        for name, style in ((key, "-o"), (f"val_{key}", "-s")):
            if name in values and values[name]:
                epochs = np.arange(1, len(values[name]) + 1)
                kind = "validation" if name.startswith("val_") else "training"
                axis.plot(epochs, values[name], style, markersize=3, label=kind)
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.set_title(label)
        axis.grid(alpha=0.3)
        axis.legend()
        axis.xaxis.get_major_locator().set_params(integer=True)
        if key == "accuracy":
            axis.set_ylim(0, 1)
    if path is not None:
        figure.savefig(path, dpi=100)
    return figure


def plot_confusion_matrix(matrix, class_names=None, path=None, normalize=True):
    """Draws a confusion matrix as a heat map: true classes down, predictions across.

    Args:
        matrix: `(classes, classes)` counts, `matrix[i, j]` the number of
            examples of class `i` predicted as class `j`.
        class_names: optional names for the ticks; with more than 30 classes
            ticks are left out (the picture is then read for its diagonal and
            its off-diagonal clusters).
        path: if given, the figure is also saved there.
        normalize: show each row as fractions of that class's examples (rows
            without examples stay 0), so that classes of different sizes
            compare.

    Returns:
        The `matplotlib.figure.Figure`.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"A confusion matrix is square, got shape {matrix.shape}.")
    classes = matrix.shape[0]
    if class_names is not None and len(class_names) != classes:
        raise ValueError(f"{len(class_names)} class names for a {classes}-class matrix.")
    if normalize:
        totals = matrix.sum(axis=1, keepdims=True)
        matrix = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    side = min(max(4.0, 0.12 * classes + 3), 16)
    figure = _figure(figsize=(side + 1, side), layout="constrained")
    axis = figure.subplots()
    image = axis.imshow(matrix, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    figure.colorbar(image, ax=axis, shrink=0.8, label="fraction of the class" if normalize else "")
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    axis.set_title("Confusion matrix" + (" (rows normalised)" if normalize else ""))
    if class_names is not None and classes <= 30:
        axis.set_xticks(range(classes), class_names, rotation=90, fontsize=8)
        axis.set_yticks(range(classes), class_names, fontsize=8)
    if path is not None:
        figure.savefig(path, dpi=100)
    return figure
