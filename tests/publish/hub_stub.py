"""A strict stand-in for the Hugging Face Hub's HTTP API, for publishing tests (set HF_ENDPOINT to it).

It serves exactly the endpoints huggingface_hub (2.x) calls for whoami, create_repo, repo_info, list_repo_tree,
get_paths_info, list_repo_refs, create_branch, create_tag, validate-yaml and create_commit with the
legacy LFS protocol (preupload → LFS batch → PUT to a signed URL → verify → NDJSON commit), and checks
every request as the hub would: bearer token (401 without/with a wrong one, 403 for a read token or a
foreign namespace), repository and revision existence (404 with X-Error-Code), payload shapes
(preupload samples, LFS batch operation/transfers/oids, uploaded bytes' sha256 and size, commit header,
parent commit, LFS objects present, deleted paths existing), tag conflicts (409). Anything else is 404.
Xet is not offered: run huggingface_hub with HF_HUB_DISABLE_XET=1 against it.

Repositories live in memory as git-like commits of {path: blob}; `requests` records every call.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

HEX64 = re.compile(r"^[0-9a-f]{64}$")
HEX40 = re.compile(r"^[0-9a-f]{40}$")
REGULAR_LIMIT = 10 * 1024 * 1024


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Blob:
    size: int
    git_oid: str
    sha256: str | None = None  # LFS objects
    content: bytes | None = None  # regular files

    def entry(self, path: str) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "file", "oid": self.git_oid, "size": self.size, "path": path}
        if self.sha256:
            out["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": 134}
        return out


@dataclass
class Commit:
    oid: str
    parent: str | None
    files: dict[str, Blob]
    message: str


@dataclass
class Repo:
    repo_id: str
    repo_type: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        revision = unquote(revision)
        oid = self.branches.get(revision) or self.tags.get(revision) or (revision if revision in self.commits else None)
        return self.commits.get(oid) if oid else None


@dataclass
class Call:
    method: str
    path: str
    status: int
    size: int = 0


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, **extra: Any):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra


class HubState:
    def __init__(self, tokens: dict[str, dict[str, Any]]):
        self.tokens = tokens  # token → {"name", "orgs", "role"}
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.pending: dict[str, int] = {}  # oid → size the batch announced
        self.signatures: dict[str, str] = {}
        self.requests: list[Call] = []
        self.lock = threading.Lock()

    def calls(self, method: str | None = None, prefix: str = "") -> list[Call]:
        return [c for c in self.requests if (method is None or c.method == method) and c.path.startswith(prefix)]

    def head_files(self, repo_id: str, revision: str = "main", repo_type: str = "dataset") -> dict[str, Blob]:
        return self.repos[(repo_type, repo_id)].resolve(revision).files

    def content(self, repo_id: str, path: str, revision: str = "main") -> bytes:
        blob = self.head_files(repo_id, revision)[path]
        return self.lfs[blob.sha256] if blob.sha256 else blob.content


def _new_oid() -> str:
    return secrets.token_hex(20)


GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.arrow filter=lfs diff=lfs merge=lfs -text\n"


class Handler(BaseHTTPRequestHandler):
    server_version = "HubStub/1"
    state: HubState

    def log_message(self, *args) -> None:  # quiet
        pass

    # ------------------------------------------------------------------ plumbing

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _json_body(self, body: bytes) -> Any:
        try:
            return json.loads(body or b"null")
        except json.JSONDecodeError:
            raise HubError(400, "body is not JSON") from None

    def _reply(self, status: int, payload: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(payload if payload is not None else {}).encode()
        headers = dict(headers or {})
        headers.setdefault("Content-Type", "application/octet-stream" if raw is not None else "application/json")
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        body = self._body() if method in ("POST", "PUT") else b""
        status = 500
        try:
            with self.state.lock:
                status, payload, headers, raw = self._route(method, url.path, parse_qs(url.query), body)
            self._reply(status, payload, headers, raw)
        except HubError as error:
            status = error.status
            headers = {"X-Error-Message": error.message}
            if error.code:
                headers["X-Error-Code"] = error.code
            self._reply(status, {"error": error.message, **error.extra}, headers)
        finally:
            self.state.requests.append(Call(method, url.path, status, len(body)))

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # ------------------------------------------------------------------ auth and repos

    def _user(self) -> dict[str, Any]:
        auth = self.headers.get("Authorization") or self.headers.get("authorization") or ""
        if not auth.startswith("Bearer "):
            raise HubError(401, "Invalid credentials in Authorization header")
        user = self.state.tokens.get(auth[len("Bearer "):].strip())
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return user

    def _writer(self, namespace: str) -> dict[str, Any]:
        user = self._user()
        if user["role"] != "write":
            raise HubError(403, "You don't have the rights to write with this token")
        if namespace not in [user["name"], *user.get("orgs", [])]:
            raise HubError(403, f"You don't have the rights to write in {namespace}")
        return user

    def _repo(self, repo_type: str, repo_id: str, *, write: bool = False) -> Repo:
        user = self._writer(repo_id.split("/")[0]) if write else self._user()
        repo = self.state.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and repo_id.split("/")[0] not in [user["name"], *user.get("orgs", [])]):
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def _commit(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {unquote(revision)}", "RevisionNotFound")
        return commit

    # ------------------------------------------------------------------ routing

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes):
        base = f"http://{self.headers.get('Host')}"
        if method == "GET" and path == "/api/whoami-v2":
            user = self._user()
            return 200, {"type": "user", "name": user["name"], "orgs": [{"name": o} for o in user.get("orgs", [])],
                         "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": user["role"]}}}, None, None
        if method == "POST" and path == "/api/repos/create":
            return self._create_repo(self._json_body(body), base)
        if method == "POST" and path == "/api/validate-yaml":
            self._user()
            return self._validate_yaml(self._json_body(body))
        m = re.fullmatch(r"/(datasets/)?([\w.-]+/[\w.-]+)\.git/info/lfs/objects/batch", path)
        if method == "POST" and m:
            return self._lfs_batch("dataset" if m.group(1) else "model", m.group(2), self._json_body(body), base)
        m = re.fullmatch(r"/lfs-upload/([0-9a-f]{64})", path)
        if method == "PUT" and m:
            return self._lfs_put(m.group(1), query, body)
        if method == "POST" and path == "/lfs-verify":
            self._user()
            data = self._json_body(body)
            if not (isinstance(data, dict) and HEX64.match(str(data.get("oid", ""))) and isinstance(data.get("size"), int)):
                raise HubError(400, "verify payload must be {oid, size}")
            if len(self.state.lfs.get(data["oid"], b"")) != data["size"] or data["oid"] not in self.state.lfs:
                raise HubError(404, "object not uploaded")
            return 200, {}, None, None
        m = re.fullmatch(r"/api/(datasets|models|spaces)/([\w.-]+/[\w.-]+)(?:/(.*))?", path)
        if m:
            return self._repo_api(method, m.group(1)[:-1], m.group(2), m.group(3) or "", query, body, base)
        m = re.fullmatch(r"/datasets/([\w.-]+/[\w.-]+)/resolve/([^/]+)/(.+)", path)
        if method == "GET" and m:
            repo = self._repo("dataset", m.group(1))
            blob = self._commit(repo, m.group(2)).files.get(unquote(m.group(3)))
            if blob is None:
                raise HubError(404, "Entry not found", "EntryNotFound")
            return 200, None, None, self.state.lfs[blob.sha256] if blob.sha256 else blob.content
        raise HubError(404, f"no route {method} {path}")

    def _create_repo(self, data: Any, base: str):
        if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not data["name"]:
            raise HubError(400, "create payload needs a name")
        repo_type = data.get("type") or "model"
        if repo_type not in ("model", "dataset", "space"):
            raise HubError(400, f"invalid type {repo_type!r}")
        if "private" in data:
            raise HubError(400, "use `visibility`, not `private`")
        visibility = data.get("visibility", "public")
        if visibility not in ("public", "private"):
            raise HubError(400, f"invalid visibility {visibility!r}")
        user = self._user()
        namespace = data.get("organization") or user["name"]
        self._writer(namespace)
        repo_id = f"{namespace}/{data['name']}"
        prefix = "datasets/" if repo_type == "dataset" else ("spaces/" if repo_type == "space" else "")
        if (repo_type, repo_id) in self.state.repos:
            raise HubError(409, f"You already created this {repo_type} repo", url=f"{base}/{prefix}{repo_id}")
        repo = Repo(repo_id, repo_type, private=visibility == "private")
        first = Commit(_new_oid(), None, {".gitattributes": Blob(len(GITATTRIBUTES), git_sha1(GITATTRIBUTES), content=GITATTRIBUTES)},
                       "initial commit")
        repo.commits[first.oid] = first
        repo.branches["main"] = first.oid
        self.state.repos[(repo_type, repo_id)] = repo
        return 200, {"url": f"{base}/{prefix}{repo_id}", "name": repo_id, "id": secrets.token_hex(12)}, None, None

    def _validate_yaml(self, data: Any):
        if not isinstance(data, dict) or not isinstance(data.get("content"), str):
            raise HubError(400, "payload must be {content, repoType}")
        content = data["content"]
        errors = []
        m = re.match(r"^---\n(.*?)\n---\n", content, re.DOTALL)
        if not m:
            errors.append("README.md has no YAML metadata block")
            meta = {}
        else:
            try:
                meta = yaml.safe_load(m.group(1)) or {}
            except yaml.YAMLError as error:
                errors.append(f"metadata is not valid YAML: {error}")
                meta = {}
        if data.get("repoType") == "dataset" and meta:
            if not isinstance(meta.get("license"), str):
                errors.append('"license" must be a string')
            for key in ("task_categories", "tags", "language"):
                if key in meta and not (isinstance(meta[key], list) and all(isinstance(v, str) for v in meta[key])):
                    errors.append(f'"{key}" must be a list of strings')
            for config in meta.get("configs", []):
                if not isinstance(config, dict) or "config_name" not in config or "data_files" not in config:
                    errors.append('"configs" entries need config_name and data_files')
            info = meta.get("dataset_info")
            if info is not None and not (isinstance(info, dict) and isinstance(info.get("features"), list)):
                errors.append('"dataset_info.features" must be a list')
        if errors:
            return 400, {"errors": [{"message": e} for e in errors], "warnings": []}, None, None
        return 200, {"errors": [], "warnings": []}, None, None

    def _lfs_batch(self, repo_type: str, repo_id: str, data: Any, base: str):
        if self.headers.get("Accept") != "application/vnd.git-lfs+json":
            raise HubError(400, "LFS batch needs Accept: application/vnd.git-lfs+json")
        repo = self._repo(repo_type, repo_id, write=True)
        if not isinstance(data, dict) or data.get("operation") != "upload" or data.get("hash_algo") != "sha256":
            raise HubError(422, "LFS batch: operation must be 'upload' with hash_algo sha256")
        if "basic" not in (data.get("transfers") or []):
            raise HubError(422, "LFS batch: this server speaks the 'basic' transfer only")
        ref = (data.get("ref") or {}).get("name")
        if ref is not None and repo.resolve(ref) is None:
            raise HubError(404, f"Invalid rev id: {ref}", "RevisionNotFound")
        objects = []
        for obj in data.get("objects") or []:
            if not (isinstance(obj, dict) and HEX64.match(str(obj.get("oid", ""))) and isinstance(obj.get("size"), int)):
                raise HubError(422, "LFS batch: objects need a sha256 oid and an integer size")
            oid, size = obj["oid"], obj["size"]
            if oid in self.state.lfs:
                objects.append({"oid": oid, "size": size})  # already there: no actions
                continue
            signature = secrets.token_hex(8)
            self.state.signatures[oid] = signature
            self.state.pending[oid] = size
            objects.append({"oid": oid, "size": size, "authenticated": True, "actions": {
                "upload": {"href": f"{base}/lfs-upload/{oid}?X-Signature={signature}", "expires_in": 3600},
                "verify": {"href": f"{base}/lfs-verify", "header": {}},
            }})
        if not objects:
            raise HubError(422, "LFS batch: no objects")
        return 200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}, {"Content-Type": "application/vnd.git-lfs+json"}, None

    def _lfs_put(self, oid: str, query: dict[str, list[str]], body: bytes):
        if query.get("X-Signature", [""])[0] != self.state.signatures.get(oid):
            raise HubError(403, "bad upload signature")
        if hashlib.sha256(body).hexdigest() != oid or len(body) != self.state.pending.get(oid):
            raise HubError(400, "uploaded bytes do not match the announced oid and size")
        self.state.lfs[oid] = body
        self.state.pending.pop(oid, None)
        return 200, {}, None, None

    # ------------------------------------------------------------------ /api/<type>s/<repo>/...

    def _repo_api(self, method: str, repo_type: str, repo_id: str, rest: str, query, body: bytes, base: str):
        if method == "GET" and (rest == "" or rest.startswith("revision/")):
            repo = self._repo(repo_type, repo_id)
            commit = self._commit(repo, rest[len("revision/"):] if rest else "main")
            return 200, {"id": repo_id, "sha": commit.oid, "private": repo.private, "disabled": False, "gated": False,
                         "siblings": [{"rfilename": p} for p in sorted(commit.files)], "tags": [],
                         "lastModified": "2025-01-01T00:00:00.000Z"}, None, None
        if method == "GET" and rest.startswith("tree/"):
            repo = self._repo(repo_type, repo_id)
            parts = rest[len("tree/"):].split("/", 1)
            commit = self._commit(repo, parts[0])
            prefix = unquote(parts[1]) + "/" if len(parts) > 1 and parts[1] else ""
            recursive = query.get("recursive", ["false"])[0].lower() in ("true", "1")
            entries, folders = [], set()
            for path in sorted(commit.files):
                if not path.startswith(prefix):
                    continue
                rel = path[len(prefix):]
                if "/" in rel and not recursive:
                    folders.add(prefix + rel.split("/")[0])
                    continue
                if recursive:
                    bits = rel.split("/")[:-1]
                    folders.update(prefix + "/".join(bits[: i + 1]) for i in range(len(bits)))
                entries.append(commit.files[path].entry(path))
            entries += [{"type": "directory", "oid": hashlib.sha1(f.encode()).hexdigest(), "path": f} for f in sorted(folders)]
            return 200, entries, None, None
        if method == "POST" and rest.startswith("paths-info/"):
            repo = self._repo(repo_type, repo_id)
            commit = self._commit(repo, rest[len("paths-info/"):])
            form = parse_qs(body.decode())
            if "paths" not in form:
                raise HubError(400, "paths-info needs form field `paths`")
            return 200, [commit.files[p].entry(p) for p in form["paths"] if p in commit.files], None, None
        if method == "GET" and rest == "refs":
            repo = self._repo(repo_type, repo_id)
            return 200, {
                "branches": [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": c} for b, c in sorted(repo.branches.items())],
                "converts": [],
                "tags": [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": c} for t, c in sorted(repo.tags.items())],
            }, None, None
        if method == "POST" and rest.startswith("branch/"):
            repo = self._repo(repo_type, repo_id, write=True)
            name = unquote(rest[len("branch/"):])
            data = self._json_body(body) or {}
            if name in repo.branches:
                raise HubError(409, f"Branch {name} already exists")
            start = self._commit(repo, data.get("startingPoint") or "main")
            repo.branches[name] = start.oid
            return 200, {}, None, None
        if method == "POST" and rest.startswith("tag/"):
            repo = self._repo(repo_type, repo_id, write=True)
            commit = self._commit(repo, rest[len("tag/"):])
            data = self._json_body(body)
            if not isinstance(data, dict) or not isinstance(data.get("tag"), str) or not re.fullmatch(r"[\w.-]+", data["tag"]):
                raise HubError(400, "tag payload needs a valid `tag`")
            if data["tag"] in repo.tags:
                raise HubError(409, f"Tag {data['tag']} already exists")
            repo.tags[data["tag"]] = commit.oid
            return 200, {}, None, None
        if method == "POST" and rest.startswith("preupload/"):
            repo = self._repo(repo_type, repo_id, write=True)
            commit = self._commit(repo, rest[len("preupload/"):])
            data = self._json_body(body)
            if not isinstance(data, dict) or not isinstance(data.get("files"), list) or not data["files"]:
                raise HubError(400, "preupload needs a non-empty `files` list")
            out = []
            for f in data["files"]:
                try:
                    sample = base64.b64decode(f["sample"], validate=True)
                except (KeyError, TypeError, binascii.Error):
                    raise HubError(400, "preupload file needs a base64 `sample`") from None
                if not isinstance(f.get("path"), str) or not isinstance(f.get("size"), int) or len(sample) > 512:
                    raise HubError(400, "preupload file needs path (str), size (int) and a sample of at most 512 bytes")
                lfs = f["path"].endswith((".parquet", ".arrow")) or b"\0" in sample or f["size"] > REGULAR_LIMIT
                existing = commit.files.get(f["path"])
                oid = None
                if existing is not None:
                    oid = existing.sha256 if lfs else existing.git_oid
                out.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
            return 200, {"files": out, "commitOid": commit.oid}, None, None
        if method == "POST" and rest.startswith("commit/"):
            return self._create_commit(repo_type, repo_id, rest[len("commit/"):], body, base)
        raise HubError(404, f"no route {method} /api/{repo_type}s/{repo_id}/{rest}")

    def _create_commit(self, repo_type: str, repo_id: str, revision: str, body: bytes, base: str):
        if self.headers.get("Content-Type") != "application/x-ndjson":
            raise HubError(400, "commit body must be application/x-ndjson")
        repo = self._repo(repo_type, repo_id, write=True)
        branch = unquote(revision)
        if branch not in repo.branches:
            raise HubError(404, f"Invalid rev id: {branch} (commits go to a branch)", "RevisionNotFound")
        try:
            lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        except json.JSONDecodeError:
            raise HubError(400, "commit body: a line is not JSON") from None
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "commit body must start with a header line")
        header = lines[0].get("value") or {}
        if not isinstance(header.get("summary"), str) or not header["summary"].strip():
            raise HubError(400, "commit header needs a non-empty summary")
        head = repo.branches[branch]
        parent = header.get("parentCommit")
        if parent is not None:
            if not HEX40.match(parent):
                raise HubError(400, "parentCommit must be a commit oid")
            if parent != head:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(repo.commits[head].files)
        if len(lines) == 1:
            raise HubError(400, "commit has no operation")
        for line in lines[1:]:
            key, value = line.get("key"), line.get("value") or {}
            path = value.get("path")
            if not isinstance(path, str) or not path or path.startswith("/") or ".." in path.split("/"):
                raise HubError(400, f"invalid path {path!r}")
            if key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, "file content must be base64")
                content = base64.b64decode(value.get("content", ""), validate=True)
                if len(content) > REGULAR_LIMIT or path.endswith(".parquet"):
                    raise HubError(400, f"{path}: must be an LFS file")
                files[path] = Blob(len(content), git_sha1(content), content=content)
            elif key == "lfsFile":
                oid = value.get("oid")
                if value.get("algo") != "sha256" or not HEX64.match(str(oid)):
                    raise HubError(400, f"{path}: lfsFile needs algo sha256 and an oid")
                if oid not in self.state.lfs:
                    raise HubError(422, f"{path}: LFS object {oid[:12]} was never uploaded")
                size = len(self.state.lfs[oid])
                if "size" in value and value["size"] != size:
                    raise HubError(422, f"{path}: size {value['size']} does not match the object ({size})")
                pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()
                files[path] = Blob(size, git_sha1(pointer), sha256=oid)
            elif key == "deletedFile":
                if path not in files:
                    raise HubError(404, f"cannot delete {path}: no such file", "EntryNotFound")
                del files[path]
            elif key == "deletedFolder":
                gone = [p for p in files if p.startswith(path.rstrip("/") + "/")]
                if not gone:
                    raise HubError(404, f"cannot delete folder {path}", "EntryNotFound")
                for p in gone:
                    del files[p]
            else:
                raise HubError(400, f"unknown commit operation {key!r}")
        commit = Commit(_new_oid(), head, files, header["summary"])
        repo.commits[commit.oid] = commit
        repo.branches[branch] = commit.oid
        prefix = "datasets/" if repo_type == "dataset" else ""
        return 200, {"success": True, "commitOid": commit.oid, "commitUrl": f"{base}/{prefix}{repo_id}/commit/{commit.oid}",
                     "pullRequestUrl": None}, None, None


class HubStub:
    """`with HubStub(tokens) as hub:` serves on a free loopback port; `hub.url`, `hub.state`."""

    def __init__(self, tokens: dict[str, dict[str, Any]]):
        self.state = HubState(tokens)
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
