"""Tests for the fake Hugging Face Hub in ``hf_server.py``.

``hf_hub_download`` is never mocked: each download runs the real
huggingface_hub in a subprocess whose environment (``FakeHub.env``) points
``HF_ENDPOINT`` at the fake Hub and ``HF_HOME`` at a temporary directory, so
huggingface_hub's constants are read fresh.

Besides checking the fixture, some tests pin down how huggingface_hub behaves
on truncated or corrupt downloads, offline mode and unreachable endpoints, so
that an upgrade changing that behaviour is noticed.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hf_server import FAKE_COMMIT, FakeHub

REPO = "timm/some_repo"
FILENAME = "model.safetensors"
DATA = b"\x00fake safetensors payload\xff" * 64

# Runs hf_hub_download and prints one JSON line: {"path": ...} or {"error": ...}.
_DOWNLOAD_SCRIPT = r"""
import json, sys, time
args = json.loads(sys.argv[1])
if args.pop("no_sleep"):
    time.sleep = lambda seconds: None  # skip huggingface_hub's retry back-off
from huggingface_hub import hf_hub_download
try:
    path = hf_hub_download(**args)
except Exception as exc:
    cls = type(exc)
    cause = exc.__cause__
    print(json.dumps({
        "error": f"{cls.__module__}.{cls.__qualname__}",
        "message": str(exc),
        "cause": None if cause is None else f"{type(cause).__module__}.{type(cause).__qualname__}",
    }))
else:
    print(json.dumps({"path": path}))
"""


def download(
    env: dict[str, str],
    repo_id: str = REPO,
    filename: str = FILENAME,
    *,
    no_sleep: bool = False,
    **kwargs: object,
) -> dict[str, str | None]:
    """Run ``hf_hub_download(repo_id, filename, **kwargs)`` in a fresh interpreter."""
    args = {"repo_id": repo_id, "filename": filename, "no_sleep": no_sleep, **kwargs}
    proc = subprocess.run(
        [sys.executable, "-c", _DOWNLOAD_SCRIPT, json.dumps(args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cache_files(hf_home: Path, repo_id: str = REPO) -> list[str]:
    """Relative paths of everything in a repo's cache folder (sorted)."""
    root = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def hub():
    with FakeHub() as server:
        server.add_file(REPO, FILENAME, DATA)
        yield server


@pytest.fixture
def hf_home(tmp_path: Path) -> Path:
    return tmp_path / "hf_home"


# -- the fixture works with the real huggingface_hub ---------------------------------


def test_download_then_offline_uses_cache(hub: FakeHub, hf_home: Path) -> None:
    result = download(hub.env(hf_home))
    path = Path(result["path"])
    assert path.read_bytes() == DATA
    assert path.is_relative_to(hf_home / "hub")
    assert path.parent.name == FAKE_COMMIT
    sha256 = hashlib.sha256(DATA).hexdigest()
    assert path.resolve().name == sha256  # the blob is named after the LFS etag
    assert hub.requests == [
        ("HEAD", f"/{REPO}/resolve/main/{FILENAME}"),
        ("GET", f"/cdn/{REPO}/{FILENAME}"),
    ]

    hub.requests.clear()
    offline = download(hub.env(hf_home, offline=True))
    assert offline == result
    assert hub.requests == []


def test_missing_repo_raises_repository_not_found(hub: FakeHub, hf_home: Path) -> None:
    result = download(hub.env(hf_home), "timm/does_not_exist", FILENAME)
    assert result["error"] == "huggingface_hub.errors.RepositoryNotFoundError"


def test_missing_file_raises_entry_not_found(hub: FakeHub, hf_home: Path) -> None:
    result = download(hub.env(hf_home), REPO, "missing.bin")
    # Subclass of both HfHubHTTPError and huggingface_hub.errors.EntryNotFoundError.
    assert result["error"] == "huggingface_hub.errors.RemoteEntryNotFoundError"
    assert f".no_exist/{FAKE_COMMIT}/missing.bin" in cache_files(hf_home)


