"""Fine-tuning a MobileViT on an image classification dataset: the transfer-learning recipe.

`finetune()` (in `recipe`) is what `keras-mobilevit train` runs; `data`, `classifier`,
`distribution`, `loop`, `run_dir` and `evaluation` do its steps, and `keras_mobilevit.hub`
publishes the result (see docs/training.md). The data pipeline is TensorFlow's (`tf.data`,
tensorflow-datasets) whatever the Keras backend, imported only when a function needs it so
that `import keras_mobilevit` stays light: `pip install "keras-mobilevit[train]"`.
"""

from keras_mobilevit.hub import HubUploadError, push_to_hub
from keras_mobilevit.training.classifier import build_classifier
from keras_mobilevit.training.data import eval_pipeline, eval_transform, load_data, train_pipeline
from keras_mobilevit.training.evaluation import confusion_matrix, evaluate, macro_f1, per_class_f1
from keras_mobilevit.training.recipe import FinetuneResult, finetune

__all__ = [
    "finetune",
    "FinetuneResult",
    "load_data",
    "train_pipeline",
    "eval_pipeline",
    "eval_transform",
    "build_classifier",
    "evaluate",
    "confusion_matrix",
    "per_class_f1",
    "macro_f1",
    "push_to_hub",
    "HubUploadError",
]
