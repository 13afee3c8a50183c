"""ImageNet conventions: input preprocessing, evaluation transform, class names.

The class names ship with the package (`data/`, see `labels`), so decoding
predictions downloads nothing; `decode_predictions` lives in `labels` and is
re-exported here, where `keras.applications` keeps it.
"""

import math
import os

import numpy as np

from keras_mobilevit import pretrained
from keras_mobilevit.labels import decode_predictions  # noqa: F401  (re-exported)

# The evaluation transform of the README's model, MobileViT_XS's ImageNet weights.
_DEFAULT_WEIGHTS = pretrained.find("MobileViT_XS", "imagenet")


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


# Pillow's one-channel modes of more than 8 bits, with the value that is white:
# Pillow's own conversion clips them to 255. ("I" is how older Pillow releases read
# 16-bit PNGs; wider values are refused. 16-bit RGB(A) PNGs are read as 8-bit.)
_WHITE_OF_DEEP_MODES = {
    "I;16": 65535,
    "I;16B": 65535,
    "I;16L": 65535,
    "I;16N": 65535,
    "I": 65535,
    "F": 1.0,
}


def open_rgb(path):
    """Reads an image file as an 8-bit RGB `PIL.Image.Image`, whatever its depth.

    16-bit images are scaled from `[0, 65535]` and floating-point ones from
    `[0, 1]` to `[0, 255]`.

    Raises:
        OSError: if the file cannot be read as an image (missing, truncated,
            corrupt); the message names the file.
        ValueError: if its pixels are not finite, or outside the range its
            depth implies.
    """
    from PIL import Image, UnidentifiedImageError

    name = os.fspath(path) if isinstance(path, os.PathLike) else path
    try:
        with Image.open(path) as image:
            mode = image.mode
            if mode not in _WHITE_OF_DEEP_MODES:
                return image.convert("RGB")
            pixels = np.asarray(image, dtype=np.float64)
    except UnidentifiedImageError as e:
        raise OSError(
            f"{name!r} is not an image file that Pillow can read: not one of its formats, or "
            "truncated or corrupt."
        ) from e
    except OSError as e:
        if e.errno is not None:  # the system's own error (no such file...) names the file
            raise
        raise OSError(
            f"Could not read the image file {name!r}: {e}. If it is truncated or corrupt, save "
            "or download it again."
        ) from e
    if not np.isfinite(pixels).all():
        raise ValueError(
            f"The image {name!r} has non-finite pixels (NaN or infinity), which would make "
            "every output of the model NaN."
        )
    white = _WHITE_OF_DEEP_MODES[mode]
    if pixels.min() < 0 or pixels.max() > white:
        raise ValueError(
            f"The pixels of {name!r} (Pillow mode {mode}) range from {pixels.min():g} to "
            f"{pixels.max():g}, outside [0, {white:g}], so how bright they are is unknown: "
            "save it as an 8- or 16-bit image, or floating point in [0, 1]."
        )
    return Image.fromarray(np.round(pixels * (255 / white)).astype(np.uint8)).convert("RGB")


def load_image(path, size=_DEFAULT_WEIGHTS.input_size, crop_pct=_DEFAULT_WEIGHTS.crop_pct):
    """Loads an image for evaluation, as timm does for these checkpoints.

    Bicubic resize of the short side to `floor(size / crop_pct)`, then a
    centre crop of `size` x `size`. Images of more than 8 bits per channel are
    scaled to `[0, 255]` first (see `open_rgb`).

    Returns:
        A float32 array `(size, size, 3)`, RGB, in `[0, 255]`.

    Raises:
        OSError: if the file cannot be read as an image; the message names it.
        ValueError: if its pixels are not finite or out of their depth's range.
    """
    from PIL import Image

    image = open_rgb(path)
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
