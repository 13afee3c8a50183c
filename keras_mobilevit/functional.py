"""The model class the builders return: a functional `keras.Model` with a lean eager inference.

On the PyTorch backend Keras runs a functional model layer by layer in Python,
eagerly, `predict` included, and each layer call pays for `Layer.__call__`'s
bookkeeping: argument binding, input conversion, training and mask resolution,
autocast and name scopes, tracking. For MobileViT_S at batch 1 that came to
about 20 ms a forward pass, as much as the kernels. Where none of it can change
the result, `MobileViTModel` calls each layer's `call` directly instead.
"""

import collections
import inspect

import keras


@keras.saving.register_keras_serializable(package="keras_mobilevit")
class MobileViTModel(keras.Model):
    """A functional `keras.Model` whose eager inference on PyTorch skips per-layer overhead.

    Built like `keras.Model(inputs, outputs)`; it trains, saves, loads, exports
    and nests like any functional model. Only its inference on the PyTorch
    backend differs: called with `training` unset or false, no mask and one
    input tensor, it runs the graph by calling each layer's `call` in
    the order Keras would, passing `training` on to the layers that take it.
    That is what `Layer.__call__` ends up doing when every layer computes in
    its variables' dtype (no mixed precision), none is quantized, rematerialised
    or regularises its activity, and the input already has the model's dtype,
    so these are the conditions; anything else (training, masks, symbolic
    inputs) goes through Keras' own path. TensorFlow and JAX trace the graph
    once, so they always take Keras' path.
    """

    def call(self, inputs, training=None, mask=None, **kwargs):
        if not training and mask is None and not kwargs and keras.backend.backend() == "torch":
            plan = self._direct_calls()
            if plan is not None:
                flat = self._standardize_inputs(inputs)
                if plan.accepts(flat):
                    return plan.run(flat[0], training)
        return super().call(inputs, training=training, mask=mask, **kwargs)

    def _direct_calls(self):
        plan = self.__dict__.get("_direct_calls_plan")
        if plan is None or not plan.is_current():
            plan = _DirectCalls.of(self)
            # Not through Layer.__setattr__: the plan is a cache, not state to track.
            object.__setattr__(self, "_direct_calls_plan", plan)
        return plan if plan.steps is not None else None


class _DirectCalls:
    """A functional model's layer calls, resolved once into a flat list of steps."""

    def __init__(self, model, steps, policies, input_dtype):
        self.model = model
        self.steps = steps  # None when the model cannot run this way
        self.policies = policies
        self.input_dtype = input_dtype
        self.input_id = id(model.inputs[0]) if len(model.inputs) == 1 else None
        self.output_ids = [id(tensor) for tensor in model.outputs]

    @classmethod
    def of(cls, model):
        nodes = _nodes_in_call_order(model)
        policies = [(node.operation, node.operation.dtype_policy) for node in nodes]
        input_dtype = model.inputs[0].dtype if len(model.inputs) == 1 else None
        try:
            steps = _steps(model, nodes, input_dtype)
        except _NotDirectError:
            steps = None
        return cls(model, steps, policies, input_dtype)

    def is_current(self):
        """False once a layer's dtype policy changed (mixed precision set, quantized)."""
        return all(layer.dtype_policy is policy for layer, policy in self.policies)

    def accepts(self, flat_inputs):
        if len(flat_inputs) != 1:
            return False
        x = flat_inputs[0]
        return (
            not isinstance(x, keras.KerasTensor)
            and keras.backend.standardize_dtype(x.dtype) == self.input_dtype
            and getattr(x, "_keras_mask", None) is None
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
        return keras.tree.pack_sequence_as(self.model._outputs_struct, flat)


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
    nodes_by_depth = model._nodes_by_depth
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
            or getattr(layer, "_remat_mode", None) is not None
            or getattr(layer, "activity_regularizer", None) is not None
        ):
            raise _NotDirectError
        args = [_placeholders(arg, computed) for arg in node.arguments.args]
        kwargs = {key: _placeholders(v, computed) for key, v in node.arguments.kwargs.items()}
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
