"""The training loop: the head-only and full phases of `model.fit`, with callbacks that keep
the history and the best checkpoint on disk as training goes, so that an interrupted run
leaves a usable model and resumes where it stopped.
"""

import contextlib
import os

import keras

from keras_mobilevit import loading
from keras_mobilevit.training.classifier import HEAD_LR_MULTIPLIER, compile_classifier, is_head
from keras_mobilevit.training.distribution import explain_multi_worker_failure, scope, worker_id
from keras_mobilevit.training.run_dir import report_interruption, write_json


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
        write_json(self.path, self.history)


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


def fit(
    model, train_ds, val_ds, run_dir, output_dir, distribution, previous, *, epochs, steps,
    repeat, learning_rate, label_smoothing, freeze_backbone_epochs, patience, extra_callbacks,
    is_chief,
):  # fmt: skip
    """Trains `model` in its phases; returns the `keras.callbacks.History` of the whole run.

    `previous` is the history of the interrupted run being resumed (`{}` for
    a fresh one) and is extended in place. The model ends with the weights of
    the best epoch of the run, as its checkpoint holds them.
    """
    history = previous
    backup_root = os.path.join(output_dir, "backup")
    worker = worker_id(distribution)
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
                layer.trainable = phase == "full" or is_head(layer)
            backup_dir = os.path.join(backup_root, phase)
            if worker is not None:
                backup_dir = os.path.join(backup_dir, worker)
            with scope(distribution):
                compile_classifier(
                    model, rate, steps * (last - first), label_smoothing, num_classes
                )
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
            with scope(distribution), explain_multi_worker_failure(distribution):
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
            report_interruption(output_dir, checkpoint_path, history)
        raise
    finally:
        for layer in model.layers:
            layer.trainable = True
    if os.path.exists(checkpoint_path):
        # The best epoch of the whole run, phases and resumed runs included (early
        # stopping restores the best of the last phase only).
        with scope(distribution):
            loading.load(model, checkpoint_path, include_top=True)
    merged = keras.callbacks.History()
    merged.set_model(model)
    merged.history = {key: list(values) for key, values in history.items()}
    merged.epoch = list(range(len(history.get("loss", []))))
    merged.params = result.params
    return merged
