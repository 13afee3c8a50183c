"""PyTorch kernels: channels-first views, oneDNN instead of MKL, the fused attention, and
a functional model run without `Layer.__call__`'s bookkeeping.

Measured on a 2-core AMD EPYC (Zen 5) with torch 2.14's CPU kernels: see
docs/performance.md#backend-kernels. Gated to CPU tensors (and the matrix
products to AMD CPUs); other devices keep Keras' path.
"""

import collections
import functools
import inspect

import keras
from keras import ops

from keras_mobilevit.kernels import Kernel


def _on_cpu(tensor):
    # Symbolic shape inference runs on "meta" tensors, which take Keras' path.
    return str(getattr(tensor, "device", "")).startswith("cpu")


@functools.cache
def _cpu_vendor():
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return None


def _channels_last_on_cpu(layer, inputs):
    return layer.data_format == "channels_last" and _on_cpu(inputs)


def _channels_first_convolution(convolution, inputs, kernel, **settings):
    """A channels-last convolution run as a channels-first one on transposed views.

    An NHWC tensor seen as NCHW is what PyTorch calls the channels-last memory
    format, which oneDNN convolves in place and answers in kind: no copies.
    Keras' own path copies the input twice (to contiguous NCHW, then to
    channels-last memory).
    """
    outputs = convolution(
        ops.transpose(inputs, (0, 3, 1, 2)), kernel, data_format="channels_first", **settings
    )
    return ops.transpose(outputs, (0, 2, 3, 1))


def _finish(layer, x):
    return layer.activation(ops.add(x, layer.bias) if layer.use_bias else x)


def convolution(layer, inputs):
    """A convolution or depthwise convolution on a channels-first view of the NHWC input."""
    depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
    outputs = _channels_first_convolution(
        ops.depthwise_conv if depthwise else ops.conv,
        inputs,
        layer.kernel,
        strides=layer.strides,
        padding=layer.padding,
        dilation_rate=layer.dilation_rate,
    )
    return _finish(layer, outputs)


def _tokens_on_amd_cpu(layer, inputs):
    return len(inputs.shape) >= 2 and _on_cpu(inputs) and _cpu_vendor() == "AuthenticAMD"


def dense(layer, inputs):
    """`Dense` as a 1x1 convolution over a `(1, T, 1, C)` view of the tokens.

    PyTorch's CPU matrix products go to MKL, which on AMD CPUs runs at half
    the speed of oneDNN's convolution for MobileViT's token shapes.
    """
    shape = ops.shape(inputs)
    pixels = ops.reshape(inputs, (1, -1, 1, shape[-1]))
    kernel = ops.reshape(layer.kernel, (1, 1, *layer.kernel.shape))
    x = _finish(layer, _channels_first_convolution(ops.conv, pixels, kernel))
    return ops.reshape(x, (*shape[:-1], layer.units))


def _qkv_on_cpu(layer, qkv):
    return _on_cpu(qkv)


