"""Checkpoint converters, one module per source layout.

`timm.py` maps timm's `state_dict` onto the Keras layers, which carry timm's
module paths as names; `transformers.py` renames Hugging Face transformers'
layout (Apple's `apple/*` checkpoints) to timm's first; `keras_layout.py` reads
the package's own files, named by Keras variable paths.
"""

from keras_mobilevit.converters import keras_layout, timm, transformers


def load_checkpoint(model, tensors, source, include_top):
    """Assigns a checkpoint's tensors to `model`, all or nothing.

    Args:
        model: a built keras_mobilevit model.
        tensors: mapping of tensor name to numpy array, in timm's,
            transformers' or the package's own (Keras variable paths) layout.
        source: where the tensors came from, for error messages.
        include_top: whether to load the classifier (`head.*`) too.
    """
    if keras_layout.is_keras_layout(tensors):
        timm.assign(keras_layout.plan_assignments(model, tensors, source, include_top))
        return
    layout = "timm's"
    if transformers.is_transformers_layout(tensors):
        tensors = transformers.to_timm_layout(tensors, source)
        layout = "transformers'"
    ignore = () if include_top else ("head.",)
    timm.assign(timm.plan_assignments(model, tensors, source, ignore, layout))
