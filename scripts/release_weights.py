"""Makes, publishes and pins the package's own weight sets (see docs/releasing.md).

    python scripts/release_weights.py [--models MODEL ...] [--weight-set flowers102]
        [--work-dir releases] [--run-dir DIR] [--base-weights imagenet|none|FILE]
        [--epochs 30] [--image-size 256] [--batch-size 32] [--freeze-backbone-epochs 0]
        [--steps-per-epoch N] [--max-examples N] [--data-dir DIR] [--seed 0]
        [--namespace keras-mobilevit] [--published PATH] [--retrain] [--dry-run]

For each row of `keras_mobilevit.pretrained.WEIGHT_SETS` that the package makes itself (the
rows with a `dataset`), of `--weight-set` and, by default, every model that has it:

1. trains it with the recipe (`keras_mobilevit.training.finetune`, from the row's base
   weights) in `<work-dir>/<repository name>/run`, or takes the finished run there (or in
   `--run-dir`); the recipe evaluates its best epoch on the test split (`metrics.json`);
2. writes `model.safetensors` (the model's variables by Keras path, the layout the loader
   reads; checked by loading it back with the builder), `metrics.json` and `README.md` (the
   model card) in `<work-dir>/<repository name>/upload`;
3. uploads to `<namespace>/<repository name>` on the Hugging Face Hub (`HF_TOKEN`,
   `HF_ENDPOINT`), in one commit, the files that differ from the Hub's: none when nothing
   changed, so running it again is harmless;
4. writes the pin (repository, commit, SHA-256 of `model.safetensors`, test metrics, training
   command) into `--published` (default the package's `keras_mobilevit/data/published.json`),
   all at once after each weight set, so a failure leaves the earlier pins whole.
"""

import argparse
import hashlib
import json
import os
import pathlib
import shlex
import shutil
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

FILES = ("model.safetensors", "metrics.json", "README.md")
LICENSE_LINKS = {"apple-ascl": "https://github.com/apple/ml-cvnets/blob/main/LICENSE"}
# What a finished run of the recipe leaves (training.run_dir writes them last).
FINISHED_RUN = ("run.json", "metrics.json", "model.keras")


def build_parser():
    from keras_mobilevit import pretrained

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weight-set", default="flowers102", help="default flowers102")
    parser.add_argument(
        "--models", nargs="+", metavar="MODEL", help="default: every model with the weight set"
    )
    parser.add_argument(
        "--work-dir", default="releases", help="where runs and uploads go (default releases)"
    )
    parser.add_argument("--run-dir", help="a finished run of the recipe to publish (one model)")
    parser.add_argument(
        "--base-weights",
        help="what training starts from: the row's base weight set (default, 'imagenet'), "
        "'none', or a weights file",
    )
    parser.add_argument("--epochs", type=int, default=30, help="default 30")
    parser.add_argument("--image-size", type=int, default=256, help="default 256")
    parser.add_argument("--batch-size", type=int, default=32, help="default 32")
    parser.add_argument(
        "--freeze-backbone-epochs", type=int, default=0, help="head-only epochs first (default 0)"
    )
    parser.add_argument("--steps-per-epoch", type=int, help="default one pass over train")
    parser.add_argument("--max-examples", type=int, help="use at most this many of each split")
    parser.add_argument("--data-dir", help="tensorflow-datasets' data directory")
    parser.add_argument("--seed", type=int, default=0, help="default 0")
    parser.add_argument(
        "--namespace",
        default=pretrained.NAMESPACE,
        help=f"the Hub owner to publish under (default {pretrained.NAMESPACE})",
    )
    parser.add_argument(
        "--published",
        default=str(pretrained.PUBLISHED_PATH),
        help="the pins file to write (default the package's data/published.json)",
    )
    parser.add_argument(
        "--retrain", action="store_true", help="train again even where a finished run exists"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="say what would be uploaded; upload nothing"
    )
    return parser


