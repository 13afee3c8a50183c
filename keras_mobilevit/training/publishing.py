"""Publishing a trained model on the Hugging Face Hub, with Keras' own `hf://` saving."""

import os

import keras


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
    repo_id = str(repo_id).removeprefix("hf://").strip("/")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"A Hub repository is 'owner/name', got {repo_id!r}.")
    if isinstance(model, (str, os.PathLike)):
        import keras_mobilevit  # noqa: F401  (registers the layers for loading)

        model = keras.saving.load_model(model)
    from huggingface_hub import constants, errors

    try:
        model.save(f"hf://{repo_id}")
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
        # Connection errors of huggingface_hub's HTTP client are not OSErrors.
        if isinstance(e, OSError) or type(e).__module__.split(".")[0].startswith("http"):
            raise HubUploadError(
                f"Could not reach the Hugging Face Hub ({constants.ENDPOINT}) to upload "
                f"{repo_id!r}: {e}"
            ) from e
        raise
    return f"{constants.ENDPOINT}/{repo_id}"
