"""End-to-end tests of downloading pretrained weights from the Hugging Face Hub.

Every model is built in a fresh interpreter whose environment
(``FakeHub.env``) points ``HF_ENDPOINT`` at the loopback fake Hub of
``hf_server.py`` and ``HF_HOME`` at a temporary directory, so huggingface_hub
reads its settings fresh and the real ``hf_hub_download`` runs (it is never
mocked). The file served is a timm ``mobilevit_xxs`` state dict with random
weights and BatchNorm statistics, saved as safetensors, and the Keras logits are
compared with timm's on the same input.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hf_server import FAKE_COMMIT, FakeHub
from testing import random_images, randomized_timm_model, timm_forward

FILENAME = "model.safetensors"
IMAGENET_REPO = "timm/mobilevit_xxs.cvnets_in1k"
INPUT_SHAPE = (2, 256, 256, 3)
ATOL = 1e-4
UNAVAILABLE = "keras_mobilevit.hub.WeightsUnavailableError"

# Builds MobileViT_XXS(weights=...) and prints one line "RESULT {json}": the
# exception raised, or the largest difference from the expected logits.
_BUILD_SCRIPT = r"""
import json, sys, time
args = json.loads(sys.argv[1])
if args["no_sleep"]:
    time.sleep = lambda seconds: None  # skip huggingface_hub's retry back-off
import numpy as np
import keras_mobilevit
from keras_mobilevit.hub import WeightsUnavailableError

def name(cls):
    return f"{cls.__module__}.{cls.__qualname__}"

try:
    model = getattr(keras_mobilevit, args["variant"])(
        weights=args["weights"],
        include_preprocessing=False,
        classifier_activation=None,
        **args["options"],
    )
except Exception as exc:
    cause = exc.__cause__
    result = {
        "error": name(type(exc)),
        "message": str(exc),
        "unavailable": isinstance(exc, WeightsUnavailableError),
        "oserror": isinstance(exc, OSError),
        "cause": None if cause is None else name(type(cause)),
    }
else:
    x = np.load(args["input"])
    expected = np.load(args["expected"])
    logits = np.asarray(model(x, training=False))
    assert logits.shape == expected.shape, (logits.shape, expected.shape)
    result = {"max_diff": float(np.max(np.abs(logits - expected)))}
print("RESULT " + json.dumps(result))
"""


# Runs keras_mobilevit.hub.download on each [repo, filename] given and prints one
# line "RESULT {json}": for each, the path or the error, the warnings, the seconds.
_DOWNLOAD_SCRIPT = r"""
import json, sys, time, warnings
args = json.loads(sys.argv[1])
if args["fake_clock"]:
    # huggingface_hub's back-off sleeps advance the clock instead of waiting.
    slept = [0.0]
    monotonic = time.monotonic
    time.sleep = lambda seconds: slept.__setitem__(0, slept[0] + seconds)
    time.monotonic = lambda: monotonic() + slept[0]
from keras_mobilevit import hub

results = []
for repo_id, filename in args["downloads"]:
    start = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = {"path": hub.download(repo_id, filename)}
        except Exception as exc:
            result = {"error": type(exc).__name__, "message": str(exc)}
    result["warnings"] = [str(w.message) for w in caught]
    result["seconds"] = time.monotonic() - start
    results.append(result)
print("RESULT " + json.dumps(results))
"""


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A random timm mobilevit_xxs: its safetensors bytes and its logits on a fixed input."""
    from safetensors.torch import save

    model = randomized_timm_model("mobilevit_xxs")
    data = save({k: v.detach().contiguous() for k, v in model.state_dict().items()})
    x = random_images(*INPUT_SHAPE[:3], seed=2)
    folder = tmp_path_factory.mktemp("reference")
    np.save(folder / "input.npy", x)
    np.save(folder / "expected.npy", timm_forward(model, x))
    return {
        "data": data,
        "input": str(folder / "input.npy"),
        "expected": str(folder / "expected.npy"),
    }


@pytest.fixture
def data(reference: dict[str, object]) -> bytes:
    return reference["data"]  # type: ignore[return-value]


@pytest.fixture
def hub(data: bytes):
    with FakeHub() as server:
        server.add_file(IMAGENET_REPO, FILENAME, data)
        yield server


