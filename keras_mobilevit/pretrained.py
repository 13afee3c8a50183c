"""The pretrained weight sets: one row per (model, weight set), apart from the architectures.

This table is the only place a weight set is added: a builder's `weights=`
names, the Hub repository and file each downloads, the class count and label
set its classifier has, how it was evaluated, its licence and upstream's
score, as timm's `default_cfgs` and keras-hub's presets keep them.

Some weight sets are this package's own: fine-tuned by its recipe
(`keras_mobilevit.training`) and published by its release command
(`scripts/release_weights.py`, see docs/releasing.md). Those are downloaded
only at the Hub commit, and with the SHA-256, that the release pinned in
`data/published.json`; until a release has pinned one, asking for it raises
`WeightsUnavailableError` with the command that makes it. Pure Python: no Keras.
"""

import dataclasses
import json
import os
import pathlib
import re

# Apple's sample-code licence, which the ml-cvnets weights keep wherever republished.
APPLE_SAMPLE_CODE = "apple-ascl"
SAFETENSORS = ("model.safetensors",)
# transformers' segmentation repositories hold `pytorch_model.bin`, most also a
# `model.safetensors`, which is preferred.
SAFETENSORS_OR_BIN = ("model.safetensors", "pytorch_model.bin")
# Where the package's own weight sets are published, one repository per model and weight set.
NAMESPACE = "keras-mobilevit"
# The pins of the published ones (what the release command writes), and the variable that
# points at another such file (a release not yet in the package, or a test's fake Hub).
PUBLISHED_PATH = pathlib.Path(__file__).parent / "data" / "published.json"
PUBLISHED_ENV = "KERAS_MOBILEVIT_PUBLISHED_WEIGHTS"
RELEASE_SCRIPT = "scripts/release_weights.py"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclasses.dataclass(frozen=True)
class WeightSet:
    """One pretrained checkpoint of one model.

    Attributes:
        model: the builder's name, e.g. `"MobileViT_XS"`.
        name: the `weights=` value that selects it, e.g. `"imagenet"`.
        repo: the Hugging Face Hub repository it is downloaded from.
        classes: the classifier's number of classes.
        labels: the label set its classes index (`"imagenet"`, `"pascal_voc"`).
        crop_pct: the centre crop it is evaluated with (timm's convention).
        input_size: the square size it was trained and is evaluated at; where
            a model has rows for several sizes, a square input of one of
            them selects that row, anything else the smallest.
        filenames: the checkpoint files to look for in `repo`, preferred first.
        metric: what `score` measures.
        score: upstream's score, `None` where upstream gives none (and for
            the package's own weight sets, whose score is their pin's).
        license: the weights' licence (not this package's).
        dataset: for the package's own weight sets, the tensorflow-datasets
            name the release fine-tunes on; `None` for upstream's.
        base: the weight set the release fine-tunes from (`"imagenet"`).
    """

    model: str
    name: str
    repo: str
    classes: int
    labels: str
    crop_pct: float
    input_size: int = 256
    filenames: tuple = SAFETENSORS
    metric: str = "ImageNet-1k top-1"
    score: float | None = None
    license: str = APPLE_SAMPLE_CODE
    dataset: str | None = None
    base: str | None = None

    @property
    def released_here(self):
        """Whether this package's release command makes it (rather than upstream)."""
        return self.dataset is not None


def _imagenet(model, repo, crop_pct, score, name="imagenet", input_size=256):
    return WeightSet(model, name, repo, 1000, "imagenet", crop_pct, input_size, score=score)


def _voc(model, repo, score=None):
    return WeightSet(
        model,
        "pascal_voc",
        repo,
        21,
        "pascal_voc",
        crop_pct=512 / 544,
        input_size=512,
        filenames=SAFETENSORS_OR_BIN,
        metric="PASCAL VOC 2012 mIoU",
        score=score,
    )


def _flowers102(model, crop_pct):
    # Fine-tuned from the ImageNet weights, so under their licence and with their crop.
    return WeightSet(
        model,
        "flowers102",
        f"{NAMESPACE}/{model.lower()}.flowers102",
        102,
        "oxford_flowers102",
        crop_pct,
        metric="Oxford Flowers-102 top-1",
        dataset="oxford_flowers102",
        base="imagenet",
    )


