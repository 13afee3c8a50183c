"""The package's own weight sets (`weights="flowers102"`) and their release, offline.

The release (`scripts/release_weights.py`) trains MobileViT_XXS on tensorflow-datasets' mock
Flowers-102 (random images, the real 102 classes) for one short epoch from random weights,
publishes to the loopback fake Hub of `hf_server.py` and writes its pins to a temporary
`published.json`, which a fresh interpreter then reads through `KERAS_MOBILEVIT_PUBLISHED_WEIGHTS`.
What is checked is the wiring (pins, checks, layout, labels, errors), not accuracy.
"""

import json
import pathlib
import re

import numpy as np
import pytest
from hf_server import TOKEN, FakeHub
from testing import run_cli, run_python

import keras_mobilevit
from keras_mobilevit import hub, labels, pretrained
from keras_mobilevit.converters import keras_layout

ROOT = pathlib.Path(__file__).parents[1]
CAT = str(ROOT / "examples" / "cat.jpg")
REPO = "keras-mobilevit/mobilevit_xxs.flowers102"
RELEASE_COMMAND = "python scripts/release_weights.py --models MobileViT_XXS --weight-set flowers102"


@pytest.fixture
def published(tmp_path, monkeypatch):
    """An empty pins file that the package reads instead of its own: nothing published."""
    path = tmp_path / "published.json"
    path.write_text("{}")
    monkeypatch.setenv(pretrained.PUBLISHED_ENV, str(path))
    return path


# -- the table and the not-yet-published error ------------------------------------------


def test_flowers102_rows_name_their_own_repositories():
    rows = [row for row in pretrained.WEIGHT_SETS if row.name == "flowers102"]
    assert [row.model for row in rows] == [
        "MobileViT_XXS", "MobileViT_XS", "MobileViT_S", "MobileViTV2_050", "MobileViTV2_100",
    ]  # fmt: skip
    for row in rows:
        assert row.repo == f"keras-mobilevit/{row.model.lower()}.flowers102"
        assert (row.classes, row.labels, row.score) == (102, "oxford_flowers102", None)
        assert row.license == pretrained.find(row.model, "imagenet").license
        assert row.released_here and not pretrained.find(row.model, "imagenet").released_here
    # The package ships with nothing published yet.
    assert pretrained.read_published(pretrained.PUBLISHED_PATH) == {}


def test_unpublished_weights_say_so_and_give_the_release_command(published, capsys):
    with pytest.raises(hub.WeightsUnavailableError) as raised:
        keras_mobilevit.MobileViT_XXS(weights="flowers102")
    message = str(raised.value)
    assert 'MobileViT_XXS(weights="flowers102") has not been published yet' in message
    assert f"`{RELEASE_COMMAND}`" in message and str(published) in message
    code, out, err = run_cli(
        capsys, "predict", CAT, "--model", "mobilevit_xs", "--weights", "flowers102"
    )
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert "python scripts/release_weights.py --models MobileViT_XS --weight-set flowers102" in err
    assert "Fetching" not in err


def test_a_malformed_pin_is_refused_by_name(published):
    entry = {"repo": REPO, "revision": "main", "sha256": "0" * 64, "metrics": {}, "command": ""}
    published.write_text(json.dumps({"MobileViT_XXS": {"flowers102": entry}}))
    with pytest.raises(ValueError, match="pin of MobileViT_XXS weights='flowers102' .* malformed"):
        keras_mobilevit.MobileViT_XXS(weights="flowers102")


# -- classes ----------------------------------------------------------------------------


def test_classes_default_to_the_weight_sets_and_other_counts_are_refused(published):
    assert keras_mobilevit.MobileViT_XXS(weights=None).output_shape == (None, 1000)
    assert keras_mobilevit.MobileViT_XXS_DeepLabV3(weights=None).output_shape[-1] == 21
    for model, weights in [("MobileViT_XS", "flowers102"), ("MobileViT_XS", "imagenet")]:
        expected = pretrained.find(model, weights).classes
        other = 1000 if expected == 102 else 102
        must = f"`classes` must be {expected} \\(got classes={other}"
        with pytest.raises(ValueError, match=must):
            getattr(keras_mobilevit, model)(weights=weights, classes=other)