@pytest.fixture
def hf_home(tmp_path: Path) -> Path:
    return tmp_path / "hf_home"


# -- helpers ----------------------------------------------------------------------------


def build(
    env: dict[str, str],
    weights: str,
    reference: dict[str, object] | None = None,
    *,
    no_sleep: bool = False,
    variant: str = "MobileViT_XXS",
    **options: object,
) -> dict[str, object]:
    """Build `variant(weights=weights, **options)` in a fresh interpreter; return its RESULT."""
    args = {
        "variant": variant,
        "options": options,
        "weights": weights,
        "no_sleep": no_sleep,
        "input": None if reference is None else reference["input"],
        "expected": None if reference is None else reference["expected"],
    }
    return run_script(_BUILD_SCRIPT, args, {**env, "KERAS_BACKEND": "tensorflow"})


def download_all(
    env: dict[str, str], downloads: list[tuple[str, str]], *, fake_clock: bool = False
) -> list[dict[str, object]]:
    """`keras_mobilevit.hub.download` of each (repo, filename), in one fresh interpreter."""
    args = {"downloads": downloads, "fake_clock": fake_clock}
    # Downloads need no backend; numpy's is the quickest to import.
    return run_script(_DOWNLOAD_SCRIPT, args, {**env, "KERAS_BACKEND": "numpy"})


def run_script(script: str, args: dict[str, object], env: dict[str, str]) -> object:
    """Runs `script` with `args` in a fresh interpreter; returns its "RESULT" line's JSON."""
    proc = subprocess.run(
        [sys.executable, "-c", script, json.dumps(args)],
        env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stdout + proc.stderr
    return json.loads(lines[-1].removeprefix("RESULT "))


def assert_matches(result: dict[str, object]) -> None:
    assert "error" not in result, result
    print(f"max |keras - timm| = {result['max_diff']:.3g}")
    assert result["max_diff"] <= ATOL


def repo_cache(hf_home: Path, repo_id: str) -> Path:
    return hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))


def cached_files(hf_home: Path, repo_id: str) -> list[str]:
    """Relative paths of the plain files and links in a repo's cache folder (sorted)."""
    root = repo_cache(hf_home, repo_id)
    if not root.exists():
        return []
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_symlink() or p.is_file()
    )


def downloads(hub: FakeHub) -> list[tuple[str, str]]:
    """The requests that touched a file (resolve or CDN), ignoring telemetry."""
    return [(m, p) for m, p in hub.requests if "/resolve/" in p or p.startswith("/cdn/")]


def closed_endpoint() -> str:
    """The URL of a loopback port on which nothing listens."""
    closed = FakeHub()  # bind a free port, then release it without serving
    closed.close()
    return closed.url


def corrupted(data: bytes) -> bytes:
    """``data`` with 16 bytes in the middle of the tensor data flipped (same size)."""
    (header_size,) = struct.unpack("<Q", data[:8])
    start = 8 + header_size
    middle = start + (len(data) - start) // 2
    flipped = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    bad = data[:middle] + flipped + data[middle + 16 :]
    assert len(bad) == len(data) and bad != data
    return bad


# -- downloading works ------------------------------------------------------------------


@pytest.mark.slow
def test_imagenet_download_then_offline_from_cache(
    hub: FakeHub, hf_home: Path, reference: dict[str, object], data: bytes
) -> None:
    assert_matches(build(hub.env(hf_home), "imagenet", reference))
    # keras_mobilevit's HEAD (without retries), then huggingface_hub's.
    assert downloads(hub) == [
        ("HEAD", f"/{IMAGENET_REPO}/resolve/main/{FILENAME}"),
        ("HEAD", f"/{IMAGENET_REPO}/resolve/main/{FILENAME}"),
        ("GET", f"/cdn/{IMAGENET_REPO}/{FILENAME}"),
    ]
    blob = f"blobs/{hub.etag(IMAGENET_REPO, FILENAME)}"
    snapshot = f"snapshots/{FAKE_COMMIT}/{FILENAME}"
    assert cached_files(hf_home, IMAGENET_REPO) == [blob, "refs/main", snapshot]
    assert (repo_cache(hf_home, IMAGENET_REPO) / snapshot).read_bytes() == data

    hub.requests.clear()
    assert_matches(build(hub.env(hf_home, offline=True), "imagenet", reference))
    assert hub.requests == []

    # Without HF_HUB_OFFLINE, an unreachable Hub falls back on the cache too.
    env = {**hub.env(hf_home), "HF_ENDPOINT": closed_endpoint()}
    assert_matches(build(env, "imagenet", reference))
    assert hub.requests == []


