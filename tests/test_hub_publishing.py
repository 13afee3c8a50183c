"""Publishing to the Hugging Face Hub (`keras_mobilevit.hub.push_to_hub`, `train --push-to-hub`)
and the checks on what comes back, against the loopback fake Hub (`tests/hf_server.py`)."""

import hashlib
import json

import keras
import pytest
from hf_server import TOKEN, FakeHub
from testing import run_python

from keras_mobilevit import hub

_TRAIN_AND_PUBLISH = """
import json, os, sys
import numpy as np
import tensorflow_datasets as tfds
from keras_mobilevit import cli

output, repo = sys.argv[1], "someone/mobilevit-flowers"
token = os.environ.pop("HF_TOKEN")  # first without a token: the upload is refused
with tfds.testing.mock_data(num_examples=8):
    code = cli.main([
        "train", "--dataset", "oxford_flowers102", "--model", "mobilevit_xxs", "--weights",
        "none", "--epochs", "1", "--freeze-backbone-epochs", "1", "--image-size", "32",
        "--batch-size", "4", "--mixed-precision",
        "--output", output, "--push-to-hub", repo,
    ])
print("CODE", code, file=sys.stderr, flush=True)
os.environ["HF_TOKEN"] = token

import keras
import keras_mobilevit
from keras_mobilevit import training

url = training.push_to_hub(os.path.join(output, "model.keras"), "hf://" + repo)
local = keras.saving.load_model(os.path.join(output, "model.keras"))
images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
from_hub = keras.saving.load_model("hf://" + repo)
built = keras_mobilevit.MobileViT_XXS(weights="hf://" + repo, classes=102)
backbone = keras_mobilevit.MobileViT_XXS(weights="hf://" + repo, include_top=False)
try:
    keras_mobilevit.MobileViT_XXS(weights="hf://" + repo)
    mismatch = None
except ValueError as e:
    mismatch = str(e)
try:
    keras_mobilevit.MobileViT_XXS(weights="hf://someone/notes")
    neither = None
except OSError as e:
    neither = str(e)

import huggingface_hub.constants

huggingface_hub.constants.HF_HUB_OFFLINE = True  # the cached Keras model is enough
offline = keras_mobilevit.MobileViT_XXS(weights="hf://" + repo, classes=102)

def same_weights(model):
    theirs = {w.path: np.asarray(w) for w in model.weights}
    return all(np.array_equal(np.asarray(w), theirs[w.path]) for w in local.weights
               if w.path in theirs) and len(theirs) > 0

print("RESULT " + json.dumps({
    "url": url,
    "hub_vs_local": float(np.abs(from_hub.predict(images, verbose=0)
                                 - local.predict(images, verbose=0)).max()),
    "hub_policy": from_hub.get_layer("stem_conv").dtype_policy.name,
    "built_same_weights": same_weights(built),
    "built_outputs": built.output_shape[-1],
    "backbone_same_weights": same_weights(backbone),
    "mismatch": mismatch,
    "neither": neither,
    "offline_same_weights": same_weights(offline),
}))
"""


@pytest.mark.slow
def test_cli_train_then_publish_to_the_hub_and_load_back(tmp_path):
    output = tmp_path / "flowers"
    repo = "someone/mobilevit-flowers"
    with FakeHub() as hub:
        hub.add_file("someone/notes", "README.md", b"# Notes", lfs=False)
        env = {**hub.env(tmp_path / "hf_home", token=TOKEN), "KERAS_BACKEND": "tensorflow"}
        code = _TRAIN_AND_PUBLISH.replace("sys.argv[1]", repr(str(output)))
        proc = run_python(code, env=env)
        assert proc.returncode == 0, proc.stderr[-4000:]
        files = hub.files(repo)
        requests = [(m, p.split("?")[0]) for m, p in hub.requests]
    # The CLI trained, printed the test metrics, then could not push without a token.
    assert "test (8 images): top-1" in proc.stdout
    assert "CODE 1" in proc.stderr
    assert "refused to write to 'someone/mobilevit-flowers' (HTTP 401)" in proc.stderr
    assert "HF_TOKEN" in proc.stderr and str(output / "model.keras") in proc.stderr
    # With the token, Keras' own hf:// saving uploaded the model in one commit.
    assert {"config.json", "model.weights.h5", "metadata.json", "README.md"} <= set(files)
    commits = [r for r in requests if r[0] == "POST" and "/commit/" in r[1]]
    assert commits == [("POST", f"/api/models/{repo}/commit/main")]
    result = json.loads(
        [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1].removeprefix("RESULT ")
    )
    assert result["url"] == f"{hub.url}/{repo}"
    assert result["hub_vs_local"] == 0.0 and result["hub_policy"] == "mixed_bfloat16"
    assert result["built_same_weights"] and result["built_outputs"] == 102
    assert result["backbone_same_weights"]
    assert "classifies into 102 classes" in result["mismatch"]
    assert "classes=102" in result["mismatch"] and f"hf://{repo}" in result["mismatch"]
    assert "no file 'model.safetensors' in repository 'someone/notes'" in result["neither"]
    assert "Nor does it hold a Keras model (config.json and model.weights.h5" in result["neither"]
    assert result["offline_same_weights"]


def test_cached_plain_git_files_are_checked_against_their_git_blob_sha1(tmp_path):
    """Keras' config.json is a plain git file on the Hub: its ETag is its git blob SHA-1."""

    content = b'{"class_name": "Functional"}'
    sha1 = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
    blob = tmp_path / "blobs" / sha1
    blob.parent.mkdir()
    blob.write_bytes(content)
    snapshot = tmp_path / "snapshots" / "abc" / "config.json"
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(blob)
    hub.verify_cached_file(str(snapshot))  # intact: nothing said, nothing removed
    assert snapshot.exists()
    blob.write_bytes(content.replace(b"Functional", b"Sequential"))
    with pytest.raises(
        ValueError, match=f"corrupt \\(git blob SHA-1 [0-9a-f]{{40}}, expected {sha1}"
    ):
        hub.verify_cached_file(str(snapshot))
    assert not blob.exists() and not snapshot.is_symlink()


def test_push_to_hub_refuses_a_malformed_repository():
    with pytest.raises(ValueError, match="is not a Hub repository"):
        hub.push_to_hub(keras.Sequential(), "no-owner")
