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

* ``GET /api/models/{repo_id}[/revision/{revision}]`` -- the repository's
  information (``id``, ``sha``, ``siblings``), as ``HfApi.model_info`` and
  ``snapshot_download`` read it.

* ``GET /api/models/{repo_id}/tree/{revision}[/{path}][?recursive=true]`` --
  the file listing (``HfApi.list_repo_tree``, ``list_repo_files``,
  ``snapshot_download``): files with their git blob sha1 as ``oid``, and their
  ``lfs`` sha256 where stored with LFS; folders too when recursive.

* ``POST /api/models/{repo_id}/paths-info/{revision}`` -- the same entries for
  the files named (``HfApi.get_paths_info``). No token needed.

Faults a mirror or a failing Hub shows, for tests of what users then get:

* ``add_file(..., etag=...)`` sends that ``ETag`` header instead of the file's
  hash (an md5, a weak ``W/"..."`` one) and no ``X-Linked-Etag``.
* ``add_file(..., listed=False)`` leaves the file out of the API's listings
  (tree, paths-info), so no hash can be looked up there either.
* ``resolve_faults[repo_id] = "500"`` answers every ``resolve`` request of that
  repository with a JSON ``500``; ``"html"`` with a ``200`` HTML page (a
  proxy's or captive portal's), without any Hub header.

Uploads (``HfApi.create_repo``, ``upload_file``, ``upload_folder``,
``create_commit``, and so ``keras.Model.save("hf://owner/repo")``), which need
``Authorization: Bearer`` :data:`TOKEN` (``401`` otherwise, as the Hub answers
a missing or wrong token):

* ``POST /api/repos/create`` -- creates an empty model repository; ``409`` if it
  exists (``exist_ok=True`` then goes on).
* ``POST /api/validate-yaml`` -- huggingface_hub's check of a ``README.md``'s
  metadata before uploading it: ``400`` when its ``---`` block is not closed,
  no errors otherwise (the metadata itself is not checked). No token needed.
* ``POST /api/models/{repo_id}/preupload/{revision}`` -- answers
  ``uploadMode: "regular"`` for every file, so huggingface_hub sends the
  content base64-encoded in the commit itself: no LFS, no Xet.
* ``POST /api/models/{repo_id}/commit/{revision}`` -- the ndjson commit: files
  are stored (as plain git files, ``lfs=False``) or deleted, and the repository
  gets a new commit sha, which the download routes then serve and accept.

Unknown repositories answer ``404`` with ``X-Error-Code: RepoNotFound``,
unknown files ``404`` with ``X-Error-Code: EntryNotFound`` (plus
``X-Repo-Commit``), unknown revisions ``404`` with
``X-Error-Code: RevisionNotFound``, so huggingface_hub raises its usual
``RepositoryNotFoundError`` / ``RemoteEntryNotFoundError`` /
``RevisionNotFoundError``. No Xet header (``X-Xet-Hash``, ``Link: xet-auth``)
is ever sent, so the plain HTTP download path is always used even when
``hf_xet`` is installed.

Only model repositories are served (no ``datasets/`` or ``spaces/`` prefix).
The revision ``"main"`` and the repository's commit are accepted: :data:`FAKE_COMMIT`
until an upload commits to it, then the sha of its newest commit.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Self
from urllib.parse import parse_qs, quote, unquote, urlsplit

FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"
"""The commit sha every repository of the fake Hub is at."""

REVISION = "main"
"""The only branch name the fake Hub knows."""

TOKEN = "hf_fake_write_token"
"""The token uploads must carry (``FakeHub.env(..., token=TOKEN)`` sets it)."""

_API_MODELS_RE = re.compile(
    r"^/api/models/(?P<repo>[^/]+(?:/[^/]+)??)"
    r"(?:/(?P<action>revision|tree|preupload|commit|paths-info)(?:/(?P<rest>.*))?)?$"
)

_RANGE_RE = re.compile(r"^bytes=(\d+)-(\d*)$")
_EMPTY_AGENT_REGISTRY = json.dumps({"standardEnvVars": [], "harnesses": {}}).encode()
_PORTAL_PAGE = b"<!DOCTYPE html><html><body>Please log in to use this network.</body></html>"


