"""Making a trained model cheaper to run: layers merged, optionally bfloat16.

At inference BatchNorm is an affine map per channel, `y * scale + shift`, with
`scale = gamma / sqrt(variance + epsilon)` and `shift = beta - mean * scale`. A
convolution followed by it is therefore one convolution with its kernel scaled
and a bias added. The folded graph does the same arithmetic with one full pass
over each activation map fewer, which is most of what BatchNorm costs on a CPU
(MobileViT's activation maps are large: 128x128x256 in MobileViT_S's second
stage). `optimize_for_inference` merges more in the same spirit: activations
into the layer before them, LayerNorm's scale and shift into the projection
after it, explicit padding into the strided depthwise convolution after it,
attention's query scaling into the query projection, the input's rescaling
into the first convolution.

bfloat16 halves the bytes of every activation and lets oneDNN use the CPU's
bfloat16 dot products (AVX512-BF16, AMX) where it has them; weights stay
float32 (Keras' `mixed_bfloat16` policy) and the outputs float32.
"""

import collections
import dataclasses

import keras
import numpy as np

from keras_mobilevit.layers import DotProductAttention
from keras_mobilevit.model import MobileViTModel

COMPUTE_DTYPES = ("float32", "bfloat16")


def optimize_for_inference(model, compute_dtype="float32"):
    """Returns a copy of `model` made for fast inference.

    Layers are merged where the arithmetic allows it, keeping the outputs to
    float32 rounding (about 1e-6 relative):

    - BatchNorm into the convolution before it (see `fold_batchnorm`);
    - an `Activation` into the convolution or `Dense` before it, when nothing
      else reads that layer's output (the keras_mobilevit layers then compute
      SiLU in the form oneDNN fuses into the convolution on TensorFlow);
    - a LayerNorm's scale and shift into the `Dense` that alone reads it;
    - the explicit zero padding before a stride-2 depthwise convolution into
      the convolution (a kernel one larger, with "same" padding);
    - attention's query scaling into the query projection's weights;
    - the input's `Rescaling` (a scale without an offset) into the kernel of
      the first convolution.

    With `compute_dtype="bfloat16"` every layer also computes in bfloat16
    under Keras' `mixed_bfloat16` policy, except the layers that produce the
    model's outputs, which stay float32 so that the outputs are float32.
    bfloat16 keeps 8 bits of mantissa: expect logits within about 1e-2
    relative of float32, and check the top-1 agreement on your own data
    before you ship it (see docs/performance.md for what was measured).

    The result is an ordinary functional Keras model: it saves, loads and
    exports like the original, and keeps the names of the layers it kept. It
    is for inference only.

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
    return _rebuild(
        model, "optimize_for_inference", merge_all=True, bfloat16=compute_dtype == "bfloat16"
    )


def fold_batchnorm(model):
    """Returns a copy of `model` with BatchNorm folded into the convolution before it.

    Every `BatchNormalization` over the channels that directly follows a
    `Conv2D` or `DepthwiseConv2D` (channels last, no activation of its own,
    whose output nothing else reads) is merged into that convolution, which
    gains a bias. Everything else, layer names included, is kept, so the
    result saves and loads with `model.save` / `keras.models.load_model` like
    any Keras model and exports the same way. `optimize_for_inference` does
    this and more.

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
    return _rebuild(model, "fold_batchnorm", merge_all=False, bfloat16=False)


@dataclasses.dataclass
class _Graph:
    """What the rewrites ask of a functional model's config."""

    config: dict
    layers: dict  # name -> layer of the original model

    def __post_init__(self):
        self.configs = {c["name"]: c for c in self.config["layers"]}
        self.outputs = {name for name, *_ in _histories(self.config["output_layers"])}
        self.readers = collections.defaultdict(list)  # name -> names of the layers reading it
        for layer_config in self.config["layers"]:
            for source in _sources(layer_config):
                self.readers[source].append(layer_config["name"])

    def sole_source(self, name):
        """The layer whose output alone feeds `name`, if `name` is called once on one tensor."""
        sources = list(_sources(self.configs[name]))
        if self.called_once(name) and len(sources) == 1:
            return self.layers[sources[0]]
        return None

    def read_once(self, name):
        """Whether one layer reads `name`'s output, once, and the model does not return it."""
        return len(self.readers[name]) == 1 and name not in self.outputs

    def called_once(self, name):
        return len(self.configs[name]["inbound_nodes"]) == 1


