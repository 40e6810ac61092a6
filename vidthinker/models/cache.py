"""Content-addressed request cache: a rerun after a crash pays for no call twice.

Key = sha256 over the canonical JSON of (model id, caller's prompt hash, messages with every image
replaced by the sha256 of its bytes, sampling params, schema name and schema). Replies live in one
SQLite file (WAL; one connection per thread; safe across threads and processes). Only successful
replies are stored.

On a network filesystem (NFS, CIFS, Lustre, CephFS, GlusterFS, FUSE mounts...), where Ray workers on
several hosts may share the run folder, SQLite's WAL mode cannot work (its index lives in shared memory
of one host) and one file written from several hosts can be corrupted. There each host gets its own
file (`chat_cache.<host>.sqlite`) in rollback-journal mode, and a warning says so once: a rerun on the
same host still replays its replies; a shard moved to another host pays for its calls again.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from .base import ChatModel, ChatReply, ChatRequest, ImagePart, TextPart, Usage, VideoPart

__all__ = ["CachedChatModel", "RequestCache", "canonical_request", "request_key"]

log = logging.getLogger(__name__)

KEY_VERSION = 1

# Filesystem types (mountinfo's fstype, before any ".subtype") that are shared between hosts.
NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "ceph", "glusterfs", "9p", "afs",
    "beegfs", "fuse", "fuseblk", "wekafs", "panfs", "ocfs2", "gfs2",
})
_warned: set[str] = set()


def filesystem_type(path: str | Path, mountinfo: str | None = None) -> str | None:
    """Type of the filesystem holding `path` (Linux: the longest mount point prefix in
    /proc/self/mountinfo), or None where that cannot be told."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return None
    target = os.path.realpath(path)
    best, best_type = "", None
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        mount_point = fields[4].replace("\\040", " ")
        fstype = line.split(" - ", 1)[1].split()[0]
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, fstype
    return best_type


def is_network_filesystem(fstype: str | None) -> bool:
    return fstype is not None and fstype.split(".")[0] in NETWORK_FILESYSTEMS


def _url_digest(url: str) -> str:
    """sha256 of the image bytes for data URLs, of the URL string otherwise."""
    if url.startswith("data:"):
        header, _, payload = url.partition(",")
        raw = base64.b64decode(payload) if header.endswith(";base64") else payload.encode()
        return "sha256:" + hashlib.sha256(raw).hexdigest()
    return "url-sha256:" + hashlib.sha256(url.encode()).hexdigest()


def _canonical_content(content: Any) -> Any:
    if isinstance(content, str):
        return content
    out: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            out.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            out.append({"type": "image", "digest": _url_digest(part.url), "detail": part.detail})
        elif isinstance(part, VideoPart):
            out.append(
                {
                    "type": "video",
                    "frames": [_url_digest(u) for u in part.frames],
                    "url": _url_digest(part.url) if part.url else None,
                    "detail": part.detail,
                }
            )
        else:
            raise TypeError(f"unknown content part {type(part).__name__}")
    return out


