"""Finding, downloading, verifying and loading weights.

Pretrained weights live on the Hugging Face Hub in timm's repositories and are
fetched with `huggingface_hub`, so its cache, `HF_HOME`, `HF_ENDPOINT` and
`HF_HUB_OFFLINE` work as everywhere else. They are read with `safetensors`'
numpy API: no torch and no unpickling at run time.

A Hub repository may instead hold a Keras model, as `model.save("hf://owner/repo")`
writes it (a fine-tuned classifier, for instance): its weights are then copied
layer by layer, by name, from the saved model.
"""

import hashlib
import os
import re

import keras

from keras_mobilevit import convert, transformers_layout

HUB_PREFIX = "hf://"
CHECKPOINT_FILENAME = "model.safetensors"
# What `model.save("hf://owner/repo")` writes (with metadata.json and a README).
KERAS_MODEL_FILES = ("config.json", "model.weights.h5")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_GIT_SHA1 = re.compile(r"^[0-9a-f]{40}$")


class WeightsUnavailableError(OSError):
    """Pretrained weights could not be fetched (offline, Hub unreachable, or missing)."""


def is_path(weights):
    """Whether a `weights` string names a file rather than a weights set."""
    return (
        weights.endswith((".h5", ".safetensors", ".bin", ".keras"))
        or os.sep in weights
        or "/" in weights
    )


def validate(weights, hub_repos):
    """Checks a `weights` argument without downloading anything."""
    if weights is None or weights in hub_repos or _hub_repo_id(weights) is not None:
        return
    if not isinstance(weights, str) or not is_path(weights):
        valid = ", ".join(repr(k) for k in [None, *hub_repos])
        raise ValueError(
            f"Unknown weights={weights!r}. Valid values: {valid}, a path to a "
            "'.weights.h5', '.safetensors' or '.keras' file, or 'hf://owner/repo'."
        )
    if not os.path.isfile(os.path.expanduser(weights)):
        raise FileNotFoundError(f"No weights file at {weights!r}.")


def _hub_repo_id(weights):
    if not isinstance(weights, str) or not weights.startswith(HUB_PREFIX):
        return None
    repo_id = weights[len(HUB_PREFIX) :].strip("/")
    if repo_id.count("/") != 1:
        raise ValueError(
            f"weights={weights!r} is not a Hub reference: write it as 'hf://owner/repo'."
        )
    return repo_id


def resolve(weights, hub_repos, filenames=(CHECKPOINT_FILENAME,)):
    """Turns a `weights` argument into a local file path (downloading if needed).

    Args:
        weights: `"imagenet"` (or another key of `hub_repos`), `"hf://owner/repo"`,
            or a path to a `.weights.h5`, `.safetensors` or `.keras` file.
        hub_repos: mapping of weights-set name to Hub repository id.
        filenames: the checkpoint file names to look for in a Hub
            repository, in order of preference.

    Returns:
        The path of a weights file, or, for an `"hf://"` repository holding
        a Keras model rather than a checkpoint, of the folder of its
        `config.json` and `model.weights.h5`.
    """
    repo_id = hub_repos.get(weights) or _hub_repo_id(weights)
    if repo_id is not None:
        try:
            for filename in filenames[:-1]:
                try:
                    return download(repo_id, filename)
                except WeightsUnavailableError as e:
                    if not isinstance(e.__cause__, _missing_file_errors()):
                        raise
            return download(repo_id, filenames[-1])
        except WeightsUnavailableError as e:
            if weights in hub_repos:
                raise
            return _keras_model_folder(repo_id, e)
    validate(weights, hub_repos)
    return os.path.expanduser(weights)


def _keras_model_folder(repo_id, error):
    """The local folder of a Hub repository's Keras model, where it has no checkpoint.

    `error` is the failure to find a checkpoint. Where the repository exists
    without one, its file list says whether it holds a Keras model, which is
    then downloaded; where the Hub cannot be reached, a Keras model already in
    the cache is used. Otherwise `error` is raised, saying what was looked for.
    """
    import huggingface_hub
    from huggingface_hub import errors

    cause = error.__cause__
    if isinstance(cause, _missing_file_errors()):
        try:
            files = set(huggingface_hub.list_repo_files(repo_id))
        except Exception:
            raise error from cause
        if not set(KERAS_MODEL_FILES) <= files:
            raise WeightsUnavailableError(
                f"{error} Nor does it hold a Keras model ({' and '.join(KERAS_MODEL_FILES)}, "
                'as model.save("hf://owner/repo") writes).'
            ) from cause
        paths = [download(repo_id, filename) for filename in KERAS_MODEL_FILES]
        return os.path.dirname(paths[0])
    if isinstance(cause, errors.LocalEntryNotFoundError):
        cached = [huggingface_hub.try_to_load_from_cache(repo_id, f) for f in KERAS_MODEL_FILES]
        if all(isinstance(path, str) for path in cached):
            for path in cached:
                verify_cached_file(path)
            return os.path.dirname(cached[0])
    raise error from cause


def _missing_file_errors():
    from huggingface_hub import errors

    return (errors.RemoteEntryNotFoundError,)