def attention(layer, qkv):
    """PyTorch's fused attention kernel, reading the heads in place from the fused qkv."""
    dim = qkv.shape[-1] // 3
    sequence_length = ops.shape(qkv)[1]
    qkv = ops.reshape(qkv, (-1, sequence_length, 3 * layer.num_heads, dim // layer.num_heads))
    query, key, value = ops.split(qkv, 3, axis=2)
    x = ops.dot_product_attention(query, key, value, scale=layer.query_scale(3 * dim))
    return ops.reshape(x, (-1, sequence_length, dim))


KERNELS = {
    "conv2d": (Kernel(_channels_last_on_cpu, convolution),),
    "depthwise_conv2d": (Kernel(_channels_last_on_cpu, convolution),),
    "dense": (Kernel(_tokens_on_amd_cpu, dense),),
    "attention": (Kernel(_qkv_on_cpu, attention),),
}


# -- a functional model's inference without Layer.__call__ --------------------------------
#
# On PyTorch, Keras runs a functional model eagerly, layer by layer, and each
# `Layer.__call__` binds arguments, converts inputs, resolves training and
# masks, opens scopes and tracks the call. Where none of that can change the
# result, `run_model` calls each layer's `call` directly, in Keras' order.
#
# It reads these Keras internals, by these names; where one is missing (a Keras
# release that renamed it), the model takes Keras' path.
KERAS_INTERNALS = {
    "nodes_by_depth": "_nodes_by_depth",  # Functional: depth -> nodes, the call order
    "standardize_inputs": "_standardize_inputs",  # Functional: inputs -> flat list
    "outputs_struct": "_outputs_struct",  # Functional: the nesting of the outputs
    "arguments": "arguments",  # Node: the call's args and kwargs, Keras tensors inside
    "remat_mode": "_remat_mode",  # Layer: rematerialisation (Keras 3.9 and later)
    "get_keras_mask": "get_keras_mask",  # keras.src.backend: an eager tensor's mask
}


def run_model(model, inputs, training):
    """`model(inputs)` by direct layer calls, or `None` where that is not the same.

    It is the same when `training` is unset or false, there is one input,
    already in the model's dtype, without a mask, and every layer computes
    in its variables' dtype, unquantized, without rematerialisation or an
    activity regulariser. Outputs are bit-identical to Keras' path (tested).
    """
    if training:
        return None
    plan = _plan(model)
    if plan is None:
        return None
    flat = _internal(model, "standardize_inputs")(inputs)
    if not plan.accepts(flat):
        return None
    return plan.run(flat[0], training)


def _internal(obj, key):
    return getattr(obj, KERAS_INTERNALS[key])


def _plan(model):
    plan = model.__dict__.get("_direct_calls_plan")
    if plan is None or not plan.is_current():
        plan = _DirectCalls.of(model)
        # Not through Layer.__setattr__: the plan is a cache, not state to track.
        object.__setattr__(model, "_direct_calls_plan", plan)
    return plan if plan.steps is not None else None


def _mask_of(tensor):
    """The Keras mask on an eager tensor; raises `_NotDirectError` if Keras' API moved."""
    from keras.src import backend as keras_backend

    get_keras_mask = getattr(keras_backend, KERAS_INTERNALS["get_keras_mask"], None)
    if get_keras_mask is None:
        raise _NotDirectError("get_keras_mask")
    return get_keras_mask(tensor)


class _DirectCalls:
    """A functional model's layer calls, resolved once into a flat list of steps."""

    def __init__(self, model, steps, policies, input_dtype, outputs_struct):
        self.steps = steps  # None when the model cannot run this way
        self.policies = policies
        self.input_dtype = input_dtype
        self.outputs_struct = outputs_struct
        self.input_id = id(model.inputs[0]) if len(model.inputs) == 1 else None
        self.output_ids = [id(tensor) for tensor in model.outputs]

    @classmethod
    def of(cls, model):
        policies = [(layer, layer.dtype_policy) for layer in model.layers]
        input_dtype = model.inputs[0].dtype if len(model.inputs) == 1 else None
        try:
            missing = [k for k, name in KERAS_INTERNALS.items() if not _has_internal(model, k)]
            if missing:
                raise _NotDirectError(missing)
            outputs_struct = _internal(model, "outputs_struct")
            steps = _steps(model, _nodes_in_call_order(model), input_dtype)
        except _NotDirectError:
            steps = outputs_struct = None
        return cls(model, steps, policies, input_dtype, outputs_struct)

    def is_current(self):
        """False once a layer's dtype policy changed (mixed precision set, quantized)."""
        return all(layer.dtype_policy is policy for layer, policy in self.policies)

    def accepts(self, flat_inputs):
        if len(flat_inputs) != 1:
            return False
        x = flat_inputs[0]
        try:
            unmasked = _mask_of(x) is None
        except _NotDirectError:
            return False
        return (
            not isinstance(x, keras.KerasTensor)
            and _on_cpu(x)
            and keras.backend.standardize_dtype(x.dtype) == self.input_dtype
            and unmasked
        )

    def run(self, x, training):
        values = {self.input_id: x}
        for step in self.steps:
            kwargs = {key: _fill(value, values) for key, value in step.kwargs.items()}
            if step.takes_training and training is not None:
                kwargs["training"] = training
            result = step.call(*[_fill(arg, values) for arg in step.args], **kwargs)
            if len(step.outputs) == 1:
                values[step.outputs[0]] = result
            else:
                for output, value in zip(step.outputs, keras.tree.flatten(result), strict=True):
                    values[output] = value
            for tensor_id in step.release:
                del values[tensor_id]
        flat = [values[output] for output in self.output_ids]
        return keras.tree.pack_sequence_as(self.outputs_struct, flat)


def _has_internal(model, key):
    if key == "arguments":
        return all(hasattr(node, KERAS_INTERNALS[key]) for node in _nodes_in_call_order(model))
    if key == "remat_mode":
        # Keras before 3.9 has no rematerialisation, and no attribute for it.
        has_remat = hasattr(keras, "RematScope")
        return not has_remat or all(hasattr(layer, KERAS_INTERNALS[key]) for layer in model.layers)
    if key == "get_keras_mask":
        from keras.src import backend as keras_backend

        return hasattr(keras_backend, KERAS_INTERNALS[key])
    return hasattr(model, KERAS_INTERNALS[key])


_Step = collections.namedtuple(
    "_Step", ["call", "args", "kwargs", "takes_training", "outputs", "release"]
)


class _NotDirectError(Exception):
    """The model has a layer or a connection the direct path does not reproduce."""


class _Tensor:
    """Placeholder, in a step's arguments, for the tensor with this id."""

    __slots__ = ("id",)

    def __init__(self, tensor_id):
        self.id = tensor_id


def _nodes_in_call_order(model):
    # The order of Functional._run_through_graph: deepest first.
    if not hasattr(model, KERAS_INTERNALS["nodes_by_depth"]):
        raise _NotDirectError("nodes_by_depth")
    nodes_by_depth = _internal(model, "nodes_by_depth")
    return [
        node
        for depth in sorted(nodes_by_depth, reverse=True)
        for node in nodes_by_depth[depth]
        if not node.is_input
    ]


def _steps(model, nodes, input_dtype):
    if input_dtype is None:  # more than one input
        raise _NotDirectError
    computed = {id(model.inputs[0])}
    steps, last_reader = [], {}
    for node in nodes:
        layer = node.operation
        policy = layer.dtype_policy
        if (
            policy.quantization_mode is not None
            or policy.compute_dtype != policy.variable_dtype
            or policy.compute_dtype != input_dtype
            or getattr(layer, KERAS_INTERNALS["remat_mode"], None) is not None
            or getattr(layer, "activity_regularizer", None) is not None
        ):
            raise _NotDirectError
        arguments = _internal(node, "arguments")
        args = [_placeholders(arg, computed) for arg in arguments.args]
        kwargs = {key: _placeholders(v, computed) for key, v in arguments.kwargs.items()}
        for tensor in node.input_tensors:
            last_reader[id(tensor)] = len(steps)
        outputs = [id(tensor) for tensor in node.outputs]
        computed.update(outputs)
        takes_training = "training" in inspect.signature(layer.call).parameters
        steps.append(_Step(layer.call, args, kwargs, takes_training, outputs, []))
    if not all(id(tensor) in computed for tensor in model.outputs):
        raise _NotDirectError
    # Each intermediate map is dropped after its last reader, as PyTorch itself would
    # drop it, rather than held to the end of the pass.
    kept = {id(tensor) for tensor in model.outputs}
    for tensor_id, index in last_reader.items():
        if tensor_id not in kept:
            steps[index].release.append(tensor_id)
    return steps


def _placeholders(value, computed):
    """`value` with its Keras tensors replaced by `_Tensor`s; one level of list at most."""
    if isinstance(value, keras.KerasTensor):
        if id(value) not in computed:
            raise _NotDirectError  # fed from outside the graph
        return _Tensor(id(value))
    if type(value) in (list, tuple):
        items = [_placeholders(item, computed) for item in value]
        if any(type(item) in (list, tuple) for item in items):
            raise _NotDirectError
        return type(value)(items)
    if keras.tree.is_nested(value):  # dicts, named tuples, deeper nesting
        raise _NotDirectError
    return value


def _fill(value, values):
    if isinstance(value, _Tensor):
        return values[value.id]
    if type(value) in (list, tuple):
        return type(value)(values[item.id] if isinstance(item, _Tensor) else item for item in value)
    return value