def test_missing_revision_raises_revision_not_found(hub: FakeHub, hf_home: Path) -> None:
    result = download(hub.env(hf_home), revision="v9")
    assert result["error"] == "huggingface_hub.errors.RevisionNotFoundError"


def test_non_lfs_file_and_nested_filename(hub: FakeHub, hf_home: Path) -> None:
    hub.add_file(REPO, "sub/dir/config.json", b'{"a": 1}', lfs=False)
    result = download(hub.env(hf_home), REPO, "sub/dir/config.json")
    assert Path(result["path"]).read_bytes() == b'{"a": 1}'
    assert hub.requests == [
        ("HEAD", f"/{REPO}/resolve/main/sub/dir/config.json"),
        ("GET", f"/{REPO}/resolve/main/sub/dir/config.json"),
    ]


# -- the server speaks the Hub's headers ----------------------------------------------


def _request(url: str, method: str, path: str, headers: dict[str, str] | None = None):
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.headers), response.read()
    finally:
        conn.close()


def test_headers_and_range(hub: FakeHub) -> None:
    sha256 = hashlib.sha256(DATA).hexdigest()
    hub.set_serve(REPO, FILENAME, DATA[:10])
    status, headers, _ = _request(hub.url, "HEAD", f"/{REPO}/resolve/main/{FILENAME}")
    assert status == 302
    assert headers["X-Repo-Commit"] == FAKE_COMMIT
    assert headers["X-Linked-Etag"] == f'"{sha256}"'
    assert headers["X-Linked-Size"] == str(len(DATA))  # advertised, not served
    assert not any(key.lower().startswith("x-xet") for key in headers)
    assert hub.etag(REPO, FILENAME) == sha256

    cdn_path = f"/cdn/{REPO}/{FILENAME}"
    status, headers, body = _request(hub.url, "GET", cdn_path)
    assert (status, headers["Content-Length"], body) == (200, "10", DATA[:10])
    status, headers, body = _request(hub.url, "GET", cdn_path, {"Range": "bytes=4-"})
    assert (status, headers["Content-Range"], body) == (206, "bytes 4-9/10", DATA[4:10])
    status, _, _ = _request(hub.url, "GET", cdn_path, {"Range": "bytes=10-"})
    assert status == 416

    status, headers, _ = _request(hub.url, "HEAD", "/timm/nope/resolve/main/x")
    assert (status, headers["X-Error-Code"]) == (404, "RepoNotFound")
    status, headers, _ = _request(hub.url, "HEAD", f"/{REPO}/resolve/main/x")
    assert (status, headers["X-Error-Code"]) == (404, "EntryNotFound")


def test_faults(hub: FakeHub) -> None:
    hub.add_file(REPO, "mirrored.bin", DATA, etag='W/"abc-123"', listed=False)
    status, headers, _ = _request(hub.url, "HEAD", f"/{REPO}/resolve/main/mirrored.bin")
    assert (status, headers["ETag"]) == (302, 'W/"abc-123"')
    assert "X-Linked-Etag" not in headers

    form = {"Content-Type": "application/x-www-form-urlencoded"}
    host, port = hub.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    paths = f"paths={FILENAME}&paths=mirrored.bin&expand=False"
    conn.request("POST", f"/api/models/{REPO}/paths-info/main", body=paths, headers=form)
    (entry,) = json.loads(conn.getresponse().read())  # the unlisted file is left out
    conn.close()
    assert entry["path"] == FILENAME and entry["lfs"]["oid"] == hashlib.sha256(DATA).hexdigest()

    hub.resolve_faults[REPO] = "500"
    status, headers, _ = _request(hub.url, "HEAD", f"/{REPO}/resolve/main/{FILENAME}")
    assert status == 500 and "X-Repo-Commit" not in headers
    hub.resolve_faults[REPO] = "html"
    status, headers, body = _request(hub.url, "GET", f"/{REPO}/resolve/main/{FILENAME}")
    assert (status, headers["Content-Type"]) == (200, "text/html; charset=utf-8")
    assert body.startswith(b"<!DOCTYPE html>") and "X-Repo-Commit" not in headers


