"""MobileViT for Keras 3: exact to the reference, with pretrained weights from the Hub."""

import os
import sys

__version__ = "0.2.0"

# `keras-mobilevit --help` and `--version` need no Keras, which takes seconds to import: the
# command imports the rest when it needs it (`cli.import_models` reloads this module, which
# keeps `_deferred` from the first run).
_deferred = globals().get("_deferred", os.path.basename(sys.argv[0]) == "keras-mobilevit")


def _import_keras():
    try:
        import keras  # noqa: F401
    except ModuleNotFoundError as e:
        # Keras falls back to TensorFlow, and says only "No module named 'tensorflow'" to a
        # user who installed the jax or torch extra.
        if (e.name or "").partition(".")[0] != "tensorflow":
            raise
        chosen = os.environ.get("KERAS_BACKEND")
        where = f"KERAS_BACKEND={chosen}" if chosen else "Keras' default, or ~/.keras/keras.json"
        raise ModuleNotFoundError(
            f"Keras' backend is TensorFlow ({where}) and TensorFlow is not installed: set "
            "KERAS_BACKEND=jax or KERAS_BACKEND=torch for the backend you installed, or "
            "pip install 'keras-mobilevit[tensorflow]'.",
            name="tensorflow",
        ) from None


if not _deferred:
    _import_keras()
    from keras_mobilevit import legacy  # noqa: F401  (registers the 0.1.0 layer names)
    from keras_mobilevit.deeplabv3 import (
        MobileViT_S_DeepLabV3,
        MobileViT_XS_DeepLabV3,
        MobileViT_XXS_DeepLabV3,
        MobileViTV2_100_DeepLabV3,
    )
    from keras_mobilevit.imagenet import decode_predictions, preprocess_input
    from keras_mobilevit.inference import fold_batchnorm, optimize_for_inference
    from keras_mobilevit.kernels import fast_paths_enabled, set_fast_paths
    from keras_mobilevit.layers import (
        DotProductAttention,
        Fold,
        GroupNorm1,
        ResizeLike,
        ResizeToPatchGrid,
        SeparableSelfAttention,
        Unfold,
    )
    from keras_mobilevit.mobilevit import MobileViT_S, MobileViT_XS, MobileViT_XXS
    from keras_mobilevit.mobilevitv2 import (
        MobileViTV2_050,
        MobileViTV2_075,
        MobileViTV2_100,
        MobileViTV2_125,
        MobileViTV2_150,
        MobileViTV2_175,
        MobileViTV2_200,
    )
    from keras_mobilevit.model import MobileViTModel

__all__ = [
    "MobileViT_XXS",
    "MobileViT_XS",
    "MobileViT_S",
    "MobileViTV2_050",
    "MobileViTV2_075",
    "MobileViTV2_100",
    "MobileViTV2_125",
    "MobileViTV2_150",
    "MobileViTV2_175",
    "MobileViTV2_200",
    "MobileViT_XXS_DeepLabV3",
    "MobileViT_XS_DeepLabV3",
    "MobileViT_S_DeepLabV3",
    "MobileViTV2_100_DeepLabV3",
    "preprocess_input",
    "decode_predictions",
    "fold_batchnorm",
    "optimize_for_inference",
    "MobileViTModel",
    "set_fast_paths",
    "fast_paths_enabled",
    "Unfold",
    "Fold",
    "DotProductAttention",
    "ResizeToPatchGrid",
    "ResizeLike",
    "GroupNorm1",
    "SeparableSelfAttention",
]
