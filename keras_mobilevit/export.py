"""Exporting models for phones and other runtimes: LiteRT (TFLite) and ONNX.

Both exporters are thin layers over `keras.Model.export`: they fix the input
size, configure the LiteRT converter for builtin ops only and the requested
quantization, write the file atomically (a failed conversion leaves nothing at
`path`; a file it replaces keeps its permissions), and by default run the
exported file on a random batch and compare it with Keras.
"""

import collections
import os
import secrets
import stat
import tempfile
import warnings

import numpy as np

QUANTIZATIONS = (None, "float16", "dynamic", "int8", "int8_full")
# Ops that "int8" leaves in float32: XNNPACK, LiteRT's CPU engine, has no int8
# kernels for them, or none for how the models use them, so quantized they
# fall back to slow reference kernels (docs/export.md has the latencies).
FLOAT_OPS = (
    "MEAN",
    "SUB",
    "SQUARE",
    "SQUARED_DIFFERENCE",
    "RSQRT",
    "BATCH_MATMUL",
    "SOFTMAX",
    "LOGISTIC",
)
FORMATS = ("litert", "onnx")
DEFAULT_INPUT_SIZE = 256
# Largest |difference| from Keras that `verify` accepts, on the model's outputs.
# Quantized weights or activations move outputs by far more than rounding:
# those are held to a fraction of the outputs' range instead. For full int8 the
# check catches a broken file (wrong scale, layout or channel order); whether
# its accuracy suffices is a question for real data (top-1 agreement).
ABSOLUTE_TOLERANCE = {None: 1e-4, "float16": 1e-2}
RELATIVE_TOLERANCE = {"dynamic": 0.1, "int8": 1.0, "int8_full": 1.0}

ExportReport = collections.namedtuple("ExportReport", ["path", "size", "ops", "max_difference"])


class ExportVerificationError(RuntimeError):
    """The exported file runs, but its outputs differ from Keras beyond the tolerance."""


def export_litert(
    model,
    path,
    quantization=None,
    representative_dataset=None,
    verify=True,
    input_size=None,
    batch_size=1,
):
    """Exports a model to a LiteRT (`.tflite`) file with TFLite builtin ops only.

    Args:
        model: a keras_mobilevit model (or any single-image-input Keras model).
        path: where to write the `.tflite` file; its directory must exist. A
            file already there is replaced, keeping its permissions, once the
            new one is converted and verified.
        quantization: `None` (float32), `"float16"` (float16 weights),
            `"dynamic"` (dynamic-range int8 weights), `"int8"` (int8 weights
            and activations, calibrated with `representative_dataset`, except
            for the ops in `FLOAT_OPS`, which CPUs run faster in float32), or
            `"int8_full"` (every op int8, for accelerators that take int8
            only; slower than float32 on CPUs).
        representative_dataset: for `"int8"` and `"int8_full"`: a callable returning an iterable
            of input batches (arrays shaped like the model's input, in the
            model's input range), as the TFLite converter takes. A hundred or
            so real images calibrate well.
        verify: run the file on a random batch and raise
            `ExportVerificationError` if it differs from Keras beyond a
            tolerance that fits the quantization (float32: 1e-4).
        input_size: `(height, width)` or one int to export at; required in
            effect when the model takes any size, where it defaults to 256.
        batch_size: the fixed batch size of the exported model.

    Returns:
        The path written.
    """
    return export(
        model, path, "litert", quantization, representative_dataset, verify, input_size, batch_size
    ).path


def export_onnx(model, path, opset=None, verify=True, input_size=None, batch_size=1):
    """Exports a model to an ONNX file (through `keras.Model.export(format="onnx")`).

    Args:
        model: a keras_mobilevit model.
        path: where to write the `.onnx` file; as for `export_litert`.
        opset: the ONNX opset version, or `None` for the exporter's default.
        verify: run the file with onnxruntime on a random batch and raise
            `ExportVerificationError` if it differs from Keras by more than 1e-4.
        input_size: as for `export_litert`.
        batch_size: as for `export_litert`.

    Returns:
        The path written.
    """
    return export(model, path, "onnx", None, None, verify, input_size, batch_size, opset=opset).path