def test_server_shuts_down_cleanly() -> None:
    with FakeHub() as server:
        url = server.url
        assert _request(url, "GET", "/api/agent-harnesses")[0] == 200
    with pytest.raises(ConnectionRefusedError):
        _request(url, "GET", "/api/agent-harnesses")


# -- how huggingface_hub reacts to bad downloads (pinned behaviour) -------------------


def test_truncated_download_raises_and_caches_nothing(hub: FakeHub, hf_home: Path) -> None:
    hub.set_serve(REPO, FILENAME, DATA[:100])
    result = download(hub.env(hf_home))
    assert result["error"] == "builtins.OSError"
    assert result["message"].startswith(
        f"Consistency check failed: file should be of size {len(DATA)} but has size 100"
    )
    # Only the ref and the empty folders are left: no blob, no snapshot link,
    # no *.incomplete file.
    assert cache_files(hf_home) == [
        "blobs",
        "refs",
        "refs/main",
        "snapshots",
        f"snapshots/{FAKE_COMMIT}",
    ]

    # Nothing usable is cached, so offline mode still fails ...
    assert download(hub.env(hf_home, offline=True))["error"] == (
        "huggingface_hub.errors.LocalEntryNotFoundError"
    )
    # ... and once the server is fixed a plain retry succeeds.
    hub.set_serve(REPO, FILENAME, None)
    assert Path(download(hub.env(hf_home))["path"]).read_bytes() == DATA


def test_corrupt_download_of_right_size_is_cached_silently(hub: FakeHub, hf_home: Path) -> None:
    corrupt = bytes(len(DATA))
    hub.set_serve(REPO, FILENAME, corrupt)
    # huggingface_hub does not check the sha256 when downloading to the cache.
    path = Path(download(hub.env(hf_home))["path"])
    assert path.read_bytes() == corrupt
    assert path.resolve().name == hashlib.sha256(DATA).hexdigest()

    # The bad blob sticks: a later online call returns it after a HEAD only ...
    hub.set_serve(REPO, FILENAME, None)
    hub.requests.clear()
    assert Path(download(hub.env(hf_home))["path"]).read_bytes() == corrupt
    assert [method for method, _ in hub.requests] == ["HEAD"]
    # ... until force_download=True replaces it.
    fixed = download(hub.env(hf_home), force_download=True)
    assert Path(fixed["path"]).read_bytes() == DATA


def test_offline_with_empty_cache(hub: FakeHub, hf_home: Path) -> None:
    result = download(hub.env(hf_home, offline=True))
    assert result["error"] == "huggingface_hub.errors.LocalEntryNotFoundError"
    assert result["cause"] == "huggingface_hub.errors.OfflineModeIsEnabled"
    assert result["message"].startswith(
        "An error happened while trying to locate the file on the Hub"
    )

    result = download(hub.env(hf_home), local_files_only=True)
    assert result["error"] == "huggingface_hub.errors.LocalEntryNotFoundError"
    assert result["message"].startswith("Cannot find the requested files in the disk cache")
    assert hub.requests == []


def test_unreachable_endpoint(hub: FakeHub, hf_home: Path) -> None:
    closed = FakeHub()  # bind a free port, then release it without serving
    closed_url = closed.url
    closed.close()
    env = {**hub.env(hf_home), "HF_ENDPOINT": closed_url}

    # Nothing cached: huggingface_hub retries the HEAD 5 times (1+2+4+8+8 s of
    # back-off, skipped here) then raises.
    result = download(env, no_sleep=True)
    assert result["error"] == "huggingface_hub.errors.LocalEntryNotFoundError"
    assert result["cause"] == "httpx2.ConnectError"
    assert "Please check your connection" in result["message"]

    # Cached: the cached file is returned at once, without any retry.
    cached = download(hub.env(hf_home))
    assert download(env) == cached
    assert os.path.exists(cached["path"])
