"""The pretrained weight sets: one row per (model, weight set), apart from the architectures.

This table is the only place a weight set is added: a builder's `weights=`
names, the Hub repository and file each downloads, the class count and label
set its classifier has, how it was evaluated, its licence and upstream's
score, as timm's `default_cfgs` and keras-hub's presets keep them.
"""

import dataclasses

# Apple's sample-code licence, which the ml-cvnets weights keep wherever republished.
APPLE_SAMPLE_CODE = "apple-ascl"
SAFETENSORS = ("model.safetensors",)
# transformers' segmentation repositories hold `pytorch_model.bin`, most also a
# `model.safetensors`, which is preferred.
SAFETENSORS_OR_BIN = ("model.safetensors", "pytorch_model.bin")


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
        score: upstream's score, `None` where upstream gives none.
        license: the weights' licence (not this package's).
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