@pytest.mark.slow
def test_hf_reference_download(
    hub: FakeHub, hf_home: Path, reference: dict[str, object], data: bytes
) -> None:
    repo = "someone/my-mobilevit"
    hub.add_file(repo, FILENAME, data)
    assert_matches(build(hub.env(hf_home), f"hf://{repo}", reference))
    assert downloads(hub) == [
        ("HEAD", f"/{repo}/resolve/main/{FILENAME}"),
        ("HEAD", f"/{repo}/resolve/main/{FILENAME}"),
        ("GET", f"/cdn/{repo}/{FILENAME}"),
    ]
    assert f"snapshots/{FAKE_COMMIT}/{FILENAME}" in cached_files(hf_home, repo)
    assert not repo_cache(hf_home, IMAGENET_REPO).exists()

    hub.requests.clear()
    assert_matches(build(hub.env(hf_home, offline=True), f"hf://{repo}", reference))
    assert hub.requests == []


# -- bad downloads ----------------------------------------------------------------------


@pytest.mark.slow
def test_corrupt_download_is_evicted_then_redownloaded(
    hub: FakeHub, hf_home: Path, reference: dict[str, object], data: bytes
) -> None:
    hub.set_serve(IMAGENET_REPO, FILENAME, corrupted(data))
    result = build(hub.env(hf_home), "imagenet", reference)
    assert result["error"] == "builtins.ValueError", result
    message = result["message"]
    snapshot = repo_cache(hf_home, IMAGENET_REPO) / "snapshots" / FAKE_COMMIT / FILENAME
    assert str(snapshot) in message
    assert "corrupt" in message
    assert "removed from the cache" in message
    etag = hub.etag(IMAGENET_REPO, FILENAME)
    assert f"expected {etag}" in message
    # Neither the blob nor the snapshot link is left behind.
    assert cached_files(hf_home, IMAGENET_REPO) == ["refs/main"]

    # Offline, nothing usable is cached any more.
    hub.requests.clear()
    result = build(hub.env(hf_home, offline=True), "imagenet")
    assert result["error"] == UNAVAILABLE, result
    assert hub.requests == []

    # Once the server sends the right bytes, a plain retry downloads them again.
    hub.set_serve(IMAGENET_REPO, FILENAME, None)
    assert_matches(build(hub.env(hf_home), "imagenet", reference))
    assert [m for m, _ in downloads(hub)] == ["HEAD", "HEAD", "GET"]
    assert cached_files(hf_home, IMAGENET_REPO) == [
        f"blobs/{etag}",
        "refs/main",
        f"snapshots/{FAKE_COMMIT}/{FILENAME}",
    ]


