"""The run's directory: created fresh or resumed after an interruption, the settings and
artefacts written there (atomically, for the JSON files), and what to tell the user when
training is interrupted.
"""

import contextlib
import json
import os
import shutil
import sys
import tempfile

from keras_mobilevit import plots


@contextlib.contextmanager
def run_directory(output_dir, is_chief):
    """Where this process writes: `output_dir` on the chief, elsewhere a temporary folder.

    In multi-worker training only the chief writes `output_dir`; the other
    workers write the same files to a folder that is removed afterwards.
    """
    run_dir = output_dir if is_chief else tempfile.mkdtemp(prefix="keras_mobilevit-worker-")
    try:
        yield run_dir
    finally:
        if not is_chief:
            shutil.rmtree(run_dir, ignore_errors=True)


def report_interruption(output_dir, checkpoint_path, history):
    """Says on stderr where the best model so far is, and how to resume the run."""
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


def prepare_run_dir(run_dir, settings):
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
    write_json(run_file, settings)
    return previous


def write_json(path, value):
    """Writes `value` to `path` as JSON, all at once: an interruption leaves the old file."""
    partial = f"{path}.partial"
    with open(partial, "w") as f:
        json.dump(value, f, indent=2)
    os.replace(partial, path)


def write_artefacts(run_dir, model, history, metrics, data):
    """Saves the model, the history, the test metrics and their plots in `run_dir`."""
    model.save(os.path.join(run_dir, "model.keras"))
    write_json(os.path.join(run_dir, "history.json"), history.history)
    write_json(os.path.join(run_dir, "metrics.json"), metrics)
    plots.plot_history(history, os.path.join(run_dir, "history.png"))
    plots.plot_confusion_matrix(
        metrics["confusion_matrix"], data.class_names, os.path.join(run_dir, "confusion_matrix.png")
    )
