"""The classifier the recipe trains: the builder's own, its backbone initialised from
pretrained weights, compiled with AdamW, warm-up and cosine decay, and label smoothing.
"""

import keras

from keras_mobilevit.builder import REGISTRY

# The learning rate when `learning_rate=None`: per 256 images of (global) batch,
# scaled linearly with the batch size. Fine-tuning pretrained weights takes a
# quarter of the rate that training from scratch does (8e-3 per 256 is 2e-3 at
# batch 64, keras.io's MobileViT-from-scratch recipe on tf_flowers).
PRETRAINED_LR_PER_256 = 2e-3
SCRATCH_LR_PER_256 = 8e-3
# The head-only epochs of `freeze_backbone_epochs` train a new classifier on
# frozen features, which takes a larger step than fine-tuning everything.
HEAD_LR_MULTIPLIER = 10.0
WEIGHT_DECAY = 0.01  # ml-cvnets' AdamW weight decay for MobileViT; not on norms or biases
WARMUP_FRACTION = 0.05  # of the steps of each phase, linear from 0, then cosine to 0


def default_learning_rate(pretrained, batch_size):
    """The peak learning rate for `batch_size`, scaled linearly from the rate per 256 images."""
    per_256 = PRETRAINED_LR_PER_256 if pretrained else SCRATCH_LR_PER_256
    return per_256 * batch_size / 256


def build_classifier(model, weights, num_classes, image_size):
    """`model`'s classifier for `num_classes`, its backbone initialised from `weights`.

    The classifier is the builder's own (`include_top=True`), so the trained
    model has the builder's layers and loads back with
    `keras_mobilevit.<model>(weights=..., classes=num_classes)`. Pretrained
    weights are loaded into a model without top and copied layer by layer.
    """
    builder = REGISTRY[model].builder
    shape = (image_size, image_size, 3)
    classifier = builder(weights=None, include_top=True, classes=num_classes, input_shape=shape)
    if weights is not None:
        backbone = builder(weights=weights, include_top=False, input_shape=shape)
        for layer in backbone.layers:
            if layer.weights:
                classifier.get_layer(layer.name).set_weights(layer.get_weights())
    return classifier


def is_head(layer):
    """Whether `layer` is part of the classifier, trained in the head-only epochs."""
    return layer.name.startswith("head_") or layer.name == "predictions"


def compile_classifier(model, learning_rate, total_steps, label_smoothing, num_classes):
    """Compiles `model` for a phase of `total_steps`: the recipe's optimizer, loss and metrics.

    AdamW with a linear warm-up to `learning_rate` and a cosine decay to 0,
    label-smoothed cross-entropy, top-1 accuracy (and top-5 above 5 classes).
    """
    warmup = int(WARMUP_FRACTION * total_steps)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else learning_rate,
        decay_steps=max(1, total_steps - warmup),
        warmup_target=learning_rate if warmup else None,
        warmup_steps=warmup,
    )
    optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=WEIGHT_DECAY)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
    if num_classes > 5:
        metrics.append(keras.metrics.TopKCategoricalAccuracy(k=5, name="top5_accuracy"))
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
        metrics=metrics,
    )