@pytest.mark.slow
def test_truncated_download_fails_cleanly_then_retry_succeeds(
    hub: FakeHub, hf_home: Path, reference: dict[str, object], data: bytes
) -> None:
    hub.set_serve(IMAGENET_REPO, FILENAME, data[: len(data) // 2])
    result = build(hub.env(hf_home), "imagenet", reference)
    # huggingface_hub's own size check fails (an OSError), which is reported as
    # WeightsUnavailableError with the original message and how to retry.
    assert result["error"] == UNAVAILABLE, result
    assert result["oserror"] and result["cause"] == "builtins.OSError"
    message = result["message"]
    assert IMAGENET_REPO in message and FILENAME in message
    assert f"file should be of size {len(data)} but has size {len(data) // 2}" in message
    assert "Run again to retry" in message
    assert cached_files(hf_home, IMAGENET_REPO) == ["refs/main"]  # no blob, no snapshot

    hub.set_serve(IMAGENET_REPO, FILENAME, None)
    assert_matches(build(hub.env(hf_home), "imagenet", reference))
    assert f"snapshots/{FAKE_COMMIT}/{FILENAME}" in cached_files(hf_home, IMAGENET_REPO)


# -- the Hub cannot be used -------------------------------------------------------------


def test_offline_with_empty_cache(hub: FakeHub, hf_home: Path) -> None:
    result = build(hub.env(hf_home, offline=True), "imagenet")
    assert result["error"] == UNAVAILABLE, result
    assert result["unavailable"] and result["oserror"]
    assert result["cause"] == "huggingface_hub.errors.LocalEntryNotFoundError"
    message = result["message"]
    assert IMAGENET_REPO in message
    assert "HF_HUB_OFFLINE is set" in message
    for hint in ("Unset HF_HUB_OFFLINE", "HF_HOME", "local .safetensors file", "--weights"):
        assert hint in message
    assert hub.requests == []


@pytest.mark.parametrize(
    ("weights", "cause"),
    [
        ("hf://nobody/nothing", "huggingface_hub.errors.RepositoryNotFoundError"),
        ("hf://someone/no-checkpoint", "huggingface_hub.errors.RemoteEntryNotFoundError"),
    ],
    ids=["missing-repo", "missing-file"],
)
def test_missing_on_the_hub(hub: FakeHub, hf_home: Path, weights: str, cause: str) -> None:
    hub.add_file("someone/no-checkpoint", "config.json", b"{}", lfs=False)
    result = build(hub.env(hf_home), weights)
    assert result["error"] == UNAVAILABLE, result
    assert result["cause"] == cause
    repo = weights.removeprefix("hf://")
    assert f"no file {FILENAME!r} in repository {repo!r}" in result["message"]
    assert downloads(hub) == [("HEAD", f"/{repo}/resolve/main/{FILENAME}")] * 2


def test_unreachable_endpoint(hub: FakeHub, hf_home: Path) -> None:
    env = {**hub.env(hf_home), "HF_ENDPOINT": closed_endpoint()}
    start = time.monotonic()
    result = build(env, "imagenet", no_sleep=True)
    elapsed = time.monotonic() - start
    assert result["error"] == UNAVAILABLE, result
    assert result["cause"] == "huggingface_hub.errors.LocalEntryNotFoundError"
    message = result["message"]
    assert IMAGENET_REPO in message
    assert "HF_ENDPOINT" in message and "local .safetensors file" in message
    assert elapsed < 60, f"took {elapsed:.0f} s: huggingface_hub's back-off was not skipped?"
    assert not os.path.exists(
        repo_cache(hf_home, IMAGENET_REPO) / "snapshots" / FAKE_COMMIT / FILENAME
    )


class _HubWithDeadCdn(FakeHub):
    """A fake Hub whose metadata answers work but whose LFS "CDN" is unreachable."""

    def __init__(self) -> None:
        super().__init__()
        self.dead_cdn = closed_endpoint().replace("127.0.0.1", "localhost")

    def _cdn_location(self, repo_id: str, filename: str) -> str:
        return f"{self.dead_cdn}/cdn/{repo_id}/{filename}"


def test_unreachable_cdn(hf_home: Path, data: bytes) -> None:
    with _HubWithDeadCdn() as hub:
        hub.add_file(IMAGENET_REPO, FILENAME, data)
        result = build(hub.env(hf_home), "imagenet", no_sleep=True)
        assert hub.requests == [("HEAD", f"/{IMAGENET_REPO}/resolve/main/{FILENAME}")] * 2
    assert result["error"] == UNAVAILABLE, result
    assert IMAGENET_REPO in result["message"] and "HF_ENDPOINT" in result["message"]
    assert f"snapshots/{FAKE_COMMIT}/{FILENAME}" not in cached_files(hf_home, IMAGENET_REPO)


# -- mirrors and failing Hubs ----------------------------------------------------------

MIRRORED = b"\x00a mirrored checkpoint\xff" * 64
MIRROR_SHA256 = hashlib.sha256(MIRRORED).hexdigest()
MIRROR_MD5 = hashlib.md5(MIRRORED).hexdigest()
OTHER_FILENAME = "other.safetensors"

# What the fixture below downloads, in this order.
FAULTY_DOWNLOADS = [
    ("mirror/md5", FILENAME),
    ("mirror/weak", FILENAME),
    ("mirror/sound", FILENAME),
    ("mirror/unlisted", FILENAME),
    ("mirror/unlisted", OTHER_FILENAME),
    ("mirror/slash", FILENAME),
    ("down/500", FILENAME),
    ("down/html", FILENAME),
]


@pytest.fixture(scope="module")
def faulty_downloads(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """FAULTY_DOWNLOADS, in one interpreter: the results, the requests, the cache."""
    corrupt = bytes(len(MIRRORED))
    hf_home = tmp_path_factory.mktemp("faulty") / "hf_home"
    with FakeHub() as hub:
        # A mirror's ETags that are no hash, with the API giving the SHA-256.
        hub.add_file("mirror/md5", FILENAME, MIRRORED, etag=f'"{MIRROR_MD5}"', serve=corrupt)
        hub.add_file("mirror/weak", FILENAME, MIRRORED, etag='W/"abc-123"', serve=corrupt)
        hub.add_file("mirror/sound", FILENAME, MIRRORED, etag=f'"{MIRROR_MD5}"')
        # No hash anywhere.
        for filename in (FILENAME, OTHER_FILENAME):
            hub.add_file("mirror/unlisted", filename, MIRRORED, etag='"abc-1"', listed=False)
        # An ETag huggingface_hub would turn into the path blobs/W/abc-123.
        hub.add_file("mirror/slash", FILENAME, MIRRORED, etag='"W/abc-123"')
        for repo, fault in (("down/500", "500"), ("down/html", "html")):
            hub.add_file(repo, FILENAME, MIRRORED)
            hub.resolve_faults[repo] = fault
        results = download_all(hub.env(hf_home), FAULTY_DOWNLOADS, fake_clock=True)
    return {
        "results": dict(zip(FAULTY_DOWNLOADS, results, strict=True)),
        "requests": hub.requests,
        "url": hub.url,
        "hf_home": hf_home,
    }


@pytest.mark.slow
def test_a_mirrors_etag_that_is_no_hash_is_checked_against_the_api(faulty_downloads) -> None:
    results, hf_home = faulty_downloads["results"], faulty_downloads["hf_home"]
    for repo in ("mirror/md5", "mirror/weak"):
        result = results[(repo, FILENAME)]
        assert result["error"] == "ValueError", result
        assert "corrupt" in result["message"] and f"expected {MIRROR_SHA256}" in result["message"]
        assert cached_files(hf_home, repo) == ["refs/main"]
    sound = results[("mirror/sound", FILENAME)]
    assert Path(sound["path"]).read_bytes() == MIRRORED
    assert sound["warnings"] == []


@pytest.mark.slow
def test_a_download_that_cannot_be_checked_is_said_once(faulty_downloads) -> None:
    results, url = faulty_downloads["results"], faulty_downloads["url"]
    first, second = (
        results[("mirror/unlisted", FILENAME)],
        results[("mirror/unlisted", OTHER_FILENAME)],
    )
    assert Path(first["path"]).read_bytes() == MIRRORED
    (warning,) = first["warnings"]
    assert url in warning and "could not be checked" in warning
    assert Path(second["path"]).read_bytes() == MIRRORED
    assert second["warnings"] == []


@pytest.mark.slow
def test_an_etag_that_is_no_file_name_is_refused(faulty_downloads) -> None:
    result = faulty_downloads["results"][("mirror/slash", FILENAME)]
    assert result["error"] == "WeightsUnavailableError", result
    assert "'W/abc-123'" in result["message"] and faulty_downloads["url"] in result["message"]
    assert "Nothing was downloaded" in result["message"]
    assert cached_files(faulty_downloads["hf_home"], "mirror/slash") == []
    assert not any(
        "mirror/slash" in path for method, path in faulty_downloads["requests"] if method == "GET"
    )


@pytest.mark.slow
def test_a_failing_hub_is_named_with_its_answer(faulty_downloads) -> None:
    results, url = faulty_downloads["results"], faulty_downloads["url"]
    server_error = results[("down/500", FILENAME)]
    assert server_error["error"] == "WeightsUnavailableError", server_error
    message = server_error["message"]
    assert f"{url} answered HTTP 500 Internal Server Error to HEAD {url}/down/500/" in message
    # Still retried, as a passing fault would be, for a bounded time that the message states.
    heads = [p for m, p in faulty_downloads["requests"] if m == "HEAD" and "/down/500/" in p]
    assert len(heads) > 3
    waited = re.search(r"still after (\d+) s of retries", message)
    assert waited and 10 <= int(waited[1]) <= server_error["seconds"] + 1 < 60, message

    portal = results[("down/html", FILENAME)]
    assert portal["error"] == "WeightsUnavailableError", portal
    assert f"{url} answered HEAD {url}/down/html/" in portal["message"]
    assert "with HTTP 200 (text/html)" in portal["message"]

    for result in (server_error, portal):
        # Worded for the caller and the environment: HF_HUB_OFFLINE is not set here.
        assert "HF_HUB_OFFLINE" not in result["message"]
        assert "weights=" in result["message"] and "--weights" in result["message"]
        assert f"check HF_ENDPOINT ({url})" in result["message"]


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["refused", "unresolvable"])
def test_an_unreachable_hub_fails_at_once(hf_home: Path, fault: str) -> None:
    endpoint = closed_endpoint() if fault == "refused" else "http://hub.invalid"
    with FakeHub() as hub:
        env = {**hub.env(hf_home), "HF_ENDPOINT": endpoint}
    (result,) = download_all(env, [(IMAGENET_REPO, FILENAME)])
    assert result["error"] == "WeightsUnavailableError", result
    assert result["seconds"] < 5, f"took {result['seconds']:.1f} s: retried?"
    reason = "refused the connection" if fault == "refused" else "does not resolve"
    assert reason in result["message"] and endpoint in result["message"]
    assert "HF_HUB_OFFLINE" not in result["message"]


# -- MobileViTV2 weight families --------------------------------------------------------


def make_reference(folder: Path, timm_name: str, size: int) -> dict[str, object]:
    """Like the `reference` fixture, for any timm model and square input size."""
    from safetensors.torch import save

    model = randomized_timm_model(timm_name)
    x = random_images(1, size, size, seed=3)
    np.save(folder / f"{timm_name}_{size}_input.npy", x)
    np.save(folder / f"{timm_name}_{size}_expected.npy", timm_forward(model, x))
    return {
        "data": save({k: v.detach().contiguous() for k, v in model.state_dict().items()}),
        "input": str(folder / f"{timm_name}_{size}_input.npy"),
        "expected": str(folder / f"{timm_name}_{size}_expected.npy"),
    }


@pytest.mark.slow
def test_mobilevitv2_imagenet_download(tmp_path: Path, hf_home: Path) -> None:
    reference = make_reference(tmp_path, "mobilevitv2_050", 256)
    repo = "timm/mobilevitv2_050.cvnets_in1k"
    with FakeHub() as hub:
        hub.add_file(repo, FILENAME, reference["data"])
        result = build(hub.env(hf_home), "imagenet", reference, variant="MobileViTV2_050")
        assert downloads(hub) == [
            ("HEAD", f"/{repo}/resolve/main/{FILENAME}"),
            ("HEAD", f"/{repo}/resolve/main/{FILENAME}"),
            ("GET", f"/cdn/{repo}/{FILENAME}"),
        ]
    assert_matches(result)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("size", "repo"),
    [
        (256, "timm/mobilevitv2_150.cvnets_in22k_ft_in1k"),
        (384, "timm/mobilevitv2_150.cvnets_in22k_ft_in1k_384"),
    ],
)
def test_mobilevitv2_imagenet22k_download_picks_the_checkpoint_for_the_size(
    tmp_path: Path, hf_home: Path, size: int, repo: str
) -> None:
    reference = make_reference(tmp_path, "mobilevitv2_150", size)
    with FakeHub() as hub:
        # Both checkpoints exist; only the one for this input size may be fetched.
        hub.add_file("timm/mobilevitv2_150.cvnets_in22k_ft_in1k", FILENAME, reference["data"])
        hub.add_file("timm/mobilevitv2_150.cvnets_in22k_ft_in1k_384", FILENAME, reference["data"])
        result = build(
            hub.env(hf_home),
            "imagenet22k",
            reference,
            variant="MobileViTV2_150",
            input_shape=[size, size, 3],
        )
        assert downloads(hub) == [
            ("HEAD", f"/{repo}/resolve/main/{FILENAME}"),
            ("HEAD", f"/{repo}/resolve/main/{FILENAME}"),
            ("GET", f"/cdn/{repo}/{FILENAME}"),
        ]
    assert_matches(result)