# -- labels -----------------------------------------------------------------------------


def test_flower_names_are_tensorflow_datasets_classes_in_order():
    tfds = pytest.importorskip("tensorflow_datasets")
    names = tfds.builder("oxford_flowers102").info.features["label"].names
    assert labels.class_names("oxford_flowers102") == names
    assert labels.class_names("flowers102") == names  # by the weight set's name


def test_decode_predictions_takes_a_label_set_or_names_and_never_guesses():
    preds = np.full((2, 102), 1e-3, "float32")
    preds[0, 76], preds[1, 0] = 0.9, 0.8
    decoded = keras_mobilevit.decode_predictions(preds, top=1, labels="oxford_flowers102")
    assert decoded == [
        [(76, "passion flower", pytest.approx(0.9))],
        [(0, "pink primrose", pytest.approx(0.8))],
    ]
    names = [f"flower {i}" for i in range(102)]
    assert keras_mobilevit.decode_predictions(preds, top=1, labels=names)[0][0][:2] == (
        76,
        "flower 76",
    )
    with pytest.raises(ValueError, match=r'shape \(2, 102\).*labels="oxford_flowers102"'):
        keras_mobilevit.decode_predictions(preds)
    with pytest.raises(ValueError, match="labels='imagenet' has 1000"):
        keras_mobilevit.decode_predictions(preds, labels="imagenet")
    with pytest.raises(ValueError, match="Unknown labels='tulips'"):
        keras_mobilevit.decode_predictions(preds, labels="tulips")
    imagenet = np.zeros((1, 1000), "float32")
    imagenet[0, 1] = 1
    assert keras_mobilevit.decode_predictions(imagenet, top=1)[0][0][:2] == (
        "n01443537",
        "goldfish",
    )


# -- the package's own checkpoint layout ----------------------------------------------------


@pytest.fixture(scope="module")
def keras_layout_file(tmp_path_factory):
    model = keras_mobilevit.MobileViT_XXS(weights=None, classes=102, input_shape=(32, 32, 3))
    rng = np.random.default_rng(0)
    for variable in model.weights:  # statistics unlike a fresh model's, variances positive
        if variable.path.endswith(("moving_mean", "moving_variance")):
            variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype("float32"))
    from safetensors.numpy import save_file

    path = tmp_path_factory.mktemp("keras_layout") / "model.safetensors"
    metadata = keras_layout.metadata(model="MobileViT_XXS", weights="flowers102")
    save_file(keras_layout.tensors_of(model), str(path), metadata=metadata)
    return model, path


def test_keras_layout_file_loads_whole_or_with_include_top_false(keras_layout_file):
    source, path = keras_layout_file
    expected = {v.path: np.asarray(v) for v in source.weights}
    model = keras_mobilevit.MobileViT_XXS(weights=str(path), classes=102)
    assert all(np.array_equal(np.asarray(v), expected[v.path]) for v in model.weights)
    backbone = keras_mobilevit.MobileViT_XXS(weights=path, include_top=False, pooling="avg")
    assert backbone.output_shape == (None, 320)
    assert all(np.array_equal(np.asarray(v), expected[v.path]) for v in backbone.weights)


def test_keras_layout_file_of_another_variant_or_head_is_refused(keras_layout_file):
    _, path = keras_layout_file
    with pytest.raises(ValueError) as raised:
        keras_mobilevit.MobileViT_XS(weights=path, classes=102)
    assert "(MobileViT_XXS weights=flowers102)" in str(raised.value)
    assert "another MobileViT variant" in str(raised.value)
    with pytest.raises(ValueError, match="classifies into 102 classes.*build it with classes=102"):
        keras_mobilevit.MobileViT_XXS(weights=path)


