"""Semantic segmentation with keras-mobilevit: predict a mask, draw it, fine-tune.

    python examples/segmentation.py predict examples/cat.jpg --output cat-mask.png
    python examples/segmentation.py finetune --epochs 5 --output pets.keras

`predict` runs the PASCAL VOC DeepLabV3 model (weights from the Hugging Face Hub)
and saves the image with its mask drawn over it. `finetune` adapts the VOC model
to new classes, here the Oxford-IIIT Pet trimaps (pet, background, outline)
from tensorflow-datasets. (tensorflow-datasets' `voc/2012` has boxes but no
masks; any dataset of images and integer masks works the same way.)
Needs matplotlib (`predict`) and tensorflow-datasets (`finetune`).
"""

import argparse

import keras
import numpy as np

import keras_mobilevit

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip


def load_image(path, short_side=512):
    """RGB pixels in [0, 255], the short side resized to `short_side`."""
    from PIL import Image

    # As `keras-mobilevit predict` reads images: deep ones scaled, errors naming the file.
    image = keras_mobilevit.imagenet.open_rgb(path)
    scale = short_side / min(image.size)
    size = (round(image.width * scale), round(image.height * scale))
    return np.asarray(image.resize(size, Image.Resampling.BILINEAR), dtype=np.float32)


def predict_mask(model, image):
    """Per-pixel class indices for one `(H, W, 3)` image."""
    logits = model.predict(image[None], verbose=0)[0]
    if not np.isfinite(logits).all():
        # argmax would call every such pixel background.
        raise ValueError(
            "The model's outputs are not finite (NaN or infinity): check that the image's "
            "pixels are finite, in [0, 255], and the weights."
        )
    return np.argmax(logits, axis=-1)


def draw_mask(image, mask, class_names, path):
    """Saves the image with the mask drawn over it, and a legend of the classes present."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patches as mpatches
    import matplotlib.pyplot as plt

    colors = plt.get_cmap("tab20", len(class_names))
    figure, axis = plt.subplots(figsize=(8, 8 * image.shape[0] / image.shape[1]))
    axis.imshow(image.astype(np.uint8))
    overlay = colors(mask)
    overlay[..., 3] = np.where(mask > 0, 0.55, 0.0)  # background stays clear
    axis.imshow(overlay)
    present = [c for c in np.unique(mask) if c > 0]
    handles = [mpatches.Patch(color=colors(c), label=class_names[c]) for c in present]
    if handles:
        axis.legend(handles=handles, loc="lower right")
    axis.axis("off")
    figure.savefig(path, bbox_inches="tight")
    plt.close(figure)
    return path


def replace_classifier(model, classes):
    """The same network with a new 1x1 classifier, for fine-tuning on other classes."""
    features = model.get_layer("segmentation_head_dropout").output
    logits = keras.layers.Conv2D(classes, 1, name="segmentation_head_classifier")(features)
    logits = keras_mobilevit.ResizeLike(name="upsample")([logits, model.inputs[0]])
    return keras_mobilevit.MobileViTModel(
        model.input, logits, name=f"{model.name}_{classes}_classes"
    )


def pet_dataset(split, image_size, batch_size):
    """Oxford-IIIT Pet images with trimaps as masks (0 pet, 1 background, 2 outline)."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    def prepare(example):
        image = tf.image.resize(example["image"], (image_size, image_size))
        mask = tf.image.resize(example["segmentation_mask"], (image_size, image_size), "nearest")
        mask = tf.clip_by_value(tf.cast(mask[..., 0], tf.int32) - 1, 0, 2)
        return image, mask

    dataset = tfds.load("oxford_iiit_pet", split=split)
    return dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)


def finetune(weights="pascal_voc", epochs=5, image_size=256, batch_size=8, output=None):
    base = keras_mobilevit.MobileViT_XXS_DeepLabV3(weights=weights)
    model = replace_classifier(base, classes=3)
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.MeanIoU(num_classes=3, sparse_y_pred=False, name="mean_iou")],
    )
    history = model.fit(
        pet_dataset("train", image_size, batch_size),
        validation_data=pet_dataset("test", image_size, batch_size),
        epochs=epochs,
    )
    if output:
        model.save(output)
    return history


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="segment an image and draw the mask")
    predict.add_argument("image")
    predict.add_argument("--weights", default="pascal_voc")
    predict.add_argument("--output", default="mask.png")
    tune = commands.add_parser("finetune", help="fine-tune on Oxford-IIIT Pet trimaps")
    tune.add_argument("--weights", default="pascal_voc")
    tune.add_argument("--epochs", type=int, default=5)
    tune.add_argument("--image-size", type=int, default=256)
    tune.add_argument("--batch-size", type=int, default=8)
    tune.add_argument("--output")
    args = parser.parse_args(argv)
    if args.command == "predict":
        model = keras_mobilevit.MobileViT_XXS_DeepLabV3(weights=args.weights)
        image = load_image(args.image)
        print(draw_mask(image, predict_mask(model, image), VOC_CLASSES, args.output))
    else:
        finetune(args.weights, args.epochs, args.image_size, args.batch_size, args.output)


if __name__ == "__main__":
    main()
