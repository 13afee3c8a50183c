"""The Hugging Face Hub: `hf://` references, downloads into huggingface_hub's cache and their
checks, and uploads.

Files are fetched with `huggingface_hub`, so its cache, `HF_HOME`,
`HF_ENDPOINT` and `HF_HUB_OFFLINE` work as everywhere else; each download is
checked against the hash the Hub advertised for it.
"""

import contextlib
import hashlib
import os
import re
import socket
import time
import warnings

import keras

HUB_PREFIX = "hf://"
CHECKPOINT_FILENAME = "model.safetensors"
# What `model.save("hf://owner/repo")` writes (with metadata.json and a README).
KERAS_MODEL_FILES = ("config.json", "model.weights.h5")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_GIT_SHA1 = re.compile(r"^[0-9a-f]{40}$")
# huggingface_hub names a cached blob after the file's ETag: one path component.
_BLOB_NAME = re.compile(r"^[0-9A-Za-z_+=-][0-9A-Za-z._+=-]{0,254}$")
_LOCAL_WEIGHTS_HINT = (
    'pass a local .safetensors file instead (weights="path/model.safetensors" in Python, '
    "--weights path/model.safetensors on the command line)"
)
# The endpoints already reported as giving no hash to check downloads against.
_UNVERIFIED_ENDPOINTS = set()


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


def download(repo_id, filename=CHECKPOINT_FILENAME, revision=None, sha256=None):
    """Fetches `filename` from a Hub repository into the huggingface_hub cache, checked.

    The file's metadata is asked for once first, without retries: a Hub that
    cannot be reached at all (its name does not resolve, or it refuses the
    connection) then fails at once, or gives the cached file, instead of
    through huggingface_hub's back-off; and an ETag that cannot name a file in
    the cache is refused before anything is written.

    Args:
        repo_id: `"owner/name"`.
        filename: the file in the repository.
        revision: a commit (or branch) to download it at; default the
            repository's newest.
        sha256: the SHA-256 the file must have (a release's pin), checked
            besides the Hub's own hash.

    Raises:
        WeightsUnavailableError: the file could not be downloaded, nor found
            in the cache.
        ValueError: the file is corrupt, or is not the one pinned by
            `sha256`; it is then removed from the cache.
    """
    import huggingface_hub
    from huggingface_hub import constants, errors

    offline = constants.is_offline_mode()
    url = huggingface_hub.hf_hub_url(repo_id, filename, revision=revision)
    started = time.monotonic()
    unreachable, advertised = None, None
    if not offline:
        try:
            metadata = huggingface_hub.get_hf_file_metadata(url)
        except Exception as e:  # huggingface_hub's own call below reports the rest
            unreachable = _unreachable(e)
        else:
            advertised = _advertised_hash(repo_id, filename, metadata)
    try:
        path = huggingface_hub.hf_hub_download(
            repo_id=repo_id,
            filename=filename,
            revision=revision,
            local_files_only=unreachable is not None,
        )
    except errors.LocalEntryNotFoundError as e:
        cached = "it is then cached under HF_HOME for offline use"
        if offline:
            reason = "HF_HUB_OFFLINE is set, so the Hub was not asked"
            remedy = f"Unset HF_HUB_OFFLINE to download it once ({cached}), or"
        else:
            reason = unreachable or _why_not_downloaded(e, url, time.monotonic() - started)
            remedy = f"Run again once the Hub answers ({cached}), {_endpoint_hint()}, or"
        raise WeightsUnavailableError(
            f"Could not download {filename!r} of the Hugging Face Hub repository {repo_id!r}: "
            f"{reason}; and it is not in the local cache ({constants.HF_HUB_CACHE}). {remedy} "
            f"{_LOCAL_WEIGHTS_HINT}."
        ) from e
    except errors.GatedRepoError as e:
        raise WeightsUnavailableError(
            f"The Hugging Face Hub repository {repo_id!r} is gated or private: accept its terms "
            "on the Hub and log in (`hf auth login` or the HF_TOKEN variable)."
        ) from e
    except errors.RevisionNotFoundError as e:
        raise WeightsUnavailableError(
            f"The Hugging Face Hub repository {repo_id!r} has no revision {revision!r}: the "
            "commit these weights were published at is gone (the repository was rewritten). "
            "Pass a local weights file, or use a release of keras-mobilevit that pins a "
            "current commit."
        ) from e
    except (errors.RepositoryNotFoundError, errors.RemoteEntryNotFoundError) as e:
        at = f" at revision {revision!r}" if revision else ""
        raise WeightsUnavailableError(
            f"The Hugging Face Hub has no file {filename!r} in repository {repo_id!r}{at}. "
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
            f"{repo_id!r} at {constants.ENDPOINT}: {e} Run again to retry; to work without the "
            f"Hub, {_endpoint_hint()} or {_LOCAL_WEIGHTS_HINT}."
        ) from e
    if not verify_cached_file(path, advertised) and not offline and unreachable is None:
        _warn_unverified(repo_id, filename)
    if sha256 is not None:
        _check_pinned(path, sha256, repo_id, revision)
    return path