@pytest.mark.slow
def test_cli_predict_names_the_classes_of_labels_for_a_file(keras_layout_file, tmp_path, capsys):
    _, path = keras_layout_file
    names = tmp_path / "names.txt"
    names.write_text("".join(f"flower number {i}\n" for i in range(102)))
    code, out, err = run_cli(
        capsys,
        "predict",
        CAT,
        "--model",
        "mobilevit_xxs",
        "--weights",
        path,
        "--labels",
        names,
        "--top",
        "2",
    )
    assert code == 0, err
    ranks = out.splitlines()[1:]
    assert len(ranks) == 2 and all(re.match(r"\s+\d\. flower number \d+ ", r) for r in ranks)
    # Without --labels a 102-class file is refused in one line, naming what to pass.
    code, out, err = run_cli(capsys, "predict", CAT, "--model", "mobilevit_xxs", "--weights", path)
    assert code == 1 and "classifies into 102 classes" in err and len(err.splitlines()) == 1


# -- the release, end to end --------------------------------------------------------------

# The release under mock data: first without a token (the upload is refused after training),
# then twice with one, the second time with nothing changed.
_RELEASE = """
import os, runpy, sys
import tensorflow_datasets as tfds

release = runpy.run_path(sys.argv[1])
token = os.environ.pop("HF_TOKEN")
with tfds.testing.mock_data(num_examples=4):
    print("CODE", release["main"](sys.argv[2:]), flush=True)
    print("PUBLISHED", open(sys.argv[2:][-1]).read().strip(), flush=True)  # --published
    os.environ["HF_TOKEN"] = token
    for attempt in range(2):
        print("CODE", release["main"](sys.argv[2:]), flush=True)
"""

# A fresh interpreter: pinned weights load and decode, the CLI names flowers, an unpinned
# weight set downloads nothing, and a pin the download does not match is refused.
_LOAD = """
import contextlib, io, json, os, sys
import numpy as np
import keras_mobilevit
from keras_mobilevit import cli, hub, pretrained

image, tampered = sys.argv[1], sys.argv[2]
result = {}
model = keras_mobilevit.MobileViT_XXS(weights="flowers102")
pixels = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
preds = np.asarray(model(pixels, training=False))  # eager: tracing predict costs seconds
result["classes"] = int(preds.shape[-1])
result["decoded"] = keras_mobilevit.decode_predictions(preds, top=3, labels="flowers102")[0]
backbone = keras_mobilevit.MobileViT_XXS(weights="flowers102", include_top=False)
same = {v.path: np.asarray(v) for v in model.weights}
result["backbone_same"] = all(np.array_equal(np.asarray(v), same[v.path]) for v in backbone.weights)
out = io.StringIO()
with contextlib.redirect_stdout(out):
    args = ["predict", image, "--model", "mobilevit_xxs", "--weights", "flowers102", "--top", "1"]
    result["cli_code"] = cli.main(args)
result["cli_out"] = out.getvalue()
try:
    keras_mobilevit.MobileViT_XS(weights="flowers102")
except hub.WeightsUnavailableError as e:
    result["unpinned"] = str(e)
good = os.environ[pretrained.PUBLISHED_ENV]
os.environ[pretrained.PUBLISHED_ENV] = tampered
for attempt in range(2):
    try:
        keras_mobilevit.MobileViT_XXS(weights="flowers102")
    except ValueError as e:
        result.setdefault("tampered", []).append(str(e))
cache = "models--keras-mobilevit--mobilevit_xxs.flowers102"
blobs = os.path.join(os.environ["HF_HOME"], "hub", cache, "blobs")
result["blobs_after_tampered"] = len(os.listdir(blobs))
os.environ[pretrained.PUBLISHED_ENV] = good
result["reloaded"] = keras_mobilevit.MobileViT_XXS(weights="flowers102").output_shape[-1]
print("RESULT " + json.dumps(result))
"""


def _result(stdout):
    line = [x for x in stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line.removeprefix("RESULT "))