def export(
    model,
    path,
    format,
    quantization=None,
    representative_dataset=None,
    verify=True,
    input_size=None,
    batch_size=1,
    opset=None,
):
    """Exports a model to LiteRT or ONNX and reports what was written.

    Validates the request, converts into a temporary file beside `path`,
    checks it against Keras, then moves it in place.

    Args:
        model: as for `export_litert`.
        path: as for `export_litert`.
        format: `"litert"` or `"onnx"`.
        quantization: as for `export_litert`.
        representative_dataset: as for `export_litert`.
        verify: as for `export_litert`.
        input_size: as for `export_litert`.
        batch_size: as for `export_litert`.
        opset: ONNX only, as for `export_onnx`.

    Returns:
        An `ExportReport`: the path, its size in bytes, the ops it uses, and
        the largest difference from Keras measured (`None` without `verify`).
    """
    path = check_request(path, format, quantization, representative_dataset)
    shape = _input_shape(model, input_size, batch_size)

    # Keras exports only models that have been called.
    reference_input = _random_batch(shape)
    expected = _outputs(model(reference_input, training=False))

    # Convert into a temporary file beside the target, then move it in place.
    target = os.path.realpath(path)
    temporary, mode = _create_beside(target)
    try:
        if format == "litert":
            _convert_litert(model, temporary, shape, quantization, representative_dataset)
            ops = _litert_ops(temporary)
            run = _litert_runner(temporary)
        else:
            _convert_onnx(model, temporary, shape, opset)
            ops = _onnx_ops(temporary)
            run = _onnx_runner(temporary)
        max_difference = None
        if verify:
            actual = run(reference_input)
            max_difference = _check(expected, actual, quantization, format)
        # As writing into the existing file would: its permissions, or else the
        # ones the temporary file was created with (the umask's).
        if os.path.exists(target):
            mode = stat.S_IMODE(os.stat(target).st_mode)
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return ExportReport(path, os.path.getsize(path), ops, max_difference)


def check_request(path, format, quantization=None, representative_dataset=None):
    """The checks that need no model, so callers can fail before building one.

    Returns `path` as a string.
    """
    import keras

    if format not in FORMATS:
        raise ValueError(f"Unknown format {format!r}; valid: {', '.join(FORMATS)}.")
    if quantization not in QUANTIZATIONS:
        valid = ", ".join(repr(q) for q in QUANTIZATIONS)
        raise ValueError(f"Unknown quantization {quantization!r}; valid: {valid}.")
    if quantization is not None and format != "litert":
        raise ValueError(f"Quantization applies to LiteRT files only, not {format}.")
    if quantization in ("int8", "int8_full") and representative_dataset is None:
        raise ValueError(
            f"quantization={quantization!r} needs a representative_dataset: integer quantization "
            "sets each activation's int8 range from real inputs, so pass a callable returning "
            "batches of typical images (or use quantization='dynamic', which needs none)."
        )
    if format == "litert" and keras.backend.backend() != "tensorflow":
        raise ValueError(
            "LiteRT export runs on the TensorFlow backend; set KERAS_BACKEND=tensorflow "
            f"(the current backend is {keras.backend.backend()!r})."
        )
    path = os.fspath(path)
    suffix = ".tflite" if format == "litert" else ".onnx"
    if os.path.isdir(path):
        example = os.path.join(path, "model" + suffix)
        raise IsADirectoryError(
            f"{path!r} is a directory; name the file to write, e.g. {example!r}."
        )
    if not path.endswith(suffix):
        raise ValueError(f"A {format} file's name must end with {suffix!r}, got {path!r}.")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"The directory for {path!r} does not exist: {directory}.")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise PermissionError(
            f"{path!r} exists and is read-only; make it writable to replace it, or choose "
            "another path."
        )
    # Trying is the one check that sees permissions, ACLs and read-only mounts alike.
    probe, _ = _create_beside(os.path.realpath(path))
    os.remove(probe)
    return path


def _create_beside(path):
    """Creates an empty temporary file beside `path`; returns its path and mode.

    `path` is the file to replace itself, not a symbolic link to it: renaming
    onto a link would replace the link and leave the file it names as it was.

    The file is created as `open(path, "w")` would create one, so its mode is
    what the umask (or the directory's default ACL) allows.
    """
    directory, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(
        directory, f".{name}.{secrets.token_hex(8)}{os.path.splitext(name)[1]}"
    )
    try:
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as e:
        raise type(e)(
            f"Cannot write {path!r}: creating a file in {directory} failed ({e.strerror}); "
            "choose a writable location."
        ) from e
    return temporary, stat.S_IMODE(os.stat(temporary).st_mode)


def _input_shape(model, input_size, batch_size):
    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4:
        raise ValueError("Export expects a model with one image input (batch, height, width, 3).")
    _, height, width, channels = model.inputs[0].shape
    if input_size is not None:
        size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        if len(size) != 2 or min(size) < 32:
            raise ValueError(f"input_size must be (height, width), at least 32, got {input_size}.")
        for fixed, asked in zip((height, width), size, strict=True):
            if fixed is not None and fixed != asked:
                raise ValueError(
                    f"The model takes {height}x{width} images; input_size={input_size} differs."
                )
        height, width = size
    height = height or DEFAULT_INPUT_SIZE
    width = width or DEFAULT_INPUT_SIZE
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    return (batch_size, height, width, channels)


def _random_batch(shape, seed=0):
    # Pixels over the full [0, 255] range; with include_preprocessing=False the
    # model sees values beyond its [0, 1] range, which exercises it all the same.
    return np.random.default_rng(seed).uniform(0, 255, shape).astype(np.float32)


def _outputs(result):
    import keras

    if isinstance(result, dict):
        result = [result[k] for k in sorted(result)]
    elif not isinstance(result, (list, tuple)):
        result = [result]
    return [keras.ops.convert_to_numpy(r) for r in result]