WEIGHT_SETS = (
    _imagenet("MobileViT_XXS", "timm/mobilevit_xxs.cvnets_in1k", 0.9, 69.0),
    _imagenet("MobileViT_XS", "timm/mobilevit_xs.cvnets_in1k", 0.9, 74.8),
    _imagenet("MobileViT_S", "timm/mobilevit_s.cvnets_in1k", 0.9, 78.4),
    _imagenet("MobileViTV2_050", "timm/mobilevitv2_050.cvnets_in1k", 0.888, 70.18),
    _imagenet("MobileViTV2_075", "timm/mobilevitv2_075.cvnets_in1k", 0.888, 75.56),
    _imagenet("MobileViTV2_100", "timm/mobilevitv2_100.cvnets_in1k", 0.888, 78.09),
    _imagenet("MobileViTV2_125", "timm/mobilevitv2_125.cvnets_in1k", 0.888, 79.65),
    _imagenet("MobileViTV2_150", "timm/mobilevitv2_150.cvnets_in1k", 0.888, 80.38),
    _imagenet("MobileViTV2_175", "timm/mobilevitv2_175.cvnets_in1k", 0.888, 80.84),
    _imagenet("MobileViTV2_200", "timm/mobilevitv2_200.cvnets_in1k", 0.888, 81.17),
    # ImageNet-21k pretraining, fine-tuned on ImageNet-1k, at 256 and at 384 (uncropped).
    _imagenet(
        "MobileViTV2_150", "timm/mobilevitv2_150.cvnets_in22k_ft_in1k", 0.888, 81.46, "imagenet22k"
    ),
    _imagenet(
        "MobileViTV2_150",
        "timm/mobilevitv2_150.cvnets_in22k_ft_in1k_384",
        1.0,
        82.60,
        "imagenet22k",
        384,
    ),
    _imagenet(
        "MobileViTV2_175", "timm/mobilevitv2_175.cvnets_in22k_ft_in1k", 0.888, 81.94, "imagenet22k"
    ),
    _imagenet(
        "MobileViTV2_175",
        "timm/mobilevitv2_175.cvnets_in22k_ft_in1k_384",
        1.0,
        82.93,
        "imagenet22k",
        384,
    ),
    _imagenet(
        "MobileViTV2_200", "timm/mobilevitv2_200.cvnets_in22k_ft_in1k", 0.888, 82.36, "imagenet22k"
    ),
    _imagenet(
        "MobileViTV2_200",
        "timm/mobilevitv2_200.cvnets_in22k_ft_in1k_384",
        1.0,
        83.41,
        "imagenet22k",
        384,
    ),
    _flowers102("MobileViT_XXS", 0.9),
    _flowers102("MobileViT_XS", 0.9),
    _flowers102("MobileViT_S", 0.9),
    _flowers102("MobileViTV2_050", 0.888),
    _flowers102("MobileViTV2_100", 0.888),
    _voc("MobileViT_XXS_DeepLabV3", "apple/deeplabv3-mobilevit-xx-small"),
    _voc("MobileViT_XS_DeepLabV3", "apple/deeplabv3-mobilevit-x-small"),
    _voc("MobileViT_S_DeepLabV3", "apple/deeplabv3-mobilevit-small", score=79.1),
    _voc("MobileViTV2_100_DeepLabV3", "apple/mobilevitv2-1.0-voc-deeplabv3"),
)


def names(model):
    """The `weights=` names that `model` has, in the table's order."""
    return tuple(dict.fromkeys(row.name for row in WEIGHT_SETS if row.model == model))


def models_with(name):
    """The models that have a weight set called `name`."""
    return tuple(dict.fromkeys(row.model for row in WEIGHT_SETS if row.name == name))


def find(model, name, input_shape=(None, None, 3)):
    """The row of `model`'s weight set `name` for this input shape; `KeyError` if none.

    A square input of a size that has a row of its own gets that row;
    anything else the smallest size's.
    """
    rows = sorted(
        (row for row in WEIGHT_SETS if row.model == model and row.name == name),
        key=lambda row: row.input_size,
    )
    if not rows:
        raise KeyError((model, name))
    height, width = input_shape[:2]
    for row in rows:
        if height == width == row.input_size:
            return row
    return rows[0]


@dataclasses.dataclass(frozen=True)
class Pin:
    """Where and what a release published: the file the loader accepts, and its scores.

    Attributes:
        repo: the Hub repository it was uploaded to.
        revision: the Hub commit that holds it (40 hex digits).
        sha256: the SHA-256 of its `model.safetensors`.
        metrics: its test metrics (`test_accuracy`, `test_top5_accuracy`,
            `test_macro_f1`, `test_examples`), from the run's `metrics.json`.
        command: the training command that made it.
    """

    repo: str
    revision: str
    sha256: str
    metrics: dict
    command: str


def published_path():
    """The pins file read: `$KERAS_MOBILEVIT_PUBLISHED_WEIGHTS`, else the package's own."""
    return pathlib.Path(os.environ.get(PUBLISHED_ENV) or PUBLISHED_PATH)


def read_published(path=None):
    """`{model: {weight set: pin as a dict}}` from a pins file (`published_path()` by default).

    Raises:
        ValueError: for a file that is not such JSON, naming it.
        FileNotFoundError: for a missing file named by the variable (the
            package's own always exists).
    """
    path = pathlib.Path(path) if path is not None else published_path()
    try:
        with open(path, encoding="utf-8") as f:
            table = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"The published weights file {path} is not valid JSON: {e}.") from e
    except FileNotFoundError as e:
        raise FileNotFoundError(
            f"No published weights file at {path} (named by {PUBLISHED_ENV}): point the "
            "variable at the published.json a release wrote, or unset it."
        ) from e
    if not isinstance(table, dict):
        raise ValueError(f"The published weights file {path} must hold a JSON object.")
    return table


def pin(row):
    """The `Pin` of one of the package's own weight sets, or `None` if not published yet.

    Upstream's weight sets have no pin (they are downloaded at their
    repository's newest commit): `None` too.

    Raises:
        ValueError: for a pin whose revision or SHA-256 is malformed.
    """
    if not row.released_here:
        return None
    entry = read_published().get(row.model, {}).get(row.name)
    if entry is None:
        return None
    fields = {f.name for f in dataclasses.fields(Pin)}
    value = Pin(**{k: v for k, v in entry.items() if k in fields})
    if not (_COMMIT.match(value.revision) and _SHA256.match(value.sha256)):
        raise ValueError(
            f"The pin of {row.model} weights={row.name!r} in {published_path()} is malformed: "
            "its revision must be a 40-hex-digit commit and its sha256 64 hex digits."
        )
    return value


def is_published(row):
    """Whether `row` can be downloaded: upstream's always, the package's own once pinned."""
    return not row.released_here or pin(row) is not None


def release_command(row):
    """The command that trains, publishes and pins one of the package's own weight sets."""
    return f"python {RELEASE_SCRIPT} --models {row.model} --weight-set {row.name}"