def rows_to_release(weight_set, models):
    """The rows of the package's own `weight_set`, for `models` (default all that have it)."""
    from keras_mobilevit import pretrained

    rows = [r for r in pretrained.WEIGHT_SETS if r.name == weight_set and r.released_here]
    if not rows:
        own = sorted({r.name for r in pretrained.WEIGHT_SETS if r.released_here})
        raise ValueError(f"No weight set {weight_set!r} is made here; these are: {own}.")
    if models is None:
        return rows
    by_model = {r.model.lower(): r for r in rows}
    unknown = [m for m in models if m.lower() not in by_model]
    if unknown:
        raise ValueError(
            f"{', '.join(unknown)} has no {weight_set!r} row; those that do: "
            f"{', '.join(r.model for r in rows)}."
        )
    return [by_model[m.lower()] for m in models]


def finished(run_dir):
    return all((run_dir / name).exists() for name in FINISHED_RUN)


def train_or_reuse(row, run_dir, args):
    """The finished run of `row` in `run_dir`, trained now unless there already."""
    from keras_mobilevit import training

    if finished(run_dir) and not args.retrain:
        settings = read_json(run_dir / "run.json")
        found = (settings.get("model"), settings.get("classes"))
        if found != (row.model, row.classes):
            raise ValueError(
                f"The run in {run_dir} trained {found[0]} for {found[1]} classes, not "
                f"{row.model} for {row.classes}: pass the run of this model, or --retrain."
            )
        print(f"{row.model}: taking the finished run in {run_dir}", file=sys.stderr)
        return
    base = row.base if args.base_weights is None else args.base_weights
    print(f"{row.model}: training on {row.dataset} from {base} in {run_dir}", file=sys.stderr)
    training.finetune(
        dataset=row.dataset,
        model=row.model,
        weights=None if base.lower() == "none" else base,
        image_size=args.image_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        freeze_backbone_epochs=args.freeze_backbone_epochs,
        steps_per_epoch=args.steps_per_epoch,
        max_examples=args.max_examples,
        data_dir=args.data_dir,
        seed=args.seed,
        output_dir=str(run_dir),
        overwrite=args.retrain,
    )


def write_checkpoint(row, run_dir, path):
    """Writes the run's model as `model.safetensors` in the package's layout, and checks it.

    The file must load back with the builder (`weights=path`) into a model of
    exactly the trained model's variables.
    """
    import keras
    import numpy as np
    from safetensors.numpy import save_file

    import keras_mobilevit
    from keras_mobilevit.builder import REGISTRY
    from keras_mobilevit.converters import keras_layout

    trained = keras.saving.load_model(run_dir / "model.keras", compile=False)
    tensors = keras_layout.tensors_of(trained)
    version = keras_mobilevit.__version__
    metadata = keras_layout.metadata(
        model=row.model, weights=row.name, classes=row.classes, keras_mobilevit=version
    )
    save_file(tensors, str(path), metadata=metadata)
    loaded = REGISTRY[row.model].builder(weights=str(path), classes=row.classes)
    differing = [
        v.path for v in loaded.weights if not np.array_equal(np.asarray(v), tensors[v.path])
    ]
    if differing or len(loaded.weights) != len(tensors):
        raise RuntimeError(f"{path} does not load back as {row.model}: {differing[:3]}")


def training_command(settings, run_dir):
    """The `keras-mobilevit train` command that does what the run's settings say."""
    weights = settings["weights"]
    command = [
        "keras-mobilevit", "train", "--dataset", settings["dataset"], "--model", settings["model"],
        "--weights", "none" if weights is None else weights,
        "--image-size", settings["image_size"], "--epochs", settings["epochs"],
        "--batch-size", settings["batch_size"], "--learning-rate", settings["learning_rate"],
        "--label-smoothing", settings["label_smoothing"], "--seed", settings["seed"],
    ]  # fmt: skip
    for option in ("freeze_backbone_epochs", "steps_per_epoch", "max_examples"):
        if settings.get(option):
            command += ["--" + option.replace("_", "-"), settings[option]]
    if settings.get("mixed_precision", "float32") != "float32":
        command.append("--mixed-precision")
    command += ["--output", str(run_dir)]
    return shlex.join(str(part) for part in command)


