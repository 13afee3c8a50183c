"""Fine-tunes a tiny classifier on one device and on two, and reports both runs.

Run by `tests/test_training.py` in a process of its own, where the two devices
can be made before the backend starts: TensorFlow's logical devices (set up
here), or XLA's host platform split in two for JAX (`XLA_FLAGS`).

    python tests/finetune_on_two_devices.py CLASS_FOLDERS OUTPUT_DIR
"""

import json
import sys

import keras

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from keras_mobilevit import training  # noqa: E402  (after the devices are made)


def main(folder, output):
    result = {}
    for distribute in (None, "mirrored"):
        finetuned = training.finetune(
            dataset=folder, model="MobileViT_XXS", weights=None, image_size=32, epochs=3,
            freeze_backbone_epochs=3, batch_size=8, learning_rate=2e-3,
            output_dir=f"{output}/{distribute}", distribute=distribute, seed=0,
        )  # fmt: skip
        if keras.backend.backend() == "tensorflow":
            replicas = finetuned.model.distribute_strategy.num_replicas_in_sync
        else:  # the devices the classifier's weights live on
            replicas = len(finetuned.model.get_layer("head_fc").kernel.value.sharding.device_set)
        with open(f"{output}/{distribute}/run.json", encoding="utf-8") as f:
            run = json.load(f)
        result[str(distribute)] = {
            "loss": finetuned.history.history["loss"],
            "replicas": replicas,
            "run": run,
            "test_examples": finetuned.metrics["test_examples"],
        }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
