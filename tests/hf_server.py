"""A tiny loopback HTTP server that impersonates the Hugging Face Hub for tests.

It implements just enough of the Hub for ``huggingface_hub.hf_hub_download``
(checked against huggingface_hub 2.4.0) to download a file into the cache:

* ``HEAD``/``GET /{repo_id}/resolve/{revision}/{filename}`` -- the "resolve"
  endpoint. Every answer carries ``X-Repo-Commit`` (mandatory: without it
  huggingface_hub refuses the endpoint).

  - LFS files (``lfs=True``, the default) answer like the real Hub does for
    large files: ``302`` to a "CDN" URL on another host name
    (``http://localhost:PORT/cdn/...``) with ``X-Linked-Etag`` (the sha256 of
    the advertised content) and ``X-Linked-Size``. Because the host name
    differs from ``127.0.0.1``, huggingface_hub does not follow the redirect
    during its metadata ``HEAD`` call; it reads the metadata from the ``302``
    itself and then ``GET``\\s the CDN URL (without the auth header).
  - Regular git files (``lfs=False``) answer ``200`` directly, with the git
    blob sha1 as ``ETag`` and the advertised size as ``Content-Length``.

* ``GET /cdn/{repo_id}/{filename}`` -- the bytes actually served (``serve``,
  or ``data`` when ``serve`` is None). ``Content-Length`` always matches what is
  sent. ``Range: bytes=START-[END]`` is honoured with ``206``.

* ``GET /api/agent-harnesses`` -- an empty registry. huggingface_hub fetches it
  once per ``HF_HOME`` (user-agent telemetry) unless
  ``HF_HUB_DISABLE_TELEMETRY=1``; :meth:`FakeHub.env` sets that variable.

Unknown repositories answer ``404`` with ``X-Error-Code: RepoNotFound``,
unknown files ``404`` with ``X-Error-Code: EntryNotFound`` (plus
``X-Repo-Commit``), unknown revisions ``404`` with
``X-Error-Code: RevisionNotFound``, so huggingface_hub raises its usual
``RepositoryNotFoundError`` / ``RemoteEntryNotFoundError`` /
``RevisionNotFoundError``. No Xet header (``X-Xet-Hash``, ``Link: xet-auth``)
is ever sent, so the plain HTTP download path is always used even when
``hf_xet`` is installed.

Only model repositories are served (no ``datasets/`` or ``spaces/`` prefix).
The revision ``"main"`` and the commit :data:`FAKE_COMMIT` are accepted.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import threading
from dataclasses import dataclass
from typing import Self
from urllib.parse import quote, unquote, urlsplit

FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"
"""The commit sha every repository of the fake Hub is at."""

REVISION = "main"
"""The only branch name the fake Hub knows."""

_RANGE_RE = re.compile(r"^bytes=(\d+)-(\d*)$")
_EMPTY_AGENT_REGISTRY = json.dumps({"standardEnvVars": [], "harnesses": {}}).encode()


@dataclass
class _File:
    data: bytes
    lfs: bool
    serve: bytes | None

    @property
    def etag(self) -> str:
        """sha256 of ``data`` for LFS files, git blob sha1 of ``data`` otherwise."""
        if self.lfs:
            return hashlib.sha256(self.data).hexdigest()
        return hashlib.sha1(b"blob %d\0" % len(self.data) + self.data).hexdigest()

    @property
    def body(self) -> bytes:
        """The bytes really sent on GET."""
        return self.data if self.serve is None else self.serve


class FakeHub:
    """A fake Hugging Face Hub on ``127.0.0.1``, served from a daemon thread.

    Use it as a context manager::

        with FakeHub() as hub:
            hub.add_file("timm/some_repo", "model.safetensors", b"...")
            subprocess.run([...], env=hub.env(tmp_path / "hf_home"))
            assert hub.requests == [...]

    Attributes:
        url: ``"http://127.0.0.1:PORT"``, the value for ``HF_ENDPOINT``.
        requests: ``(method, path)`` of every request received, in order
            (path includes the query string, if any).
    """

    def __init__(self) -> None:
        self._files: dict[tuple[str, str], _File] = {}
        self._lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.hub = self  # type: ignore[attr-defined]
        self.port: int = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._cdn_url = f"http://localhost:{self.port}"
        self._thread: threading.Thread | None = None

    # -- registry -----------------------------------------------------------

    def add_file(
        self,
        repo_id: str,
        filename: str,
        data: bytes,
        *,
        lfs: bool = True,
        serve: bytes | None = None,
    ) -> None:
        """Register ``filename`` (may contain ``/``) in ``repo_id`` (creating the repo).

        Args:
            repo_id: e.g. ``"timm/some_repo"``.
            filename: path inside the repo.
            data: the file's true content; its size and hash are advertised.
            lfs: LFS file (302 to the CDN, ETag = sha256 of ``data``) or plain
                git file (200, ETag = git blob sha1 of ``data``).
            serve: if given, the bytes actually sent on GET instead of
                ``data`` (to simulate a truncated or corrupt download).
        """
        with self._lock:
            self._files[(repo_id, filename)] = _File(bytes(data), lfs, serve)

    def set_serve(self, repo_id: str, filename: str, serve: bytes | None) -> None:
        """Change what is sent for an already registered file (None: send ``data``)."""
        with self._lock:
            self._files[(repo_id, filename)].serve = serve

    def etag(self, repo_id: str, filename: str) -> str:
        """The etag advertised for a file, i.e. the name of its blob in the cache."""
        with self._lock:
            return self._files[(repo_id, filename)].etag

    def env(self, hf_home: str | os.PathLike[str], *, offline: bool = False) -> dict[str, str]:
        """A copy of ``os.environ`` that points huggingface_hub at this server.

        Sets ``HF_ENDPOINT`` and ``HF_HOME``, drops variables that would move the
        cache or add a token, disables telemetry and progress bars, and bypasses
        any proxy for the loopback host names. ``offline=True`` adds
        ``HF_HUB_OFFLINE=1``.
        """
        env = dict(os.environ)
        for var in (
            "HF_HUB_CACHE",
            "HUGGINGFACE_HUB_CACHE",
            "HF_TOKEN",
            "HUGGING_FACE_HUB_TOKEN",
            "HF_HUB_OFFLINE",
            "TRANSFORMERS_OFFLINE",
            "HF_HUB_ETAG_TIMEOUT",
            "HF_HUB_DOWNLOAD_TIMEOUT",
        ):
            env.pop(var, None)
        no_proxy = "127.0.0.1,localhost"
        env.update(
            HF_ENDPOINT=self.url,
            HF_HOME=os.fspath(hf_home),
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1",
            HF_HUB_DISABLE_IMPLICIT_TOKEN="1",
            NO_PROXY=no_proxy,
            no_proxy=no_proxy,
        )
        if offline:
            env["HF_HUB_OFFLINE"] = "1"
        return env

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> Self:
        """Start serving in a daemon thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"FakeHub:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- request handling (called from the handler threads) -------------------

    def _log(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))

    def _lookup(self, repo_id: str, filename: str) -> tuple[bool, _File | None]:
        """(repo exists, file or None)."""
        with self._lock:
            repo_exists = any(repo == repo_id for repo, _ in self._files)
            return repo_exists, self._files.get((repo_id, filename))

    def _cdn_location(self, repo_id: str, filename: str) -> str:
        return f"{self._cdn_url}/cdn/{quote(repo_id)}/{quote(filename)}"


