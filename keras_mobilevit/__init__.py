"""MobileViT for Keras 3: exact to the reference, with pretrained weights from the Hub."""

from keras_mobilevit.imagenet import decode_predictions, preprocess_input
from keras_mobilevit.layers import Fold, MultiHeadSelfAttention, Unfold
from keras_mobilevit.mobilevit import MobileViT_S, MobileViT_XS, MobileViT_XXS

__version__ = "0.1.0"

__all__ = [
    "MobileViT_XXS",
    "MobileViT_XS",
    "MobileViT_S",
    "preprocess_input",
    "decode_predictions",
    "Unfold",
    "Fold",
    "MultiHeadSelfAttention",
]
