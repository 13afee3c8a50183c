"""Making a trained model cheaper to run: BatchNorm folded, optionally bfloat16.

At inference BatchNorm is an affine map per channel, `y * scale + shift`, with
`scale = gamma / sqrt(variance + epsilon)` and `shift = beta - mean * scale`. A
convolution followed by it is therefore one convolution with its kernel scaled
and a bias added. The folded graph does the same arithmetic with one full pass
over each activation map fewer, which is most of what BatchNorm costs on a CPU
(MobileViT's activation maps are large: 128x128x256 in MobileViT_S's second
stage).

bfloat16 halves the bytes of every activation and lets oneDNN use the CPU's
bfloat16 dot products (AVX512-BF16, AMX) where it has them; weights stay
float32 (Keras' `mixed_bfloat16` policy) and the outputs float32.
"""

import collections

import keras
import numpy as np

COMPUTE_DTYPES = ("float32", "bfloat16")


def optimize_for_inference(model, compute_dtype="float32"):
    """Returns a copy of `model` made for fast inference.

    BatchNorm is folded into the convolutions (see `fold_batchnorm`), which
    keeps the outputs to float32 rounding. With `compute_dtype="bfloat16"`
    every layer also computes in bfloat16 under Keras' `mixed_bfloat16`
    policy, except the layers that produce the model's outputs, which stay
    float32 so that the outputs are float32. bfloat16 keeps 8 bits of
    mantissa: expect logits within about 1e-2 relative of float32, and check
    the top-1 agreement on your own data before you ship it (see
    docs/performance.md for what was measured).

    The result is an ordinary functional Keras model: it saves, loads and
    exports like the original. It is for inference only.

    Args:
        model: a functional `keras.Model`, e.g. from a keras_mobilevit builder.
        compute_dtype: `"float32"` or `"bfloat16"`.

    Example:

    ```python
    model = keras_mobilevit.MobileViT_S(weights="imagenet")
    fast = keras_mobilevit.optimize_for_inference(model, compute_dtype="bfloat16")
    ```
    """
    if compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(
            f"compute_dtype={compute_dtype!r} is not supported; valid: {', '.join(COMPUTE_DTYPES)}."
        )
    return _rebuild(model, "optimize_for_inference", mixed_bfloat16=compute_dtype == "bfloat16")


def fold_batchnorm(model):
    """Returns a copy of `model` with BatchNorm folded into the convolution before it.

    Every `BatchNormalization` over the channels that directly follows a
    `Conv2D` or `DepthwiseConv2D` (channels last, no activation of its own,
    whose output nothing else reads) is merged into that convolution, which
    gains a bias. Everything else, layer names included, is kept, so the
    result saves and loads with `model.save` / `keras.models.load_model` like
    any Keras model and exports the same way.

    The folded model is for inference: it computes what `model` computes with
    `training=False` (to float32 rounding, about 1e-6 relative), and has no
    BatchNorm left to train. Fold after loading or fine-tuning the weights.

    Args:
        model: a functional `keras.Model`, e.g. as returned by
            `keras_mobilevit.MobileViT_S()`. Models nested inside it as layers
            are kept as they are.

    Returns:
        A new functional `keras.Model`; `model` is not changed.

    Example:

    ```python
    model = keras_mobilevit.fold_batchnorm(keras_mobilevit.MobileViT_S(weights="imagenet"))
    ```
    """
    return _rebuild(model, "fold_batchnorm", mixed_bfloat16=False)


def _rebuild(model, caller, mixed_bfloat16):
    config = model.get_config() if isinstance(model, keras.Model) else None
    if not isinstance(config, dict) or "input_layers" not in config:
        raise TypeError(
            f"{caller} takes a functional keras.Model, such as the models the "
            f"keras_mobilevit builders return; got {type(model).__name__}. Rebuild a "
            "Sequential or subclassed model with the functional API first."
        )
    layers = {layer.name: layer for layer in model.layers}
    folds = _foldable_pairs(config, layers)  # BatchNorm name -> convolution name
    config = _fold_config(config, folds)
    if mixed_bfloat16:
        _set_mixed_bfloat16(config)
    return _copy(config, folds, layers)