def download(repo_id, filename=CHECKPOINT_FILENAME):
    """Fetches `filename` from a Hub repository into the huggingface_hub cache."""
    import huggingface_hub
    from huggingface_hub import errors

    try:
        path = huggingface_hub.hf_hub_download(repo_id=repo_id, filename=filename)
    except errors.LocalEntryNotFoundError as e:
        # Offline, or the Hub could not be reached, and nothing in the cache.
        raise WeightsUnavailableError(
            f"Could not download {filename!r} from the Hugging Face Hub repository {repo_id!r}, "
            "and it is not in the local cache. Either connect to the Hub once (the file is then "
            "cached under HF_HOME for offline use; unset HF_HUB_OFFLINE), point HF_ENDPOINT at a "
            "reachable mirror, or pass the path of a local .safetensors file as `weights=`."
        ) from e
    except errors.GatedRepoError as e:
        raise WeightsUnavailableError(
            f"The Hugging Face Hub repository {repo_id!r} is gated or private: accept its terms "
            "on the Hub and log in (`hf auth login` or the HF_TOKEN variable)."
        ) from e
    except (errors.RepositoryNotFoundError, errors.RemoteEntryNotFoundError) as e:
        raise WeightsUnavailableError(
            f"The Hugging Face Hub has no file {filename!r} in repository {repo_id!r}. "
            "Check the repository name, or pass a local weights file."
        ) from e
    except Exception as e:
        # Other network failures, or a download that failed its size check.
        # huggingface_hub lets its HTTP client's transport errors (connection
        # refused, timeouts), which are not OSErrors, escape from the download.
        if not (isinstance(e, OSError) or _is_http_client_error(e)):
            raise
        raise WeightsUnavailableError(
            f"Could not download {filename!r} from the Hugging Face Hub repository "
            f"{repo_id!r}: {e} Run again to retry; to work without the Hub, set HF_ENDPOINT "
            "to a reachable mirror or pass the path of a local .safetensors file as `weights=`."
        ) from e
    verify_cached_file(path)
    return path


_HTTP_CLIENT_MODULES = ("httpx", "httpx2", "httpcore", "httpcore2", "requests", "urllib3")


def _is_http_client_error(error):
    return any(c.__module__.split(".")[0] in _HTTP_CLIENT_MODULES for c in type(error).__mro__)


def verify_cached_file(path):
    """Checks a Hub download against the hash the Hub advertised for it.

    huggingface_hub names each cached blob after the file's ETag, which for
    files stored with Git LFS (all checkpoints) is the SHA-256 of the content,
    and for plain git files (a Keras model's `config.json`, say) the git blob
    SHA-1 (of `b"blob <size>\\0"` and the content). A file that does not hash to
    its name is removed from the cache, so the next call downloads it again
    instead of trusting it.
    """
    blob = os.path.realpath(path)
    expected = os.path.basename(blob)
    if _SHA256.match(expected):
        digest, kind = hashlib.sha256(), "SHA-256"
    elif _GIT_SHA1.match(expected):
        digest, kind = hashlib.sha1(b"blob %d\0" % os.path.getsize(blob)), "git blob SHA-1"
    else:
        return
    with open(blob, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        _evict(path, blob)
        raise ValueError(
            f"The downloaded weights file {path} is corrupt ({kind} {digest.hexdigest()}, "
            f"expected {expected}). It has been removed from the cache; run again to download "
            "it anew."
        )


def _evict(path, blob):
    for p in {path, blob}:
        try:
            os.remove(p)
        except FileNotFoundError:
            pass


def read_checkpoint(path):
    """Reads a checkpoint's tensors as numpy arrays: safetensors, or a PyTorch pickle."""
    if path.endswith((".bin", ".pt", ".pth")):
        return read_torch_checkpoint(path)
    return read_safetensors(path)


def read_torch_checkpoint(path):
    """Reads a PyTorch `state_dict` file with `torch.load(weights_only=True)`.

    Only tensors are unpickled (no code runs); torch is an optional extra.
    """
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            f"{path} is a PyTorch checkpoint; reading it needs torch: "
            'pip install "keras-mobilevit[torch]". Prefer a .safetensors file where one exists.'
        ) from e
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"Could not read the PyTorch checkpoint {path}: {e}") from e
    return {name: tensor.float().numpy() for name, tensor in state_dict.items()}


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


def load(model, path, include_top):
    """Loads a `.safetensors` (timm layout) or Keras `.weights.h5` file into `model`.

    Or a Keras model (a `.keras` file, or a folder of `config.json` and
    `model.weights.h5`), whose layers give their weights to the layers of the
    same name. Nothing is assigned unless every tensor matches; on error the
    model is left as it was.
    """
    if os.path.isdir(path) or path.endswith(".keras"):
        _load_keras_model(model, path)
        return
    if path.endswith(".h5"):
        _load_keras_weights(model, path)
        return
    tensors = read_checkpoint(path)
    if transformers_layout.is_transformers_layout(tensors):
        tensors = transformers_layout.to_timm_layout(tensors)
    ignore = () if include_top else ("head.",)
    convert.assign(convert.plan_assignments(model, tensors, source=path, ignore_prefixes=ignore))


def _load_keras_weights(model, path):
    # Keras assigns layer by layer and can stop half way; load into a snapshot
    # and restore it on failure.
    snapshot = [keras.ops.convert_to_numpy(v.value) for v in model.weights]
    try:
        model.load_weights(path)
    except Exception as e:
        for variable, value in zip(model.weights, snapshot, strict=True):
            variable.assign(value)
        # Keras' message ends with the variable's values: keep what precedes them.
        reason = str(e).split("Target variable:")[0].strip()
        raise ValueError(
            f"Could not load the Keras weights file {path} into {model.name}; the file is for "
            f"another variant or configuration (include_top, classes). {reason}"
        ) from e


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
            return f"{HUB_PREFIX}{repo.removeprefix('models--').replace('--', '/')} ({path})"
    return path