def canonical_request(model_id: str, request: ChatRequest) -> str:
    doc = {
        "v": KEY_VERSION,
        "model": model_id,
        "prompt_hash": request.prompt_hash,
        "messages": [{"role": m.role, "content": _canonical_content(m.content)} for m in request.messages],
        "json_schema": request.json_schema,
        "schema_name": request.schema_name,
        **request.sampling(),
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def request_key(model_id: str, request: ChatRequest) -> str:
    return hashlib.sha256(canonical_request(model_id, request).encode("utf-8")).hexdigest()


class RequestCache:
    """SQLite-backed reply store under ``directory`` (file ``chat_cache.sqlite``)."""

    FILENAME = "chat_cache.sqlite"

    def __init__(self, directory: str | Path, *, busy_timeout_s: float = 60.0, fstype: str | None = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.fstype = fstype or filesystem_type(self.directory)
        self.shared_filesystem = is_network_filesystem(self.fstype)
        if self.shared_filesystem:
            host = "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname()) or "host"
            self.path = self.directory / f"chat_cache.{host}.sqlite"
            self._journal = "DELETE"
            if str(self.directory) not in _warned:
                _warned.add(str(self.directory))
                log.warning(
                    "request cache %s is on a network filesystem (%s), where SQLite cannot share one file "
                    "between hosts: this host uses %s (no WAL); a shard retried on another host pays for "
                    "its calls again", self.directory, self.fstype, self.path.name,
                )
        else:
            self.path = self.directory / self.FILENAME
            self._journal = "WAL"
        self._busy_ms = int(busy_timeout_s * 1000)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.writes = 0
        conn = self._conn()
        with conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS replies ("
                " key TEXT PRIMARY KEY, model_id TEXT NOT NULL, created_at REAL NOT NULL,"
                " reply TEXT NOT NULL)"
            )

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=self._busy_ms / 1000, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout={self._busy_ms}")
            conn.execute(f"PRAGMA journal_mode={self._journal}")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def get(self, key: str) -> ChatReply | None:
        row = self._conn().execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        with self._lock:
            if row is None:
                self.misses += 1
                return None
            self.hits += 1
        return ChatReply.from_dict(json.loads(row[0]))

    def put(self, key: str, model_id: str, reply: ChatReply) -> None:
        payload = json.dumps(reply.as_dict(), ensure_ascii=False, allow_nan=False)
        self._conn().execute(
            "INSERT OR IGNORE INTO replies (key, model_id, created_at, reply) VALUES (?, ?, ?, ?)",
            (key, model_id, time.time(), payload),
        )
        with self._lock:
            self.writes += 1

    def __len__(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM replies").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.close()
            except sqlite3.ProgrammingError:
                pass
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"RequestCache({str(self.path)!r})"


class CachedChatModel:
    """Wraps any ``ChatModel``; identical requests are answered from the cache.

    A cached reply has ``cached=True`` and ``usage.calls == 0`` / ``usage.cached_calls == 1``
    (its token counts are those of the reply it replays). Identical requests running at the same
    time in one process share one call. Failures are never stored.
    """

    def __init__(self, inner: ChatModel, cache: RequestCache):
        self.inner = inner
        self.cache = cache
        self.model_id = inner.model_id
        self.hits = 0
        self.misses = 0
        self._pending: dict[str, asyncio.Future[ChatReply]] = {}

    def __repr__(self) -> str:
        return f"CachedChatModel({self.inner!r}, {self.cache!r})"

    def key(self, request: ChatRequest) -> str:
        return request_key(self.model_id, request)

    async def check(self) -> None:
        await self.inner.check()

    async def aclose(self) -> None:
        await self.inner.aclose()

    def _as_hit(self, reply: ChatReply, t0: float) -> ChatReply:
        u = reply.usage
        return ChatReply(
            text=reply.text,
            parsed=reply.parsed,
            usage=Usage(u.prompt_tokens, u.completion_tokens, calls=0, cached_calls=1),
            latency_s=time.perf_counter() - t0,
            model=reply.model,
            attempts=0,
            cached=True,
            finish_reason=reply.finish_reason,
        )

    async def chat(self, request: ChatRequest) -> ChatReply:
        t0 = time.perf_counter()
        key = self.key(request)
        loop = asyncio.get_running_loop()
        pending = self._pending.get(key)
        while pending is not None and pending.get_loop() is loop:
            try:
                reply = await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # we were cancelled ourselves
                pending = self._pending.get(key)  # the leader was cancelled: try again
                continue
            self.hits += 1
            return self._as_hit(reply, t0)
        fut: asyncio.Future[ChatReply] = loop.create_future()
        self._pending[key] = fut
        try:
            stored = await asyncio.to_thread(self.cache.get, key)
            if stored is not None:
                self.hits += 1
                fut.set_result(stored)
                return self._as_hit(stored, t0)
            self.misses += 1
            reply = await self.inner.chat(request)
            try:
                await asyncio.to_thread(self.cache.put, key, self.model_id, reply)
            except sqlite3.Error as e:  # a reply we paid for is still a reply
                log.warning("request cache %s: could not store a reply (%s)", self.cache.path, e)
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # mark retrieved: only waiters re-raise it
            raise
        else:
            fut.set_result(reply)
            return reply
        finally:
            if self._pending.get(key) is fut:
                del self._pending[key]