def _signature(shape):
    import keras

    return [keras.InputSpec(shape=shape, dtype="float32")]


def _convert_litert(model, path, shape, quantization, representative_dataset):
    import tensorflow as tf

    if quantization == "int8":
        return _convert_litert_int8(model, path, shape, representative_dataset)
    options = {"target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}}
    if quantization is not None:
        options["optimizations"] = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        options["target_spec"]["supported_types"] = [tf.float16]
    if quantization == "int8_full":
        options["target_spec"]["supported_ops"] = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        options["representative_dataset"] = _calibration(representative_dataset, shape)
    model.export(path, format="litert", input_signature=_signature(shape), verbose=False, **options)


def _convert_litert_int8(model, path, shape, representative_dataset):
    """int8 with `FLOAT_OPS` left in float32, through the converter's selective quantization.

    `keras.Model.export(format="litert")` cannot denylist ops, so the model is
    exported as a SavedModel by Keras, and the LiteRT converter's
    QuantizationDebugger (its public interface to selective quantization)
    quantizes that.
    """
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as saved_model:
        model.export(
            saved_model, format="tf_saved_model", input_signature=_signature(shape), verbose=False
        )
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _calibration(representative_dataset, shape)
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS,
        ]
        with warnings.catch_warnings():
            # The debugger builds a tf.lite.Interpreter of its own, which warns
            # that it is deprecated; the files are run with ai-edge-litert.
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter,
                debug_dataset=converter.representative_dataset,
                debug_options=tf.lite.experimental.QuantizationDebugOptions(
                    denylisted_ops=list(FLOAT_OPS)
                ),
            )
            content = debugger.get_nondebug_quantized_model()
    with open(path, "wb") as file:
        file.write(content)


def _calibration(representative_dataset, shape):
    """Adapts a callable of image batches to the converter's generator of `[input]` lists."""

    def generate():
        count = 0
        for batch in representative_dataset():
            batch = np.asarray(batch, dtype=np.float32)
            if batch.ndim == 3:
                batch = batch[None]
            if batch.shape[1:] != shape[1:]:
                raise ValueError(
                    f"Calibration batches must be images of shape {shape[1:]}, got {batch.shape}."
                )
            for start in range(0, len(batch) - shape[0] + 1, shape[0]):
                count += 1
                yield [batch[start : start + shape[0]]]
        if not count:
            raise ValueError("The representative_dataset gave no images.")

    return generate


def _litert_interpreter(path):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=path, num_threads=os.cpu_count())


def _litert_ops(path):
    interpreter = _litert_interpreter(path)
    ops = sorted({op["op_name"] for op in interpreter._get_ops_details()})
    foreign = [op for op in ops if op.startswith("Flex") or op in ("CUSTOM", "DELEGATE")]
    if foreign:
        raise ValueError(f"The LiteRT file needs ops that are not TFLite builtins: {foreign}.")
    return ops


def _litert_runner(path):
    interpreter = _litert_interpreter(path)
    interpreter.allocate_tensors()

    def run(images):
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images)
        interpreter.invoke()
        outputs = sorted(interpreter.get_output_details(), key=lambda d: d["name"])
        return [interpreter.get_tensor(d["index"]) for d in outputs]

    return run


def _convert_onnx(model, path, shape, opset):
    options = {} if opset is None else {"opset_version": opset}
    model.export(path, format="onnx", input_signature=_signature(shape), verbose=False, **options)


def _onnx_ops(path):
    import onnx

    return sorted({node.op_type for node in onnx.load(path).graph.node})


def _onnx_runner(path):
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])

    def run(images):
        return session.run(None, {session.get_inputs()[0].name: images})

    return run


def _check(expected, actual, quantization, format):
    if len(expected) != len(actual):
        raise ExportVerificationError(
            f"The {format} file has {len(actual)} outputs, Keras {len(expected)}."
        )
    worst = 0.0
    for reference, value in zip(expected, actual, strict=True):
        value = np.asarray(value, dtype=np.float32)
        if value.shape != reference.shape:
            raise ExportVerificationError(
                f"The {format} file's output has shape {value.shape}, Keras' {reference.shape}."
            )
        difference = float(np.abs(value - reference).max())
        if not np.isfinite(difference):
            raise ExportVerificationError(f"The {format} file's outputs are not finite.")
        worst = max(worst, difference)
        if quantization in RELATIVE_TOLERANCE:
            spread = float(reference.max() - reference.min()) or 1.0
            tolerance = RELATIVE_TOLERANCE[quantization] * spread
        else:
            tolerance = ABSOLUTE_TOLERANCE[quantization]
        if difference > tolerance:
            raise ExportVerificationError(
                f"The {format} file ({quantization or 'float32'}) differs from Keras by "
                f"{difference:.3g}, more than the tolerance {tolerance:.3g}. Nothing was written."
            )
    return worst