def model_card(row, repo, settings, metrics, command):
    """README.md: the Hub's metadata header, then what the weights are, do and do not do."""
    from huggingface_hub import EvalResult, ModelCardData

    from keras_mobilevit import pretrained

    base = settings["weights"]
    base_row = pretrained.find(row.model, base) if base in pretrained.names(row.model) else None
    dataset = row.metric.removesuffix(" top-1")
    scores = [("accuracy", "top-1 accuracy", metrics["test_accuracy"])]
    if metrics.get("test_top5_accuracy") is not None:
        scores.append(("top_5_accuracy", "top-5 accuracy", metrics["test_top5_accuracy"]))
    scores.append(("f1", "macro F1", metrics["test_macro_f1"]))
    header = ModelCardData(
        license="other",
        license_name=row.license,
        license_link=LICENSE_LINKS.get(row.license),
        library_name="keras",
        pipeline_tag="image-classification",
        tags=["image-classification", "keras", "mobilevit", "keras-mobilevit"],
        datasets=[row.dataset],
        base_model=base_row.repo if base_row else None,
        model_name=repo.split("/")[1],
        eval_results=[
            EvalResult(
                task_type="image-classification",
                dataset_type=row.dataset,
                dataset_name=dataset,
                dataset_split="test",
                metric_type=kind,
                metric_name=name,
                metric_value=round(value, 4),
            )
            for kind, name, value in scores
        ],
    ).to_yaml()
    examples = settings["examples"]
    started = _started_from(base, base_row)
    size = settings["image_size"]
    rows = "\n".join(f"| {name} | {value:.2%} |" for _, name, value in scores)
    return f"""---
{header}
---

# {repo}

`keras_mobilevit.{row.model}` fine-tuned on {dataset} (tensorflow-datasets' `{row.dataset}`,
{examples["train"]} training, {examples["validation"]} validation and {examples["test"]} test
images) from {started}, by [keras-mobilevit](https://github.com/keras-mobilevit/keras-mobilevit)'s
own recipe. {row.classes} classes.

## Use

```python
import keras_mobilevit

model = keras_mobilevit.{row.model}(weights="{row.name}")  # this file, at the commit pinned
probabilities = model.predict(images)  # RGB in [0, 255], {size}x{size}
keras_mobilevit.decode_predictions(probabilities, labels="{row.labels}")
```

or `keras-mobilevit predict --model {row.model} --weights {row.name} photo.jpg`.
`include_top=False` gives the fine-tuned backbone, for further transfer learning.

## Results

On the test split ({metrics["test_examples"]} images), at {size}x{size} (short side resized to
{size} / {row.crop_pct}, centre crop), best epoch {metrics.get("best_epoch")} of
{settings["epochs"]}:

| metric | value |
|---|---|
{rows}

`metrics.json` holds them with the test loss, per-class F1 and the confusion matrix.

## Training

```bash
{command}
```

Random resized crops, flips and colour jitter; AdamW with warm-up and cosine decay, label
smoothing {settings["label_smoothing"]}; early stopping on the validation loss, keeping the best
epoch (keras-mobilevit's docs/training.md).

## Intended use

Classifying photographs of the {row.classes} flower categories of {dataset} (flowers common in
the United Kingdom), and, without the classifier, as a starting point for transfer learning to
other plant and fine-grained image tasks.

## Limits

- Every image gets one of these {row.classes} categories: there is no "none of these" (a photo
  of anything else is still named a flower).
- About {examples["train"] // row.classes} training images a class: accuracy on photographs
  unlike the dataset's (other regions' species, drawings, herbarium scans, other framing) is not
  measured.
- The scores above are of one run on one test split, not an average.

## Files and licence

`model.safetensors` holds the model's variables by Keras path (`stem_conv/kernel`, ...), the
layout keras-mobilevit's loader reads (`weights="{row.name}"`, or the file's path).
The weights derive from Apple's ml-cvnets ImageNet weights and keep their licence
({row.license}), not keras-mobilevit's Apache-2.0.
"""


def _started_from(base, base_row):
    if base_row is not None:
        return f"the {base_row.name} weights (`{base_row.repo}`)"
    return "random initialisation" if base is None else f"the weights file `{base}`"