@dataclasses.dataclass
class _Merges:
    """The planned rewrites, each as removed or changed layer -> the layer it goes into."""

    batchnorms: dict  # BatchNormalization -> convolution
    activations: dict = dataclasses.field(default_factory=dict)  # Activation -> layer
    layer_norms: dict = dataclasses.field(default_factory=dict)  # LayerNormalization -> Dense
    paddings: dict = dataclasses.field(default_factory=dict)  # ZeroPadding2D -> depthwise
    query_scales: dict = dataclasses.field(default_factory=dict)  # attention -> its qkv Dense
    rescalings: dict = dataclasses.field(default_factory=dict)  # Rescaling -> convolution


def _rebuild(model, caller, merge_all, bfloat16):
    config = model.get_config() if isinstance(model, keras.Model) else None
    if not isinstance(config, dict) or "input_layers" not in config:
        raise TypeError(
            f"{caller} takes a functional keras.Model, such as the models the "
            f"keras_mobilevit builders return; got {type(model).__name__}. Rebuild a "
            "Sequential or subclassed model with the functional API first."
        )
    graph = _Graph(config, {layer.name: layer for layer in model.layers})
    merges = _Merges(_foldable_batchnorms(graph))
    if merge_all:
        merges.activations = _foldable_activations(graph, merges.batchnorms)
        merges.layer_norms = _foldable_layer_norms(graph)
        merges.paddings = _foldable_paddings(graph)
        merges.query_scales = _foldable_query_scales(graph)
        merges.rescalings = _foldable_rescalings(graph)
    config = _merged_config(graph, merges)
    if bfloat16:
        _set_mixed_bfloat16(config)
    return _copy(config, merges, graph.layers)


def _foldable_batchnorms(graph):
    folds = {}
    for name, norm in graph.layers.items():
        if not isinstance(norm, keras.layers.BatchNormalization):
            continue
        conv = graph.sole_source(name)
        if (
            isinstance(conv, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))
            and conv.data_format == "channels_last"
            and conv.activation is keras.activations.linear
            and graph.read_once(conv.name)
            and norm.axis in (-1, len(norm.input.shape) - 1)
        ):
            folds[name] = conv.name
    return folds


def _foldable_activations(graph, batchnorms):
    """The `Activation` layers that become the activation of the layer before them.

    Those that alone read the output of a folded BatchNorm, or of a
    convolution or `Dense` with no activation of its own: one layer fewer,
    and the keras_mobilevit layers compute SiLU in the form oneDNN fuses into
    the convolution or matrix product (see `keras_mobilevit.kernels.tensorflow`).
    Outputs of the model keep their layer, whose name is the output's name.
    """
    absorbing = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
    merged = {}
    for name, activation in graph.layers.items():
        source = (
            graph.sole_source(name) if isinstance(activation, keras.layers.Activation) else None
        )
        if source is None or name in graph.outputs or not graph.read_once(source.name):
            continue
        if source.name in batchnorms:
            merged[name] = batchnorms[source.name]
        elif (
            isinstance(source, absorbing)
            and source.activation is keras.activations.linear
            and graph.called_once(source.name)
        ):
            merged[name] = source.name
    return merged


def _foldable_layer_norms(graph):
    """The LayerNorms whose scale and shift can move into the `Dense` that alone reads them.

    `Dense(LayerNorm(x))` is `x` normalised, times a kernel with its rows
    scaled by gamma, plus a bias that gains `beta @ kernel`: two passes over
    the tokens fewer (the projections after a transformer's norms).
    """
    folds = {}
    for name, norm in graph.layers.items():
        if (
            not isinstance(norm, keras.layers.LayerNormalization)
            or norm.rms_scaling
            or not (norm.scale or norm.center)
            or [axis % len(norm.input.shape) for axis in norm.axis] != [len(norm.input.shape) - 1]
            or not graph.called_once(name)
            or not graph.read_once(name)
        ):
            continue
        dense = graph.layers[graph.readers[name][0]]
        if (
            isinstance(dense, keras.layers.Dense)
            and graph.called_once(dense.name)
            and dense.quantization_mode is None
        ):
            folds[name] = dense.name
    return folds


