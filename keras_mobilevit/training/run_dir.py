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


# What a run writes in its directory besides run.json (its settings) and backup/
# (the state of an interrupted run): what a new run there would replace.
ARTEFACTS = (
    "model.keras", "metrics.json", "history.json", "history.png", "confusion_matrix.png",
    "checkpoints",
)  # fmt: skip

# The settings an interrupted run resumes with only if they are the same.
_RUN_DEFINING = ("dataset", "model", "weights", "image_size", "batch_size", "learning_rate",
                 "classes", "epochs", "freeze_backbone_epochs", "mixed_precision",
                 "steps_per_epoch", "max_examples")  # fmt: skip

_REPLACE_HINT = "pass overwrite=True (--overwrite) to replace it"


def check_run_dir(run_dir, settings, overwrite=False):
    """Returns the history of an interrupted run to resume in `run_dir`, or {}; reads only.

    An earlier run there is never replaced unless `overwrite`: an interrupted
    one resumes if `settings` are its own, and anything else is refused, so
    that a finished run's model, checkpoint and history are not lost to a
    reused `--output`.
    """
    if overwrite or not os.path.isdir(run_dir):
        return {}
    run_file = os.path.join(run_dir, "run.json")
    earlier = {}
    if os.path.exists(run_file):
        with open(run_file) as f:
            earlier = json.load(f)
    changed = [k for k in _RUN_DEFINING if earlier.get(k) != settings.get(k)]
    differences = ", ".join(f"{k}={earlier.get(k)!r}" for k in changed)
    if _interrupted(run_dir):
        if changed:
            raise ValueError(
                f"{run_dir!r} holds an interrupted run with other settings ({differences}): "
                "resume it with the same settings, choose another output directory, or "
                f"{_REPLACE_HINT} and start over."
            )
        print(f"Resuming the interrupted run in {run_dir}.", file=sys.stderr, flush=True)
        history_file = os.path.join(run_dir, "history.json")
        if not os.path.exists(history_file):
            return {}
        with open(history_file) as f:
            return json.load(f)
    found = _artefacts(run_dir)
    if found:
        if not earlier:
            what = f"already holds {', '.join(found)}"
        elif changed:
            what = f"holds a finished run with other settings ({differences})"
        elif "model.keras" in found:
            model = os.path.join(run_dir, "model.keras")
            what = f"holds a finished run with the same settings (its model: {model})"
        else:
            what = f"holds an earlier run with the same settings ({', '.join(found)})"
        raise ValueError(
            f"{run_dir!r} {what}, which this run would replace: choose another output "
            f"directory, or {_REPLACE_HINT}."
        )
    return {}


def prepare_run_dir(run_dir, settings, overwrite=False):
    """Creates `run_dir` and writes the settings there, once `check_run_dir` has agreed.

    With `overwrite`, an earlier run's artefacts and backup are removed first
    (other files in the folder are left alone), so that none passes for this run's.
    """
    os.makedirs(run_dir, exist_ok=True)
    if overwrite:
        found = _artefacts(run_dir)
        if found or _interrupted(run_dir):
            print(f"Replacing the earlier run in {run_dir}.", file=sys.stderr, flush=True)
        for name in (*found, "backup"):
            _remove(os.path.join(run_dir, name))
    write_json(os.path.join(run_dir, "run.json"), settings)


def _interrupted(run_dir):
    backup = os.path.join(run_dir, "backup")
    return os.path.isdir(backup) and bool(os.listdir(backup))


def _artefacts(run_dir):
    return [name for name in ARTEFACTS if os.path.lexists(os.path.join(run_dir, name))]


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


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