def git_blob_sha1(path):
    data = pathlib.Path(path).read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def changed_files(repo, folder):
    """The files of `folder` that the Hub's repository lacks or holds otherwise."""
    from huggingface_hub import HfApi, errors

    from keras_mobilevit import hub

    try:
        entries = HfApi().get_paths_info(repo, list(FILES))
    except errors.RepositoryNotFoundError:
        return list(FILES)
    remote = {entry.path: entry for entry in entries}
    changed = []
    for name in FILES:
        entry, local = remote.get(name), folder / name
        if entry is None:
            changed.append(name)
        elif entry.lfs is not None:
            if entry.lfs.sha256 != hub.file_sha256(local):
                changed.append(name)
        elif entry.blob_id != git_blob_sha1(local):
            changed.append(name)
    return changed


def upload(repo, folder, names, message):
    """Commits `names` of `folder` to `repo` (created if needed); returns the commit."""
    from huggingface_hub import CommitOperationAdd, HfApi

    from keras_mobilevit import hub

    api = HfApi()
    with hub.upload_errors(repo):
        api.create_repo(repo, exist_ok=True)
        operations = [CommitOperationAdd(name, str(folder / name)) for name in names]
        return api.create_commit(repo, operations, commit_message=message).oid


def current_commit(repo):
    from huggingface_hub import HfApi

    return HfApi().model_info(repo).sha


def write_pin(path, row, pin):
    """Sets `row`'s pin in the pins file at `path`, replacing the file at once."""
    from keras_mobilevit import pretrained

    path = pathlib.Path(path)
    table = pretrained.read_published(path) if path.exists() else {}
    table.setdefault(row.model, {})[row.name] = pin
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, path)


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def release(row, args):
    """Trains (or takes), packs, uploads and pins one weight set; returns a line to print."""
    from keras_mobilevit import hub, pretrained

    name = row.repo.split("/")[1]
    repo = f"{args.namespace}/{name}"
    run_dir = pathlib.Path(args.run_dir or pathlib.Path(args.work_dir) / name / "run")
    train_or_reuse(row, run_dir, args)
    folder = pathlib.Path(args.work_dir) / name / "upload"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    write_checkpoint(row, run_dir, folder / "model.safetensors")
    shutil.copyfile(run_dir / "metrics.json", folder / "metrics.json")
    settings, metrics = read_json(run_dir / "run.json"), read_json(run_dir / "metrics.json")
    command = training_command(settings, run_dir)
    card = model_card(row, repo, settings, metrics, command)
    (folder / "README.md").write_text(card, encoding="utf-8")
    sha256 = hub.file_sha256(folder / "model.safetensors")

    changed = changed_files(repo, folder)
    if args.dry_run:
        return f"{repo}: would upload {', '.join(changed) or 'nothing'} (dry run)"
    previous = pretrained.read_published(args.published).get(row.model, {}).get(row.name, {})
    if changed:
        message = f"{row.model} weights={row.name}: test top-1 {metrics['test_accuracy']:.2%}"
        revision = upload(repo, folder, changed, message)
    elif previous.get("repo") == repo and previous.get("sha256") == sha256:
        revision = previous["revision"]
    else:
        revision = current_commit(repo)
    kept = ("test_accuracy", "test_top5_accuracy", "test_macro_f1", "test_loss", "test_examples")
    pin = dict(
        repo=repo,
        revision=revision,
        sha256=sha256,
        metrics={key: metrics.get(key) for key in (*kept, "best_epoch")},
        command=command,
    )
    if pin != previous:
        write_pin(args.published, row, pin)
    uploaded = ", ".join(changed) if changed else "nothing (the Hub has these files)"
    return (
        f"{repo}: uploaded {uploaded}; pinned {revision[:12]}, sha256 {sha256[:12]}, "
        f"test top-1 {metrics['test_accuracy']:.2%}"
    )


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        rows = rows_to_release(args.weight_set, args.models)
        if args.run_dir and len(rows) != 1:
            raise ValueError("--run-dir is the run of one model: pass one --models with it.")
        for row in rows:
            print(release(row, args), flush=True)
    except (ValueError, OSError, ImportError) as e:
        print(f"release_weights: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
