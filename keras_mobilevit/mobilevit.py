"""MobileViT (v1) models for Keras 3.

Reference:
- [MobileViT: Light-weight, General-purpose, and Mobile-friendly Vision
  Transformer](https://arxiv.org/abs/2110.02178) (ICLR 2022)
"""

from keras_mobilevit import pretrained
from keras_mobilevit.builder import FLOWERS102_DOC, Config, Stage, make_builder

# Values are timm's `model_cfgs` (see `Config` for the fields).
CONFIGS = {
    "MobileViT_XXS": Config(
        stem_channels=16,
        stages=(
            Stage(16, 1, 1),
            Stage(24, 3, 2),
            Stage(48, 1, 2, transformer_dim=64, transformer_depth=2),
            Stage(64, 1, 2, transformer_dim=80, transformer_depth=4),
            Stage(80, 1, 2, transformer_dim=96, transformer_depth=3),
        ),
        expansion=2,
        block="mobilevit",
        head_channels=320,
        dropout=0.1,
    ),
    "MobileViT_XS": Config(
        stem_channels=16,
        stages=(
            Stage(32, 1, 1),
            Stage(48, 3, 2),
            Stage(64, 1, 2, transformer_dim=96, transformer_depth=2),
            Stage(80, 1, 2, transformer_dim=120, transformer_depth=4),
            Stage(96, 1, 2, transformer_dim=144, transformer_depth=3),
        ),
        expansion=4,
        block="mobilevit",
        head_channels=384,
        dropout=0.1,
    ),
    "MobileViT_S": Config(
        stem_channels=16,
        stages=(
            Stage(32, 1, 1),
            Stage(64, 3, 2),
            Stage(96, 1, 2, transformer_dim=144, transformer_depth=2),
            Stage(128, 1, 2, transformer_dim=192, transformer_depth=4),
            Stage(160, 1, 2, transformer_dim=240, transformer_depth=3),
        ),
        expansion=4,
        block="mobilevit",
        head_channels=640,
        dropout=0.1,
    ),
}


BASE_DOCSTRING = """Instantiates the {name} architecture.

Reference:

- [MobileViT: Light-weight, General-purpose, and Mobile-friendly Vision
  Transformer](https://arxiv.org/abs/2110.02178) (ICLR 2022)

The ImageNet-1k weights are the original ml-cvnets ones, as republished by
timm on the Hugging Face Hub (`{repo}`), and are downloaded and cached by
`huggingface_hub` on first use. They keep their upstream licence (Apple's
sample-code licence).

| Model | Params | GMACs (256x256) | Top-1 (256x256, upstream) |
|---|---|---|---|
| MobileViT_XXS | 1,272,024 | 0.42 | 69.0 |
| MobileViT_XS  | 2,317,848 | 1.05 | 74.8 |
| MobileViT_S   | 5,578,632 | 2.03 | 78.4 |

The model accepts any height and width of at least 32 pixels, square or not;
`input_shape=(None, None, 3)` (the default) builds one model for all sizes.
The weights were trained at 256x256, and are evaluated by timm after a bicubic
resize of the short side to 284 and a 256x256 centre crop.

"""


def _builder(variant):
    config = CONFIGS[variant]
    description = BASE_DOCSTRING.format(
        name=variant, repo=pretrained.find(variant, "imagenet").repo
    )
    weights_doc = '`"imagenet"` (ImageNet-1k)'
    if "flowers102" in pretrained.names(variant):
        weights_doc += ", " + FLOWERS102_DOC
    return make_builder(variant, config, description, weights_doc)


MobileViT_XXS = _builder("MobileViT_XXS")
MobileViT_XS = _builder("MobileViT_XS")
MobileViT_S = _builder("MobileViT_S")
