"""Finding and loading weights: weight-set names, `hf://` repositories and local files.

Checkpoints are read with `safetensors`' numpy API (no torch and no
unpickling at run time) and converted from their source layout by
`keras_mobilevit.converters`. A Keras model (a `.keras` file, or a Hub
repository written by `model.save("hf://owner/repo")`) gives its weights layer
by layer, by name.
"""

import os
import warnings
import zipfile

import keras

from keras_mobilevit import converters, hub, pretrained

TORCH_SUFFIXES = (".bin", ".pt", ".pth")


def is_path(weights):
    """Whether a `weights` string names a file rather than a weights set."""
    return (
        weights.endswith((".h5", ".safetensors", ".keras", *TORCH_SUFFIXES))
        or os.sep in weights
        or "/" in weights
    )


def validate(weights, names=()):
    """Checks a `weights` argument without downloading anything.

    Args:
        weights: as the builders take it.
        names: the weight-set names the model has (`pretrained.names`).
    """
    weights = _as_str(weights)
    if weights is None or weights in names or hub.repo_id_of(weights) is not None:
        return
    if not isinstance(weights, str) or not is_path(weights):
        valid = ", ".join(repr(k) for k in [None, *names])
        raise ValueError(
            f"Unknown weights={weights!r}. Valid values: {valid}, a path to a "
            "'.weights.h5', '.safetensors', '.bin' or '.keras' file, or 'hf://owner/repo'."
        )
    if not os.path.isfile(os.path.expanduser(weights)):
        raise FileNotFoundError(f"No weights file at {weights!r}.")


def _as_str(weights):
    """`weights` with a `pathlib.Path` (any `os.PathLike`) turned into its string."""
    return os.fspath(weights) if isinstance(weights, os.PathLike) else weights


def resolve(weights, weight_set=None, filenames=(hub.CHECKPOINT_FILENAME,)):
    """Turns a `weights` argument into a local file path (downloading if needed).

    Args:
        weights: a weight-set name, `"hf://owner/repo"`, or a path (a string
            or `os.PathLike`) to a `.weights.h5`, `.safetensors`, `.bin` or
            `.keras` file.
        weight_set: the `pretrained.WeightSet` that `weights` names, if any.
        filenames: the checkpoint files to look for in an `"hf://"`
            repository, preferred first.

    Returns:
        The path of a weights file, or, for an `"hf://"` repository holding
        a Keras model rather than a checkpoint, of the folder of its
        `config.json` and `model.weights.h5`.

    Raises:
        ImportError: for a PyTorch checkpoint where torch is not installed,
            before any model is built.
    """
    weights = _as_str(weights)
    if weight_set is not None and weight_set.released_here:
        path = _download_pinned(weight_set)
    elif weight_set is not None:
        path = _download_checkpoint(weight_set.repo, weight_set.filenames)
    elif (repo_id := hub.repo_id_of(weights)) is not None:
        try:
            path = _download_checkpoint(repo_id, filenames)
        except hub.WeightsUnavailableError as e:
            return hub.keras_model_folder(repo_id, e)
    else:
        validate(weights)
        path = os.path.expanduser(weights)
    if path.endswith(TORCH_SUFFIXES):
        _import_torch(path)
    return path


def _download_pinned(weight_set):
    """One of the package's own weight sets, at the commit and SHA-256 its release pinned.

    Raises:
        hub.WeightsUnavailableError: before any download, where no release has
            pinned it yet, with the command that makes it.
    """
    pin = pretrained.pin(weight_set)
    if pin is None:
        run = f"runs/{weight_set.model.lower()}.{weight_set.name}"
        raise hub.WeightsUnavailableError(
            f'{weight_set.model}(weights="{weight_set.name}") has not been published yet: '
            f"these weights ({weight_set.base} weights fine-tuned on {weight_set.dataset}, "
            f"{weight_set.classes} classes) are made by keras-mobilevit's own recipe, and no "
            f"release has pinned them in {pretrained.published_path()}. The command that makes "
            f"and publishes them, run from a checkout of keras-mobilevit (docs/releasing.md): "
            f"`{pretrained.release_command(weight_set)}`. To train them for yourself instead: "
            f"`keras-mobilevit train --dataset {weight_set.dataset} --model {weight_set.model} "
            f'--output {run}`, then weights="{run}/model.keras", '
            f"classes={weight_set.classes}."
        )
    return hub.download(pin.repo, weight_set.filenames[0], pin.revision, pin.sha256)


