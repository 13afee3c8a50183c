"""MobileViTV2 models for Keras 3.

Reference:
- [Separable Self-attention for Mobile Vision
  Transformers](https://arxiv.org/abs/2206.02680) (TMLR 2023)
"""

from keras_mobilevit import pretrained
from keras_mobilevit.blocks import make_divisible
from keras_mobilevit.builder import FLOWERS102_DOC, Config, Stage, make_builder

WIDTHS = ("050", "075", "100", "125", "150", "175", "200")


def _config(width):
    """timm's `_mobilevitv2_cfg`: channels scaled by the width multiplier and truncated."""
    multiplier = int(width) / 100
    channels = [int(c * multiplier) for c in (64, 128, 256, 384, 512)]
    # The attention runs at half the stage width, rounded as timm rounds.
    dims = [make_divisible(0.5 * c) for c in channels[2:]]
    return Config(
        stem_channels=int(32 * multiplier),
        stages=(
            Stage(channels[0], 1, 1),
            Stage(channels[1], 2, 2),
            Stage(channels[2], 1, 2, transformer_dim=dims[0], transformer_depth=2),
            Stage(channels[3], 1, 2, transformer_dim=dims[1], transformer_depth=4),
            Stage(channels[4], 1, 2, transformer_dim=dims[2], transformer_depth=3),
        ),
        expansion=2,
        block="mobilevitv2",
        head_channels=None,
        dropout=0.1,
    )


CONFIGS = {f"MobileViTV2_{width}": _config(width) for width in WIDTHS}


BASE_DOCSTRING = """Instantiates the {name} architecture (width multiplier {multiplier}).

Reference:

- [Separable Self-attention for Mobile Vision
  Transformers](https://arxiv.org/abs/2206.02680) (TMLR 2023)

MobileViTV2 replaces MobileViT's multi-head attention with separable
self-attention, whose cost is linear in the number of patches, and drops the
fusion of each block with its input.

The weights are the original ml-cvnets ones, as republished by timm on the
Hugging Face Hub, downloaded and cached by `huggingface_hub` on first use.
They keep their upstream licence (Apple's sample-code licence).
`weights="imagenet"` is ImageNet-1k (`{repo}`); for widths 1.5, 1.75 and 2.0,
`weights="imagenet22k"` is ImageNet-21k pretraining fine-tuned on
ImageNet-1k, at 256x256, or at 384x384 when `input_shape` is `(384, 384, 3)`.

| Model | Params | GMACs (256x256) | Top-1 in1k | Top-1 in22k->in1k 256 / 384 |
|---|---|---|---|---|
| MobileViTV2_050 | 1,370,593 | 0.46 | 70.18 | |
| MobileViTV2_075 | 2,866,009 | 1.03 | 75.56 | |
| MobileViTV2_100 | 4,901,841 | 1.81 | 78.09 | |
| MobileViTV2_125 | 7,478,089 | 2.82 | 79.65 | |
| MobileViTV2_150 | 10,594,753 | 4.04 | 80.38 | 81.46 / 82.60 |
| MobileViTV2_175 | 14,251,833 | 5.49 | 80.84 | 81.94 / 82.93 |
| MobileViTV2_200 | 18,449,329 | 7.16 | 81.17 | 82.36 / 83.41 |

Top-1 is upstream's at 256x256 (and 384x384 where given). timm evaluates these
weights after a bicubic resize of the short side to 288 (256 / 0.888) and a
256x256 centre crop; the 384 models without cropping.

The model accepts any height and width of at least 32 pixels, square or not;
`input_shape=(None, None, 3)` (the default) builds one model for all sizes.
Where a block's input is not a multiple of the 2x2 patch, it is resized up
(bilinear, aligned corners) as in the reference.

"""


def _builder(width):
    variant = f"MobileViTV2_{width}"
    description = BASE_DOCSTRING.format(
        name=variant,
        multiplier=int(width) / 100,
        repo=pretrained.find(variant, "imagenet").repo,
    )
    weights_doc = '`"imagenet"`, `"imagenet22k"` (widths 1.5, 1.75, 2.0)'
    if "flowers102" in pretrained.names(variant):
        weights_doc += ", " + FLOWERS102_DOC
    return make_builder(variant, CONFIGS[variant], description, weights_doc)


MobileViTV2_050 = _builder("050")
MobileViTV2_075 = _builder("075")
MobileViTV2_100 = _builder("100")
MobileViTV2_125 = _builder("125")
MobileViTV2_150 = _builder("150")
MobileViTV2_175 = _builder("175")
MobileViTV2_200 = _builder("200")
