"""Fail before paying: the folders a run writes are checked before the first model call, and file
system errors are turned into one line that names the path.

* :func:`check_output_dirs` — the out folder, ``out/shards`` and the request cache folder must be
  directories (created if missing) that this process can write (a file is actually created and
  removed: ``os.access`` says yes to root on a read-only mount), with roughly enough free space
  (:data:`MB_PER_SHARD` per shard still to write, summed per file system). Any failure raises
  :class:`OutputPathError` (a ``ValueError``: the CLI prints it as one line and exits 2).
* :func:`describe_error` — an exception as one line for a shard's failure reason: an ``OSError`` reads
  ``cannot write <file>: No space left on device`` instead of a traceback.
* :func:`file_mode` — the mode a new file gets under this process's umask (``0o666 & ~umask``).
  ``tempfile.mkstemp`` creates files ``0600``; atomic writers chmod their temporary file to this before
  the rename so shards, manifests and summaries are readable like any other file.
"""

from __future__ import annotations

import errno
import math
import os
import shutil
import tempfile
from pathlib import Path

from vidthinker.redact import redact
from vidthinker.io import file_mode  # re-exported: one place decides a new file's mode

__all__ = ["MB_PER_SHARD", "OutputPathError", "check_output_dirs", "check_writable_dir", "describe_error", "file_mode", "os_reason", "shards_to_write"]

MB_PER_SHARD = 4  # parquet shard + manifest + the cache rows of its replies, with room to spare
_MB = 1024 * 1024

_REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied (not writable)",
    errno.EPERM: "operation not permitted (not writable)",
    errno.ENOTDIR: "not a directory (a file is in the way)",
    errno.EEXIST: "not a directory (a file is in the way)",
    errno.ELOOP: "too many levels of symbolic links",
}


class OutputPathError(ValueError):
    """A folder the run must write cannot be used; ``str()`` is one line naming the path."""

    def __init__(self, what: str, path: str | os.PathLike[str], reason: str):
        self.what, self.path, self.reason = what, os.fspath(path), reason
        super().__init__(f"{what} {self.path}: {reason}")


def os_reason(error: OSError) -> str:
    """A file system error's reason in words (``no space left on device``)."""
    return _REASONS.get(error.errno or 0) or (error.strerror or type(error).__name__).lower()


def check_writable_dir(path: str | os.PathLike[str], *, what: str, need_bytes: int = 0) -> Path:
    """Create ``path`` if missing and prove it is a writable directory with ``need_bytes`` free."""
    path = Path(os.path.abspath(path))
    if path.exists() and not path.is_dir():
        raise OutputPathError(what, path, "not a directory (a file is in the way)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputPathError(what, path, "not a directory (a file is in the way)") from None
    except OSError as error:
        blocker = next((p for p in reversed(path.parents) if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise OutputPathError(what, path, f"{blocker} is a file, not a directory") from None
        raise OutputPathError(what, path, f"cannot create it: {os_reason(error)}") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".vidthinker-write-check.", dir=path)
    except OSError as error:
        raise OutputPathError(what, path, os_reason(error)) from None
    try:
        os.write(fd, b"x")
        os.fsync(fd)
    except OSError as error:
        raise OutputPathError(what, path, os_reason(error)) from None
    finally:
        os.close(fd)
        Path(probe).unlink(missing_ok=True)
    if need_bytes > 0:
        free = shutil.disk_usage(path).free
        if free < need_bytes:
            raise OutputPathError(
                what, path, f"only {free / _MB:.1f} MB free, the run needs about {need_bytes / _MB:.0f} MB "
                f"({MB_PER_SHARD} MB per shard); free some space or choose another folder")
    return path


def check_output_dirs(out_dir: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None, shards: int) -> None:
    """Check the run folder, ``out/shards`` and the cache folder before any model call (see module doc).

    The free space wanted, ``MB_PER_SHARD`` per shard to write for the shards and as much again for
    the cache, is summed over the folders that share a file system and checked once per file system.
    """
    out_dir = Path(os.path.abspath(out_dir))
    folders: list[tuple[str, Path, int]] = [("run folder", out_dir, _MB), ("shard folder", out_dir / "shards", shards * MB_PER_SHARD * _MB)]
    if cache_dir is not None:
        folders.append(("cache folder", Path(os.path.abspath(cache_dir)), shards * MB_PER_SHARD * _MB))
    for what, path, _ in folders:
        check_writable_dir(path, what=what)
    wanted: dict[int, tuple[str, Path, int]] = {}
    for what, path, need in folders:
        dev = path.stat().st_dev
        first = wanted.get(dev, (what, path, 0))
        wanted[dev] = (first[0], first[1], first[2] + need)
    for what, path, need in wanted.values():
        check_writable_dir(path, what=what, need_bytes=need)


def shards_to_write(videos: int, shard_size: int) -> int:
    return max(1, math.ceil(videos / max(1, shard_size)))


def describe_error(error: BaseException, *, path: str | os.PathLike[str] | None = None) -> str:
    """One redacted line for a failure: ``cannot write <file>: <reason>`` for file system errors
    (ENOSPC, read-only, ...), ``<ErrorClass>: <message>`` otherwise."""
    if isinstance(error, OSError) and error.errno is not None:
        where = path or error.filename  # the file meant, not its temporary sibling
        return redact(f"cannot write {os.fspath(where)}: {os_reason(error)}" if where else f"{type(error).__name__}: {os_reason(error)}")
    return redact(f"{type(error).__name__}: {error}")