def _download_checkpoint(repo_id, filenames):
    """The first of `filenames` that the repository holds, downloaded."""
    for filename in filenames[:-1]:
        try:
            return hub.download(repo_id, filename)
        except hub.WeightsUnavailableError as e:
            if not isinstance(e.__cause__, hub.missing_file_errors()):
                raise
    return hub.download(repo_id, filenames[-1])


def read_checkpoint(path):
    """Reads a checkpoint's tensors as numpy arrays: safetensors, or a PyTorch pickle."""
    if path.endswith(TORCH_SUFFIXES):
        return read_torch_checkpoint(path)
    return read_safetensors(path)


def read_torch_checkpoint(path):
    """Reads a PyTorch `state_dict` file with `torch.load(weights_only=True)`.

    Only tensors are unpickled (no code runs); torch is an optional extra.
    Floating tensors become float32 (numpy has no bfloat16); others keep their
    dtype, for the converter to refuse by name.
    """
    torch = _import_torch(path)
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"Could not read the PyTorch checkpoint {path}: {e}") from e
    return {
        name: (tensor.float() if tensor.is_floating_point() else tensor).numpy()
        for name, tensor in state_dict.items()
    }


def _import_torch(path):
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            f"{path} is a PyTorch checkpoint, and reading one needs torch, which is not "
            'installed: pip install "keras-mobilevit[torch]", or use a .safetensors file of '
            "the same weights instead (no torch needed)."
        ) from e
    return torch


def read_safetensors(path):
    """Reads every tensor of a `.safetensors` file as numpy arrays."""
    from safetensors.numpy import load_file

    try:
        return load_file(path)
    except Exception as e:  # safetensors raises its own error type for bad files
        raise ValueError(
            f"Could not read the weights file {path}: {e}. It is truncated, corrupt, or not "
            "a safetensors file."
        ) from e


def read_safetensors_metadata(path):
    """The metadata of a `.safetensors` file (its header only), or `None`."""
    from safetensors import safe_open

    with safe_open(path, "numpy") as f:
        return f.metadata()


