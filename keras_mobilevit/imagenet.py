"""ImageNet conventions: input preprocessing, evaluation transform, class names.

The class index ships with the package (`data/imagenet_class_index.json`, in
the format of Keras' own), so decoding predictions downloads nothing.
"""

import functools
import json
import math
import pathlib

import numpy as np

from keras_mobilevit import pretrained

# The evaluation transform of the README's model, MobileViT_XS's ImageNet weights.
_DEFAULT_WEIGHTS = pretrained.find("MobileViT_XS", "imagenet")

_CLASS_INDEX_PATH = pathlib.Path(__file__).parent / "data" / "imagenet_class_index.json"


def preprocess_input(x, data_format=None):
    """A placeholder method for backward compatibility.

    The preprocessing logic has been included in the MobileViT models (a
    `Rescaling(1/255)` layer, with `include_preprocessing=True`, the default),
    so this function returns its input unchanged, as in
    `keras.applications.mobilenet_v3`. Feed the model RGB pixels in `[0, 255]`.
    With `include_preprocessing=False`, divide by 255 yourself.

    Args:
        x: a floating point numpy array or tensor.
        data_format: ignored, for compatibility with `keras.applications`.

    Returns:
        `x`, unchanged.
    """
    return x


@functools.cache
def _class_index():
    with open(_CLASS_INDEX_PATH, encoding="utf-8") as f:
        index = json.load(f)
    return [tuple(index[str(i)]) for i in range(len(index))]


def decode_predictions(preds, top=5):
    """Decodes the prediction of an ImageNet model.

    Args:
        preds: array of shape `(batch, 1000)`, probabilities or logits.
        top: how many top guesses to return per image.

    Returns:
        A list (one entry per image) of lists of `(class_id, class_name, score)`
        tuples, best first, e.g. `("n01440764", "tench", 0.91)`.

    Raises:
        ValueError: if `preds` is not a batch of 1000 scores.
    """
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != 1000:
        raise ValueError(
            "`decode_predictions` expects a batch of ImageNet predictions, an array of shape "
            f"(samples, 1000). Received shape {preds.shape}."
        )
    if not isinstance(top, int) or top < 1:
        raise ValueError(f"`top` must be a positive integer, got {top!r}.")
    index = _class_index()
    results = []
    for row in preds:
        best = np.argsort(-row, kind="stable")[:top]
        results.append([(*index[i], float(row[i])) for i in best])
    return results


def load_image(path, size=_DEFAULT_WEIGHTS.input_size, crop_pct=_DEFAULT_WEIGHTS.crop_pct):
    """Loads an image for evaluation, as timm does for these checkpoints.

    Bicubic resize of the short side to `floor(size / crop_pct)`, then a
    centre crop of `size` x `size`.

    Returns:
        A float32 array `(size, size, 3)`, RGB, in `[0, 255]`.
    """
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        scale_size = math.floor(size / crop_pct)
        width, height = image.size
        if width <= height:
            new_size = (scale_size, int(scale_size * height / width))
        else:
            new_size = (int(scale_size * width / height), scale_size)
        image = image.resize(new_size, Image.Resampling.BICUBIC)
        left = int(round((new_size[0] - size) / 2.0))
        top = int(round((new_size[1] - size) / 2.0))
        image = image.crop((left, top, left + size, top + size))
        return np.asarray(image, dtype=np.float32)