class _Handler(http.server.BaseHTTPRequestHandler):
    """Routes requests to the owning :class:`FakeHub` (``self.server.hub``)."""

    protocol_version = "HTTP/1.1"
    server_version = "FakeHub/1.0"

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def log_message(self, format: str, *args: object) -> None:
        """Silence the default stderr access log."""

    # -- helpers --------------------------------------------------------------

    @property
    def hub(self) -> FakeHub:
        return self.server.hub  # type: ignore[attr-defined]

    def _reply(
        self,
        status: int,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        *,
        head: bool,
    ) -> None:
        """Send a complete response; one request per connection."""
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if not head and body:
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, *, head: bool, **extra: str) -> None:
        body = json.dumps({"error": message}).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Error-Code": code,
            "X-Error-Message": message,
            **extra,
        }
        self._reply(status, headers, body, head=head)

    def _dispatch(self, *, head: bool) -> None:
        self.hub._log(self.command, self.path)
        path = unquote(urlsplit(self.path).path)
        if path == "/api/agent-harnesses":
            headers = {"Content-Type": "application/json"}
            self._reply(200, headers, _EMPTY_AGENT_REGISTRY, head=head)
        elif path.startswith("/cdn/"):
            self._cdn(path[len("/cdn/") :], head=head)
        elif "/resolve/" in path:
            self._resolve(path, head=head)
        else:
            self._error(404, "NotFound", f"Not found: {path}", head=head)

    def _resolve(self, path: str, *, head: bool) -> None:
        """``/{repo_id}/resolve/{revision}/{filename}``."""
        repo_id, _, rest = path.lstrip("/").partition("/resolve/")
        revision, _, filename = rest.partition("/")
        repo_exists, file = self.hub._lookup(repo_id, filename)
        if not repo_exists:
            self._error(404, "RepoNotFound", "Repository not found", head=head)
            return
        if revision not in (REVISION, FAKE_COMMIT):
            self._error(404, "RevisionNotFound", "Invalid rev id: " + revision, head=head)
            return
        if file is None:
            self._error(
                404,
                "EntryNotFound",
                "Entry not found",
                head=head,
                **{"X-Repo-Commit": FAKE_COMMIT},
            )
            return
        size = str(len(file.data))
        if file.lfs:
            headers = {
                "X-Repo-Commit": FAKE_COMMIT,
                "X-Linked-Etag": f'"{file.etag}"',
                "X-Linked-Size": size,
                "ETag": f'"{file.etag}"',
                "Location": self.hub._cdn_location(repo_id, filename),
            }
            self._reply(302, headers, head=head)
        elif head:
            headers = {
                "X-Repo-Commit": FAKE_COMMIT,
                "ETag": f'"{file.etag}"',
                "Content-Length": size,
                "Content-Type": "application/octet-stream",
            }
            self._reply(200, headers, head=True)
        else:
            self._send_content(file, extra={"X-Repo-Commit": FAKE_COMMIT})

    def _cdn(self, rest: str, *, head: bool) -> None:
        """``/cdn/{repo_id}/{filename}``: the LFS bytes (no Hub headers)."""
        parts = rest.split("/")
        for n in (2, 1):  # repo ids are "namespace/name" or just "name"
            repo_id, filename = "/".join(parts[:n]), "/".join(parts[n:])
            _, file = self.hub._lookup(repo_id, filename)
            if file is not None:
                if head:
                    headers = {
                        "ETag": f'"{file.etag}"',
                        "Content-Length": str(len(file.body)),
                    }
                    self._reply(200, headers, head=True)
                else:
                    self._send_content(file, extra={"ETag": f'"{file.etag}"'})
                return
        self._reply(404, {"Content-Type": "text/plain"}, b"NoSuchKey", head=head)

    def _send_content(self, file: _File, *, extra: dict[str, str]) -> None:
        """Send ``file.body``, honouring a ``Range: bytes=START-[END]`` header."""
        body = file.body
        headers = {
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
            **extra,
        }
        range_header = self.headers.get("Range")
        match = _RANGE_RE.match(range_header or "")
        if range_header is None or match is None:
            self._reply(200, headers, body, head=False)
            return
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) else len(body) - 1
        end = min(end, len(body) - 1)
        if start >= len(body) or start > end:
            headers["Content-Range"] = f"bytes */{len(body)}"
            self._reply(416, headers, head=False)
            return
        headers["Content-Range"] = f"bytes {start}-{end}/{len(body)}"
        self._reply(206, headers, body[start : end + 1], head=False)