def load(model, path, include_top):
    """Loads a checkpoint or a Keras weights file or model into `model`.

    A checkpoint (`.safetensors`, or PyTorch `.bin`) may be in timm's,
    transformers' or the package's own layout (Keras variable paths); a Keras
    `.weights.h5` file is read by Keras. A Keras model (a `.keras` file, or a
    folder of `config.json` and `model.weights.h5`) gives its layers' weights
    to the layers of the same name. Nothing is assigned unless every tensor
    matches; on error the model is left as it was.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        _load_keras_model(model, path)
        return
    _check_not_empty(path)
    if path.endswith(".keras"):
        if not zipfile.is_zipfile(path):
            raise ValueError(
                f"{path} is not a Keras model file: a .keras file is a zip archive, and this one "
                "is not (truncated, or another format under a .keras name). Save it again."
            )
        _load_keras_model(model, path)
        return
    if path.endswith(".h5"):
        _load_keras_weights(model, path)
        return
    tensors = read_checkpoint(path)
    source = path
    if path.endswith(".safetensors") and converters.keras_layout.is_keras_layout(tensors):
        source += converters.keras_layout.describe(read_safetensors_metadata(path))
    converters.load_checkpoint(model, tensors, source=source, include_top=include_top)


def _check_not_empty(path):
    if os.path.getsize(path) == 0:
        raise ValueError(
            f"The weights file {path} is empty (0 bytes): whatever wrote it (a save, a copy, "
            "a download) did not finish. Write or download it again."
        )


def _load_keras_weights(model, path):
    import h5py  # a dependency of Keras

    if not h5py.is_hdf5(path):
        raise ValueError(
            f"{path} is not a Keras weights file: a .weights.h5 file is HDF5, and this one is "
            "not (another format under a .h5 name, such as an error page). Save it again."
        )
    try:
        h5py.File(path, "r").close()
    except OSError as e:
        raise ValueError(
            f"Could not read the Keras weights file {path}: {e}. It is truncated or corrupt: "
            "save or download it again."
        ) from e
    # Keras assigns layer by layer and can stop half way; load into a snapshot
    # and restore it on failure.
    snapshot = [keras.ops.convert_to_numpy(v.value) for v in model.weights]
    # Into another variant, Keras warns once per layer it cannot match before it
    # raises; the one error below says it all. A load that works keeps its warnings.
    with warnings.catch_warnings(record=True) as caught:
        try:
            model.load_weights(path)
        except Exception as e:
            for variable, value in zip(model.weights, snapshot, strict=True):
                variable.assign(value)
            # Keras' message ends with the variable's values: keep what precedes them.
            reason = " ".join(str(e).split("Target variable:")[0].split())
            raise ValueError(
                f"Could not load the Keras weights file {path} into {model.name}; the file is "
                f"for another variant or configuration (include_top, classes). {reason}"
            ) from e
    for warning in caught:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def _load_keras_model(model, path):
    """Copies the weights of the Keras model saved at `path` into `model`, layer by layer.

    Layers are matched by name, so the saved model may have a top where
    `model` has none (`include_top=False`), or another input size. Every
    layer of `model` with weights must be found, with the same shapes.
    """
    import keras_mobilevit  # noqa: F401  (registers the layers the saved model needs)

    where = _describe_keras_model(path)
    try:
        source = keras.saving.load_model(path, compile=False)
    except Exception as e:
        raise ValueError(f"Could not load the Keras model in {where}: {e}") from e
    layers = {layer.name: layer for layer in source.layers}
    plan = []
    for layer in model.layers:
        if not layer.weights:
            continue
        other = layers.get(layer.name)
        if other is None or len(other.weights) != len(layer.weights):
            raise ValueError(
                f"The Keras model {source.name!r} in {where} has no layer "
                f"{layer.name!r} with the weights this {model.name} needs: it is not a "
                f"{model.name} (nor built the way keras_mobilevit builds it)."
            )
        for variable, value in zip(layer.weights, other.weights, strict=True):
            if tuple(variable.shape) == tuple(value.shape):
                plan.append((variable, keras.ops.convert_to_numpy(value.value)))
            elif layer.name == "head_fc":
                raise ValueError(
                    f"The Keras model in {where} classifies into {value.shape[-1]} "
                    f"classes, and this model into {variable.shape[-1]}: build it with "
                    f"classes={value.shape[-1]}, or with include_top=False for its backbone only."
                )
            else:
                raise ValueError(
                    f"Layer {layer.name!r} of the Keras model in {where} has a "
                    f"{variable.name!r} of shape {tuple(value.shape)}, but this model needs "
                    f"{tuple(variable.shape)}: the model is another MobileViT variant."
                )
    for variable, value in plan:
        variable.assign(value.astype(variable.dtype))


def _describe_keras_model(path):
    """`"hf://owner/repo"` for a Hub download in huggingface_hub's cache, else the path."""
    parts = os.path.normpath(os.path.abspath(path)).split(os.sep)
    if os.path.isdir(path) and len(parts) >= 3 and parts[-2] == "snapshots":
        repo = parts[-3]
        if repo.startswith("models--"):
            return f"{hub.HUB_PREFIX}{repo.removeprefix('models--').replace('--', '/')} ({path})"
    return path