def _foldable_pairs(config, layers):
    readers = collections.Counter(
        source for layer_config in config["layers"] for source in _sources(layer_config)
    )
    readers.update(name for name, *_ in _histories(config["output_layers"]))
    folds = {}
    for layer_config in config["layers"]:
        norm = layers[layer_config["name"]]
        if not isinstance(norm, keras.layers.BatchNormalization):
            continue
        sources = list(_sources(layer_config))
        if len(layer_config["inbound_nodes"]) != 1 or len(sources) != 1:
            continue
        conv = layers[sources[0]]
        if (
            isinstance(conv, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))
            and conv.data_format == "channels_last"
            and conv.activation is keras.activations.linear
            and readers[conv.name] == 1
            and norm.axis in (-1, len(norm.input.shape) - 1)
        ):
            folds[norm.name] = conv.name
    return folds


def _fold_config(config, folds):
    def rewire(value):
        if isinstance(value, dict):
            return {key: rewire(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            if _is_history(value):
                return [folds.get(value[0], value[0]), *value[1:]]
            return [rewire(item) for item in value]
        return value

    config = rewire(config)
    convs = set(folds.values())
    kept = []
    for layer_config in config["layers"]:
        if layer_config["name"] in folds:
            continue
        if layer_config["name"] in convs:
            layer_config["config"]["use_bias"] = True
        kept.append(layer_config)
    config["layers"] = kept
    return config


def _set_mixed_bfloat16(config):
    outputs = {name for name, *_ in _histories(config["output_layers"])}
    policy = keras.dtype_policies.serialize(keras.DTypePolicy("mixed_bfloat16"))
    for layer_config in config["layers"]:
        settings = layer_config["config"]
        if layer_config["class_name"] != "InputLayer" and layer_config["name"] not in outputs:
            settings["dtype"] = policy


def _copy(config, folds, layers):
    folded = keras.Model.from_config(config)
    norm_of = {conv: norm for norm, conv in folds.items()}
    for layer in folded.layers:
        source = layers[layer.name]
        if layer.name in norm_of:
            layer.set_weights(_folded_weights(source, layers[norm_of[layer.name]]))
        else:
            layer.set_weights(source.get_weights())
    return folded


def _folded_weights(conv, norm):
    # float64, so that folding adds no rounding of its own.
    variance = _numpy(norm.moving_variance, np.float64)
    scale = 1.0 / np.sqrt(variance + norm.epsilon)
    if norm.scale:
        scale = scale * _numpy(norm.gamma, np.float64)
    shift = -_numpy(norm.moving_mean, np.float64) * scale
    if norm.center:
        shift = shift + _numpy(norm.beta, np.float64)
    kernel = _numpy(conv.kernel, np.float64)
    if isinstance(conv, keras.layers.DepthwiseConv2D):
        # Output channel c * depth_multiplier + m comes from kernel[..., c, m].
        kernel = kernel * scale.reshape(kernel.shape[-2:])
    else:
        kernel = kernel * scale
    bias = shift
    if conv.use_bias:
        bias = bias + _numpy(conv.bias, np.float64) * scale
    dtype = conv.kernel.dtype
    return [kernel.astype(dtype), bias.astype(dtype)]


def _numpy(variable, dtype):
    return keras.ops.convert_to_numpy(variable).astype(dtype)


def _histories(value):
    """Every `[layer name, node index, tensor index]` a config refers to.

    Tensors' `keras_history` and the model's `output_layers` both hold them.
    """
    if isinstance(value, dict):
        for item in value.values():
            yield from _histories(item)
    elif isinstance(value, list | tuple):
        if _is_history(value):
            yield value
        else:
            for item in value:
                yield from _histories(item)


def _is_history(value):
    return len(value) == 3 and isinstance(value[0], str) and isinstance(value[1], int)


def _sources(layer_config):
    for name, *_ in _histories(layer_config["inbound_nodes"]):
        yield name