@dataclass
class _File:
    data: bytes
    lfs: bool
    serve: bytes | None
    etag_header: str | None = None
    listed: bool = True

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

    @property
    def git_oid(self) -> str:
        """The git blob sha1 of ``data``, the ``oid`` the Hub lists for every file."""
        return hashlib.sha1(b"blob %d\0" % len(self.data) + self.data).hexdigest()


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
        self._repos: set[str] = set()  # created empty, or by an upload
        self._commits: dict[str, str] = {}  # repo -> newest commit, where one was made
        self._lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.hub = self  # type: ignore[attr-defined]
        self.port: int = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._cdn_url = f"http://localhost:{self.port}"
        self._thread: threading.Thread | None = None
        self.resolve_faults: dict[str, str] = {}

    # -- registry -----------------------------------------------------------

    def add_file(
        self,
        repo_id: str,
        filename: str,
        data: bytes,
        *,
        lfs: bool = True,
        serve: bytes | None = None,
        etag: str | None = None,
        listed: bool = True,
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
            etag: if given, the ``ETag`` header sent instead of the hash (as
                a mirror might), without ``X-Linked-Etag``.
            listed: whether the API's listings (tree, paths-info) show it.
        """
        with self._lock:
            self._files[(repo_id, filename)] = _File(bytes(data), lfs, serve, etag, listed)

    def set_serve(self, repo_id: str, filename: str, serve: bytes | None) -> None:
        """Change what is sent for an already registered file (None: send ``data``)."""
        with self._lock:
            self._files[(repo_id, filename)].serve = serve

    def etag(self, repo_id: str, filename: str) -> str:
        """The etag advertised for a file, i.e. the name of its blob in the cache."""
        with self._lock:
            return self._files[(repo_id, filename)].etag

    def commit(self, repo_id: str) -> str:
        """The repository's current commit sha (:data:`FAKE_COMMIT` until an upload)."""
        with self._lock:
            return self._commits.get(repo_id, FAKE_COMMIT)

    def files(self, repo_id: str) -> dict[str, bytes]:
        """``{filename: content}`` of a repository, uploads included."""
        with self._lock:
            files = sorted(self._files.items())
            return {name: f.data for (repo, name), f in files if repo == repo_id}

    def env(
        self,
        hf_home: str | os.PathLike[str],
        *,
        offline: bool = False,
        token: str | None = None,
    ) -> dict[str, str]:
        """A copy of ``os.environ`` that points huggingface_hub at this server.

        Sets ``HF_ENDPOINT`` and ``HF_HOME``, drops variables that would move the
        cache or add a token, disables telemetry and progress bars, and bypasses
        any proxy for the loopback host names. ``offline=True`` adds
        ``HF_HUB_OFFLINE=1``. ``token`` (e.g. :data:`TOKEN`, for uploads) is set
        as ``HF_TOKEN`` and sent with every request; without it none is sent.
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
        if token is not None:
            env["HF_TOKEN"] = token
            del env["HF_HUB_DISABLE_IMPLICIT_TOKEN"]
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
            return self._exists(repo_id), self._files.get((repo_id, filename))

    def _exists(self, repo_id: str) -> bool:
        # Called with the lock held.
        return repo_id in self._repos or any(repo == repo_id for repo, _ in self._files)

    def _listing(self, repo_id: str) -> list[tuple[str, _File]]:
        """The files the API lists (not those added with ``listed=False``)."""
        with self._lock:
            files = sorted(self._files.items())
            return [(name, f) for (repo, name), f in files if repo == repo_id and f.listed]

    def _create(self, repo_id: str) -> bool:
        """Creates an empty repository; False if it exists."""
        with self._lock:
            if self._exists(repo_id):
                return False
            self._repos.add(repo_id)
            return True

    def _apply_commit(self, repo_id: str, operations: list[dict], payload: bytes) -> str:
        """Adds and deletes files as ``operations`` say; returns the new commit sha."""
        with self._lock:
            for operation in operations:
                key, value = operation["key"], operation["value"]
                if key == "file":
                    data = base64.b64decode(value["content"])
                    self._files[(repo_id, value["path"])] = _File(data, lfs=False, serve=None)
                elif key == "deletedFile":
                    self._files.pop((repo_id, value["path"]), None)
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    for repo, name in list(self._files):
                        if repo == repo_id and name.startswith(prefix):
                            del self._files[(repo, name)]
            self._repos.add(repo_id)
            parent = self._commits.get(repo_id, FAKE_COMMIT)
            commit = hashlib.sha1(parent.encode() + payload + str(time.time_ns()).encode())
            self._commits[repo_id] = commit.hexdigest()
            return self._commits[repo_id]

    def _cdn_location(self, repo_id: str, filename: str) -> str:
        return f"{self._cdn_url}/cdn/{quote(repo_id)}/{quote(filename)}"


def _file_entry(path: str, file: _File) -> dict:
    """A file as the Hub's tree and paths-info routes list it."""
    entry = {"type": "file", "oid": file.git_oid, "size": len(file.data), "path": path}
    if file.lfs:
        entry["lfs"] = {"oid": file.etag, "size": len(file.data), "pointerSize": 134}
    return entry


class _Handler(http.server.BaseHTTPRequestHandler):
    """Routes requests to the owning :class:`FakeHub` (``self.server.hub``)."""

    protocol_version = "HTTP/1.1"
    server_version = "FakeHub/1.0"

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_POST(self) -> None:
        self.hub._log(self.command, self.path)
        body = self._read_body()
        path = unquote(urlsplit(self.path).path)
        match = _API_MODELS_RE.match(path)
        if path == "/api/validate-yaml":
            self._validate_yaml(json.loads(body).get("content", ""))
        elif match and match["action"] == "paths-info":
            revision = match["rest"] or REVISION
            self._paths_info(match["repo"], revision, parse_qs(body.decode()).get("paths", []))
        elif path != "/api/repos/create" and not (
            match and match["action"] in ("preupload", "commit")
        ):
            self._error(404, "NotFound", f"Not found: {path}", head=False)
        elif self.headers.get("Authorization") != f"Bearer {TOKEN}":
            message = (
                "Invalid credentials in Authorization header"
                if self.headers.get("Authorization")
                else "Invalid username or password."
            )
            self._error(401, "Unauthorized", message, head=False)
        elif path == "/api/repos/create":
            self._create_repo(json.loads(body))
        elif match["action"] == "preupload":
            self._preupload(match["repo"], match["rest"] or "", json.loads(body))
        else:
            self._commit(match["repo"], match["rest"] or "", body)

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

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _json(self, value: object, *, status: int = 200, head: bool = False) -> None:
        body = json.dumps(value).encode()
        self._reply(status, {"Content-Type": "application/json"}, body, head=head)

    def _dispatch(self, *, head: bool) -> None:
        self.hub._log(self.command, self.path)
        split = urlsplit(self.path)
        path = unquote(split.path)
        match = _API_MODELS_RE.match(path)
        if path == "/api/agent-harnesses":
            headers = {"Content-Type": "application/json"}
            self._reply(200, headers, _EMPTY_AGENT_REGISTRY, head=head)
        elif match and match["action"] in (None, "revision"):
            self._model_info(match["repo"], match["rest"] or REVISION, head=head)
        elif match and match["action"] == "tree":
            revision, _, folder = (match["rest"] or REVISION).partition("/")
            recursive = "recursive=true" in split.query.lower()
            self._tree(match["repo"], revision, folder, recursive, head=head)
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
        fault = self.hub.resolve_faults.get(repo_id)
        if fault == "500":
            self._error(500, "InternalError", "Internal Error", head=head)
            return
        if fault == "html":
            self._reply(200, {"Content-Type": "text/html; charset=utf-8"}, _PORTAL_PAGE, head=head)
            return
        repo_exists, file = self.hub._lookup(repo_id, filename)
        if not repo_exists:
            self._error(404, "RepoNotFound", "Repository not found", head=head)
            return
        commit = self.hub.commit(repo_id)
        if revision not in (REVISION, commit):
            self._error(404, "RevisionNotFound", "Invalid rev id: " + revision, head=head)
            return
        if file is None:
            self._error(
                404,
                "EntryNotFound",
                "Entry not found",
                head=head,
                **{"X-Repo-Commit": commit},
            )
            return
        size = str(len(file.data))
        etag = f'"{file.etag}"' if file.etag_header is None else file.etag_header
        if file.lfs:
            headers = {
                "X-Repo-Commit": commit,
                "X-Linked-Size": size,
                "ETag": etag,
                "Location": self.hub._cdn_location(repo_id, filename),
            }
            if file.etag_header is None:
                headers["X-Linked-Etag"] = etag
            self._reply(302, headers, head=head)
        elif head:
            headers = {
                "X-Repo-Commit": commit,
                "ETag": etag,
                "Content-Length": size,
                "Content-Type": "application/octet-stream",
            }
            self._reply(200, headers, head=True)
        else:
            self._send_content(file, extra={"X-Repo-Commit": commit})

    def _check_repo(self, repo_id: str, revision: str, *, head: bool) -> bool:
        """Answers 404 (and returns False) for an unknown repository or revision."""
        repo_exists, _ = self.hub._lookup(repo_id, "")
        if not repo_exists:
            self._error(404, "RepoNotFound", "Repository not found", head=head)
            return False
        if revision not in (REVISION, self.hub.commit(repo_id)):
            self._error(404, "RevisionNotFound", "Invalid rev id: " + revision, head=head)
            return False
        return True

    def _model_info(self, repo_id: str, revision: str, *, head: bool) -> None:
        """``/api/models/{repo_id}[/revision/{revision}]``."""
        if not self._check_repo(repo_id, revision, head=head):
            return
        siblings = [{"rfilename": name} for name, _ in self.hub._listing(repo_id)]
        info = {
            "id": repo_id,
            "modelId": repo_id,
            "sha": self.hub.commit(repo_id),
            "private": False,
            "siblings": siblings,
        }
        self._json(info, head=head)

    def _tree(self, repo_id: str, revision: str, folder: str, recursive: bool, *, head: bool):
        """``/api/models/{repo_id}/tree/{revision}[/{folder}]``: files, and folders."""
        if not self._check_repo(repo_id, revision, head=head):
            return
        prefix = folder.strip("/") + "/" if folder.strip("/") else ""
        entries: dict[str, dict] = {}
        for name, file in self.hub._listing(repo_id):
            if not name.startswith(prefix):
                continue
            parts = name[len(prefix) :].split("/")
            for depth in range(1, len(parts)):  # the folders on the way
                path = prefix + "/".join(parts[:depth])
                if depth == 1 or recursive:
                    oid = hashlib.sha1(path.encode()).hexdigest()
                    folder_entry = {"type": "directory", "oid": oid, "size": 0, "path": path}
                    entries.setdefault(path, folder_entry)
            if len(parts) == 1 or recursive:
                entries[name] = _file_entry(name, file)
        self._json(list(entries.values()), head=head)

    def _paths_info(self, repo_id: str, revision: str, paths: list[str]) -> None:
        """``POST /api/models/{repo_id}/paths-info/{revision}``: the files named."""
        if not self._check_repo(repo_id, revision, head=False):
            return
        files = dict(self.hub._listing(repo_id))
        self._json([_file_entry(path, files[path]) for path in paths if path in files])

    def _create_repo(self, payload: dict) -> None:
        """``POST /api/repos/create``."""
        if payload.get("type", "model") not in (None, "model"):
            self._error(400, "BadRequest", "Only model repositories are served", head=False)
            return
        name, organization = payload["name"], payload.get("organization")
        repo_id = f"{organization}/{name}" if organization else name
        url = f"{self.hub.url}/{repo_id}"
        if not self.hub._create(repo_id):
            self._json({"error": "You already created this model repo", "url": url}, status=409)
            return
        self._json({"url": url, "name": repo_id, "id": repo_id})

    def _validate_yaml(self, content: str) -> None:
        """``POST /api/validate-yaml``: only that a metadata block is closed."""
        lines = content.lstrip().splitlines()
        if lines and lines[0].strip() == "---" and "---" not in (x.strip() for x in lines[1:]):
            error = {"message": "The metadata block opened by '---' is not closed"}
            self._json({"errors": [error], "warnings": []}, status=400)
            return
        self._json({"errors": [], "warnings": []})

    def _preupload(self, repo_id: str, revision: str, payload: dict) -> None:
        """``POST /api/models/{repo_id}/preupload/{revision}``: every file is "regular"."""
        if not self._check_repo(repo_id, revision, head=False):
            return
        files = []
        for entry in payload["files"]:
            _, existing = self.hub._lookup(repo_id, entry["path"])
            files.append(
                {
                    "path": entry["path"],
                    "uploadMode": "regular",
                    "shouldIgnore": False,
                    "oid": None if existing is None else existing.git_oid,
                }
            )
        self._json({"files": files, "commitOid": self.hub.commit(repo_id)})

    def _commit(self, repo_id: str, revision: str, body: bytes) -> None:
        """``POST /api/models/{repo_id}/commit/{revision}``: the ndjson operations."""
        if not self._check_repo(repo_id, revision, head=False):
            return
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        operations = [line for line in lines if line.get("key") != "header"]
        unsupported = {op["key"] for op in operations} - {"file", "deletedFile", "deletedFolder"}
        if unsupported:
            message = f"The fake Hub stores regular files only, got {sorted(unsupported)}"
            self._error(400, "BadRequest", message, head=False)
            return
        commit = self.hub._apply_commit(repo_id, operations, body)
        self._json(
            {
                "success": True,
                "commitOid": commit,
                "commitUrl": f"{self.hub.url}/{repo_id}/commit/{commit}",
                "hookOutput": "",
            }
        )

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