def file_sha256(path):
    """The SHA-256 of a file, as 64 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_pinned(path, sha256, repo_id, revision):
    """Refuses, and removes from the cache, a download that is not the pinned file."""
    blob = os.path.realpath(path)
    found = file_sha256(blob)
    if found != sha256:
        _evict(path, blob)
        raise ValueError(
            f"The weights downloaded from {repo_id!r} at revision {revision} have SHA-256 "
            f"{found}, but keras-mobilevit pins {sha256} for them: the Hub (or the mirror at "
            "HF_ENDPOINT) served another file than the one released. It has been removed from "
            "the cache and nothing was loaded; check HF_ENDPOINT, or report it."
        )


def _unreachable(error):
    """Why the Hub cannot be reached at all, where `error` says so; else `None`.

    A name that does not resolve or a refused connection will not mend within
    huggingface_hub's retries; timeouts and server errors may.
    """
    from huggingface_hub import constants

    causes = []
    while error is not None and len(causes) < 10:
        causes.append(error)
        error = error.__cause__ or error.__context__
    for cause in causes:
        if isinstance(cause, socket.gaierror):
            return f"the host name of {constants.ENDPOINT} does not resolve ({cause.strerror})"
        if isinstance(cause, ConnectionRefusedError):
            return f"{constants.ENDPOINT} refused the connection"
    return None


def _advertised_hash(repo_id, filename, metadata):
    """The hash to check a download against: its ETag, or where that is none, the API's.

    Raises `WeightsUnavailableError` for an ETag that cannot name a cached blob.
    """
    from huggingface_hub import HfApi, constants

    etag = metadata.etag
    if etag is None or metadata.commit_hash is None:
        return None  # not a Hub answer: huggingface_hub refuses it
    if not _BLOB_NAME.match(etag):
        raise WeightsUnavailableError(
            f"{constants.ENDPOINT} answered {filename!r} of {repo_id!r} with the ETag {etag!r}, "
            "which cannot name a file in huggingface_hub's cache: the server is not a Hugging "
            f"Face Hub or a faithful mirror of one. Nothing was downloaded; {_endpoint_hint()}."
        )
    if _hash_kind(etag) is not None:
        return etag
    try:
        (entry,) = HfApi().get_paths_info(repo_id, [filename], revision=metadata.commit_hash)
    except Exception:  # a mirror of the files only; reported as unchecked
        return None
    return entry.lfs.sha256 if entry.lfs is not None else entry.blob_id


def _warn_unverified(repo_id, filename):
    """Says, once per endpoint, that its downloads cannot be checked."""
    from huggingface_hub import constants

    if constants.ENDPOINT in _UNVERIFIED_ENDPOINTS:
        return
    _UNVERIFIED_ENDPOINTS.add(constants.ENDPOINT)
    warnings.warn(
        f"The Hugging Face Hub at {constants.ENDPOINT} gave no SHA-256 or git hash for "
        f"{filename!r} of {repo_id!r} (neither as its ETag nor from its API), so the download "
        "could not be checked; nor will its other downloads be (said once per endpoint).",
        stacklevel=3,
    )


def _why_not_downloaded(error, url, seconds):
    """What the Hub answered for `url`, from the `LocalEntryNotFoundError` of its download."""
    from huggingface_hub import constants, errors

    cause = error.__cause__
    waited = f" (still after {seconds:.0f} s of retries)" if seconds >= 1 else ""
    if isinstance(cause, errors.HfHubHTTPError) and cause.response is not None:
        response = cause.response
        server_message = getattr(cause, "server_message", None)
        said = f": {server_message.strip()}" if server_message else ""
        return (
            f"{constants.ENDPOINT} answered HTTP {response.status_code} "
            f"{response.reason_phrase} to {response.request.method} {response.request.url}"
            f"{said}{waited}"
        )
    if isinstance(cause, errors.FileMetadataError):
        return (
            f"{_describe_answer(url)}, which is not a Hugging Face Hub's answer (it lacks "
            "the X-Repo-Commit or ETag header): a proxy, a captive portal or a server that is "
            "not a Hub answered"
        )
    if cause is None:
        return f"{constants.ENDPOINT} could not be asked ({error})"
    return f"{constants.ENDPOINT} could not be reached ({cause}){waited}"


def _describe_answer(url):
    """`"<endpoint> answered HEAD <url> with HTTP 200 (text/html)"`, asked again to say it."""
    from huggingface_hub import constants
    from huggingface_hub.utils import build_hf_headers, http_backoff

    try:
        response = http_backoff(
            "HEAD",
            url,
            headers=build_hf_headers(),
            retry_on_exceptions=(),
            retry_on_status_codes=(),
        )
    except Exception:
        return f"{constants.ENDPOINT} gave an answer to {url}"
    kind = response.headers.get("Content-Type", "no Content-Type").split(";")[0]
    return f"{constants.ENDPOINT} answered HEAD {url} with HTTP {response.status_code} ({kind})"


def _endpoint_hint():
    """What to do about HF_ENDPOINT: check it where set, else set it to a mirror."""
    from huggingface_hub import constants

    if os.environ.get("HF_ENDPOINT"):
        return f"check HF_ENDPOINT ({constants.ENDPOINT}) or unset it"
    return "set HF_ENDPOINT to a reachable mirror"


_HTTP_CLIENT_MODULES = ("httpx", "httpx2", "httpcore", "httpcore2", "requests", "urllib3")


def is_http_client_error(error):
    """Whether `error` is an HTTP client's transport error (not an `OSError`)."""
    return any(c.__module__.split(".")[0] in _HTTP_CLIENT_MODULES for c in type(error).__mro__)


