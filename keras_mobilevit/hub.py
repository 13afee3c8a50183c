"""The Hugging Face Hub: `hf://` references, downloads into huggingface_hub's cache and their
checks, and uploads.

Files are fetched with `huggingface_hub`, so its cache, `HF_HOME`,
`HF_ENDPOINT` and `HF_HUB_OFFLINE` work as everywhere else; each download is
checked against the hash the Hub advertised for it.
"""

import hashlib
import os
import re

import keras

HUB_PREFIX = "hf://"
CHECKPOINT_FILENAME = "model.safetensors"
# What `model.save("hf://owner/repo")` writes (with metadata.json and a README).
KERAS_MODEL_FILES = ("config.json", "model.weights.h5")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_GIT_SHA1 = re.compile(r"^[0-9a-f]{40}$")


class WeightsUnavailableError(OSError):
    """Pretrained weights could not be fetched (offline, Hub unreachable, or missing)."""


def parse_repo_id(value):
    """`"owner/repo"` from `"hf://owner/repo"` or `"owner/repo"`; `ValueError` if malformed."""
    repo_id = value.removeprefix(HUB_PREFIX).strip("/")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(
            f"{value!r} is not a Hub repository: write it as 'owner/repo' or 'hf://owner/repo'."
        )
    return repo_id


def repo_id_of(weights):
    """The repository of an `"hf://owner/repo"` reference; `None` for anything else."""
    if not isinstance(weights, str) or not weights.startswith(HUB_PREFIX):
        return None
    return parse_repo_id(weights)


def keras_model_folder(repo_id, error):
    """The local folder of a Hub repository's Keras model, where it has no checkpoint.

    `error` is the failure to find a checkpoint. Where the repository exists
    without one, its file list says whether it holds a Keras model, which is
    then downloaded; where the Hub cannot be reached, a Keras model already in
    the cache is used. Otherwise `error` is raised, saying what was looked for.
    """
    import huggingface_hub
    from huggingface_hub import errors

    cause = error.__cause__
    if isinstance(cause, missing_file_errors()):
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


def missing_file_errors():
    """The errors of a download that found the repository but not the file."""
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
        if not (isinstance(e, OSError) or is_http_client_error(e)):
            raise
        raise WeightsUnavailableError(
            f"Could not download {filename!r} from the Hugging Face Hub repository "
            f"{repo_id!r}: {e} Run again to retry; to work without the Hub, set HF_ENDPOINT "
            "to a reachable mirror or pass the path of a local .safetensors file as `weights=`."
        ) from e
    verify_cached_file(path)
    return path


_HTTP_CLIENT_MODULES = ("httpx", "httpx2", "httpcore", "httpcore2", "requests", "urllib3")


def is_http_client_error(error):
    """Whether `error` is an HTTP client's transport error (not an `OSError`)."""
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


class HubUploadError(OSError):
    """The Hugging Face Hub refused an upload, or could not be reached."""


def push_to_hub(model, repo_id):
    """Saves a model to a Hugging Face Hub repository with `model.save("hf://owner/repo")`.

    The repository is created if needed (public, unless your account makes
    new repositories private) and receives Keras' files: `config.json`,
    `model.weights.h5`, `metadata.json` and a model card. It loads back with
    `keras.saving.load_model("hf://owner/repo")` (after `import
    keras_mobilevit`) or, for a keras_mobilevit classifier,
    `keras_mobilevit.<model>(weights="hf://owner/repo", classes=n)`.
    Authentication is huggingface_hub's: `hf auth login`, or `HF_TOKEN`.

    Args:
        model: a `keras.Model`, or the path of a `.keras` file.
        repo_id: `"owner/name"` (an `"hf://"` prefix is accepted).

    Returns:
        The repository's URL.
    """
    repo_id = parse_repo_id(str(repo_id))
    if isinstance(model, (str, os.PathLike)):
        import keras_mobilevit  # noqa: F401  (registers the layers for loading)

        model = keras.saving.load_model(model)
    from huggingface_hub import constants, errors

    try:
        model.save(f"{HUB_PREFIX}{repo_id}")
    except errors.LocalTokenNotFoundError as e:
        raise HubUploadError(f"No Hugging Face token: {e}") from e
    except errors.HfHubHTTPError as e:
        status = getattr(e.response, "status_code", None)
        if status in (401, 403):
            raise HubUploadError(
                f"The Hugging Face Hub refused to write to {repo_id!r} (HTTP {status}): log in "
                "with `hf auth login`, or set HF_TOKEN to a token with write access to "
                f"{repo_id.split('/')[0]!r}."
            ) from e
        raise HubUploadError(f"Uploading to {repo_id!r} failed: {e}") from e
    except Exception as e:
        if isinstance(e, OSError) or is_http_client_error(e):
            raise HubUploadError(
                f"Could not reach the Hugging Face Hub ({constants.ENDPOINT}) to upload "
                f"{repo_id!r}: {e}"
            ) from e
        raise
    return f"{constants.ENDPOINT}/{repo_id}"