@pytest.mark.slow
def test_release_publishes_pins_and_a_fresh_process_loads_flowers(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    published = tmp_path / "published.json"
    published.write_text("{}")
    work = tmp_path / "releases"
    with FakeHub() as fake:
        env = {**fake.env(tmp_path / "hf_release", token=TOKEN), "KERAS_BACKEND": "tensorflow"}
        arguments = [
            "--models", "MobileViT_XXS", "--base-weights", "none", "--epochs", "1",
            "--freeze-backbone-epochs", "1", "--image-size", "32", "--batch-size", "4",
            "--work-dir", str(work), "--published", str(published),
        ]  # fmt: skip
        script = str(ROOT / "scripts" / "release_weights.py")
        code = _RELEASE.replace("sys.argv[1]", repr(script)).replace(
            "sys.argv[2:]", repr(arguments)
        )
        release = run_python(code, env=env)
        assert release.returncode == 0, release.stderr[-4000:]
        commits = [p for m, p in fake.requests if m == "POST" and "/commit/" in p]
        files = fake.files(REPO)
        revision = fake.commit(REPO)

        pins = json.loads(published.read_text())
        tampered = tmp_path / "tampered.json"
        bad = {**pins["MobileViT_XXS"]["flowers102"], "sha256": "0" * 64}
        tampered.write_text(json.dumps({"MobileViT_XXS": {"flowers102": bad}}))
        fake.requests.clear()
        load_env = {
            **fake.env(tmp_path / "hf_user"),
            "KERAS_BACKEND": "tensorflow",
            pretrained.PUBLISHED_ENV: str(published),
        }
        load = run_python(
            _LOAD.replace("sys.argv[1]", repr(CAT)).replace("sys.argv[2]", repr(str(tampered))),
            env=load_env,
        )
        assert load.returncode == 0, load.stderr[-4000:]
        requested = [p for _, p in fake.requests]

    # Released once: the second run found the Hub's files the same and uploaded nothing.
    # Without a token: trained, refused in one line, and the pins file left as it was.
    assert "CODE 1\nPUBLISHED {}\n" in release.stdout, release.stdout
    refused = [line for line in release.stderr.splitlines() if "release_weights: error:" in line]
    assert len(refused) == 1 and "refused to write to 'keras-mobilevit/mobilevit_xxs" in refused[0]
    assert "HF_TOKEN" in refused[0]
    assert release.stdout.count("CODE 0") == 2, release.stdout + release.stderr[-3000:]
    assert "taking the finished run" in release.stderr
    assert len(commits) == 1 and "nothing (the Hub has these files)" in release.stdout
    assert set(files) == {"model.safetensors", "metrics.json", "README.md"}
    pin = pins["MobileViT_XXS"]["flowers102"]
    assert pin["repo"] == REPO and pin["revision"] == revision
    assert pin["sha256"] == hub.file_sha256(
        work / "mobilevit_xxs.flowers102" / "upload" / "model.safetensors"
    )
    assert pin["metrics"]["test_examples"] == 4
    assert pin["command"].startswith(
        "keras-mobilevit train --dataset oxford_flowers102 --model MobileViT_XXS --weights none"
    )
    card = files["README.md"].decode()
    assert card.startswith("---\n") and "license_name: apple-ascl" in card
    assert "library_name: keras" in card and "- oxford_flowers102" in card
    assert pin["command"] in card and "## Limits" in card and "## Intended use" in card
    assert json.loads(files["metrics.json"])["test_examples"] == 4

    result = _result(load.stdout)
    flowers = set(labels.class_names("oxford_flowers102"))
    assert result["classes"] == 102 and result["backbone_same"]
    assert len(result["decoded"]) == 3 and all(name in flowers for _, name, _ in result["decoded"])
    assert result["cli_code"] == 0
    printed = re.match(r"\s+1\. (.+?)\s+\d+\.\d+%", result["cli_out"].splitlines()[1])
    assert printed and printed.group(1) in flowers, result["cli_out"]
    # The unpinned weight set asked the Hub for nothing.
    assert 'MobileViT_XS(weights="flowers102") has not been published yet' in result["unpinned"]
    assert not any("mobilevit_xs.flowers102" in path for path in requested)
    # Downloads are at the pinned commit; a file that is not the pinned one is refused
    # each time and leaves nothing in the cache, and the right pin then loads again.
    assert any(f"/resolve/{revision}/model.safetensors" in path for path in requested)
    assert len(result["tampered"]) == 2
    assert all("keras-mobilevit pins " + "0" * 64 in message for message in result["tampered"])
    assert result["blobs_after_tampered"] == 0 and result["reloaded"] == 102