def verify_cached_file(path, advertised=None):
    """Checks a Hub download against the hash the Hub advertised for it.

    huggingface_hub names each cached blob after the file's ETag, which for
    files stored with Git LFS (all checkpoints) is the SHA-256 of the content,
    and for plain git files (a Keras model's `config.json`, say) the git blob
    SHA-1 (of `b"blob <size>\\0"` and the content). Where the ETag was no such
    hash (a mirror's), `advertised` is the one the Hub's API gave. A file that
    does not hash to it is removed from the cache, so the next call downloads it
    again instead of trusting it.

    Returns:
        Whether there was a hash to check the file against.
    """
    blob = os.path.realpath(path)
    expected = os.path.basename(blob)
    if _hash_kind(expected) is None:
        expected = advertised
    kind = _hash_kind(expected)
    if kind is None:
        return False
    digest = (
        hashlib.sha256()
        if kind == "SHA-256"
        else hashlib.sha1(b"blob %d\0" % os.path.getsize(blob))
    )
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
    return True


def _hash_kind(name):
    """ "SHA-256" or "git blob SHA-1" for a hash of that form, else `None`."""
    if name is None:
        return None
    if _SHA256.match(name):
        return "SHA-256"
    return "git blob SHA-1" if _GIT_SHA1.match(name) else None


def _evict(path, blob):
    for p in {path, blob}:
        try:
            os.remove(p)
        except FileNotFoundError:
            pass


class HubUploadError(OSError):
    """The Hugging Face Hub refused an upload, or could not be reached."""


@contextlib.contextmanager
def upload_errors(repo_id):
    """Turns huggingface_hub's errors while writing to `repo_id` into `HubUploadError`s.

    Each says what to do: log in, get write access, or reach the Hub.
    """
    from huggingface_hub import constants, errors

    try:
        yield
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
    from huggingface_hub import constants

    with upload_errors(repo_id):
        model.save(f"{HUB_PREFIX}{repo_id}")
    return f"{constants.ENDPOINT}/{repo_id}"
