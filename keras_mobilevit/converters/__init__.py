"""Checkpoint converters, one module per source layout.

`timm.py` maps timm's `state_dict` onto the Keras layers, which carry timm's
module paths as names; `transformers.py` renames Hugging Face transformers'
layout (Apple's `apple/*` checkpoints) to timm's first.
"""

from keras_mobilevit.converters import timm, transformers


def load_checkpoint(model, tensors, source, include_top):
    """Assigns a checkpoint's tensors to `model`, all or nothing.

    Args:
        model: a built keras_mobilevit model.
        tensors: mapping of tensor name to numpy array, in timm's or
            transformers' layout.
        source: where the tensors came from, for error messages.
        include_top: whether to load the classifier (`head.*`) too.
    """
    layout = "timm's"
    if transformers.is_transformers_layout(tensors):
        tensors = transformers.to_timm_layout(tensors, source)
        layout = "transformers'"
    ignore = () if include_top else ("head.",)
    timm.assign(timm.plan_assignments(model, tensors, source, ignore, layout))