def _foldable_paddings(graph):
    """The zero paddings that a strided depthwise convolution after them can do itself.

    timm pads a stride-2 `k x k` convolution by `k // 2` on every side;
    TensorFlow's "same" padding would pad the top and left less, so the
    models pad explicitly, which costs a pass over the map. A `(k + 1) x (k + 1)`
    kernel with a last row and column of zeros and "same" padding gives the
    same outputs for every input size, and a depthwise convolution costs no
    more for it: it reads each input once either way.
    """
    folds = {}
    for name, conv in graph.layers.items():
        pad = graph.sole_source(name)
        if not isinstance(conv, keras.layers.DepthwiseConv2D) or pad is None:
            continue
        size, other_size = conv.kernel_size
        if (
            isinstance(pad, keras.layers.ZeroPadding2D)
            and pad.data_format == conv.data_format == "channels_last"
            and graph.read_once(pad.name)
            and graph.called_once(pad.name)
            and size == other_size
            and size % 2 == 1
            and tuple(map(tuple, pad.padding)) == ((size // 2, size // 2),) * 2
            and conv.padding == "valid"
            and tuple(conv.strides) == (2, 2)
            and tuple(conv.dilation_rate) == (1, 1)
        ):
            folds[pad.name] = name
    return folds


def _foldable_query_scales(graph):
    """The attention layers whose query scaling can move into the projection before them.

    `softmax(q k^T * s)` is `softmax((q * s) k^T)`, and `q * s` is the `Dense`
    with its query columns scaled: one multiplication over the queries fewer
    per transformer layer.
    """
    folds = {}
    for name, attention in graph.layers.items():
        if not isinstance(attention, DotProductAttention):
            continue
        dense = graph.sole_source(name)
        if (
            isinstance(dense, keras.layers.Dense)
            and attention.query_scale(dense.units) != 1.0
            and dense.activation is keras.activations.linear
            and dense.quantization_mode is None
            and graph.called_once(dense.name)
            and graph.read_once(dense.name)
        ):
            folds[name] = dense.name
    return folds


def _foldable_rescalings(graph):
    """The `Rescaling`s whose scale can move into the kernel of the convolution they feed.

    A rescaling without an offset commutes with zero padding and with the
    convolution's sum, so `conv(pad(x * s))` is `x` padded and convolved with
    the kernel's input channels scaled by `s`: one pass over the input fewer.
    """
    folds = {}
    for name, rescaling in graph.layers.items():
        if (
            not isinstance(rescaling, keras.layers.Rescaling)
            or np.any(np.asarray(rescaling.offset) != 0)
            or not graph.called_once(name)
            or not keras.backend.is_float_dtype(rescaling.input.dtype)
        ):
            continue
        reader = name
        while graph.read_once(reader):
            reader = graph.readers[reader][0]
            layer = graph.layers[reader]
            if not isinstance(layer, keras.layers.ZeroPadding2D) or not graph.called_once(reader):
                break
        conv = graph.layers[reader]
        if (
            reader != name
            and isinstance(conv, keras.layers.Conv2D)
            and graph.called_once(reader)
            and conv.data_format == "channels_last"
            and (conv.groups == 1 or np.ndim(rescaling.scale) == 0)
            and getattr(conv, "quantization_mode", None) is None
        ):
            folds[name] = reader
    return folds


def _merged_config(graph, merges):
    # A reference to a removed layer becomes one to the layer that took its
    # place, or, for a removed padding, to the padding's input.
    replaced = {**merges.batchnorms, **merges.activations}
    bypassed = {
        name: next(_histories(graph.configs[name]["inbound_nodes"]))
        for name in [*merges.paddings, *merges.rescalings]
    }

    def rewire(value):
        if isinstance(value, dict):
            return {key: rewire(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            if _is_history(value):
                if value[0] in bypassed:
                    return rewire(bypassed[value[0]])
                return [replaced.get(value[0], value[0]), *value[1:]]
            return [rewire(item) for item in value]
        return value

    activation_of = {layer: name for name, layer in merges.activations.items()}
    biased = set(merges.batchnorms.values()) | {
        dense for norm, dense in merges.layer_norms.items() if graph.layers[norm].center
    }
    padded = set(merges.paddings.values())
    config = rewire(graph.config)
    kept = []
    for layer_config in config["layers"]:
        name, settings = layer_config["name"], layer_config["config"]
        if name in replaced or name in bypassed:
            continue
        if name in biased:
            settings["use_bias"] = True
        if name in activation_of:
            settings["activation"] = graph.configs[activation_of[name]]["config"]["activation"]
        if name in merges.layer_norms:
            settings.update(scale=False, center=False)
        if name in padded:
            size = settings["kernel_size"][0] + 1
            settings.update(kernel_size=[size, size], padding="same")
        if name in merges.query_scales:
            settings["scale"] = 1.0
        kept.append(layer_config)
    config["layers"] = kept
    return config


def _copy(config, merges, layers):
    # The merges compute in float64 and chain (BatchNorm, then the input's
    # rescaling, into the stem; LayerNorm, then the query scaling, into qkv), so
    # each layer's weights are rounded to its dtype once, when they are set.
    merged = MobileViTModel.from_config(config)
    norm_of = {conv: norm for norm, conv in merges.batchnorms.items()}
    layer_norm_of = {dense: norm for norm, dense in merges.layer_norms.items()}
    padded = set(merges.paddings.values())
    query_scale_of = {dense: attention for attention, dense in merges.query_scales.items()}
    rescaling_of = {conv: rescaling for rescaling, conv in merges.rescalings.items()}
    for layer in merged.layers:
        source = layers[layer.name]
        if layer.name in merges.layer_norms:
            continue  # its scale and shift moved into the Dense after it
        if layer.name in norm_of:
            weights = _folded_weights(source, layers[norm_of[layer.name]])
        elif layer.name in layer_norm_of:
            weights = _dense_after_norm_weights(source, layers[layer_norm_of[layer.name]])
        else:
            weights = source.get_weights()
        if layer.name in padded:
            # The kernel grows by a last row and column of zeros.
            kernel = np.zeros(
                (weights[0].shape[0] + 1,) * 2 + weights[0].shape[2:], weights[0].dtype
            )
            kernel[:-1, :-1] = weights[0]
            weights = [kernel, *weights[1:]]
        if layer.name in query_scale_of:
            attention = layers[query_scale_of[layer.name]]
            weights = _with_scaled_queries(weights, attention.query_scale(layer.units))
        if layer.name in rescaling_of:
            weights = _with_scaled_inputs(weights, layers[rescaling_of[layer.name]].scale)
        layer.set_weights(
            [np.asarray(w, v.dtype) for w, v in zip(weights, layer.weights, strict=True)]
        )
    return merged


def _dense_after_norm_weights(dense, norm):
    kernel = _numpy(dense.kernel, np.float64)
    bias = _numpy(dense.bias, np.float64) if dense.use_bias else np.zeros(kernel.shape[-1])
    if norm.center:
        bias = bias + _numpy(norm.beta, np.float64) @ kernel
    if norm.scale:
        kernel = kernel * _numpy(norm.gamma, np.float64)[:, None]
    return [kernel] + ([bias] if dense.use_bias or norm.center else [])


def _with_scaled_queries(weights, scale):
    # The queries are the first third of the fused projection's outputs.
    queries = weights[0].shape[-1] // 3
    scaled = [weight.astype(np.float64) for weight in weights]
    for weight in scaled:
        weight[..., :queries] *= scale
    return scaled


def _with_scaled_inputs(weights, scale):
    # The kernel's input channels are its second-to-last axis.
    kernel = weights[0].astype(np.float64) * np.reshape(np.asarray(scale, np.float64), (-1, 1))
    return [kernel, *weights[1:]]


def _set_mixed_bfloat16(config):
    outputs = {name for name, *_ in _histories(config["output_layers"])}
    policy = keras.dtype_policies.serialize(keras.DTypePolicy("mixed_bfloat16"))
    for layer_config in config["layers"]:
        settings = layer_config["config"]
        if layer_config["class_name"] != "InputLayer" and layer_config["name"] not in outputs:
            settings["dtype"] = policy


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
    return [kernel, bias]


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
