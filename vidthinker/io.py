"""Atomic file writes: the one place that decides how VidThinker replaces a file on disk.

Every file a reader may look at while we write it (shards, manifests, summaries, the ledger, quality
figures, caches, synthetic videos, eval and inference outputs) is written to a temporary file in the
same folder and moved over the target with ``os.replace``, so a reader sees the old file or the new
one, never half a file, and a crash leaves at most a hidden ``.NAME.*`` temporary behind (removed on
the error path). The new file gets the mode ``open()`` would give it (``0o666 & ~umask``), not
``mkstemp``'s 0600, so other users of a shared run folder can read it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "file_mode"]


def _umask() -> int:
    try:  # Linux >= 4.7 reports it without changing it (setting it would race with other threads)
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: read by setting it, then put it back at once
    os.umask(mask)
    return mask


def file_mode() -> int:
    """``0o666 & ~umask``: the mode ``open()`` would give a new file (``0o644`` under umask 022)."""
    return 0o666 & ~_umask()


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block ends without error, move it over ``path``.

    The caller writes the temporary file by name (pyarrow writers, ffmpeg, ``Path.write_text``).
    On any error, including KeyboardInterrupt, the temporary file is removed and ``path`` is untouched.
    ``fsync=True`` flushes the file to disk before the move (for small files whose loss after a
    power cut would cost a rerun, like the ledger).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, file_mode())  # mkstemp makes 0600
        yield tmp
        if fsync:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes | Callable[[Path], object], *, fsync: bool = False) -> Path:
    """Replace ``path`` with ``data`` atomically; ``data`` may be bytes or a function writing a given path."""
    target = Path(path)
    with atomic_path(target, fsync=fsync) as tmp:
        if callable(data):
            data(tmp)
        else:
            tmp.write_bytes(data)
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str, *, fsync: bool = False) -> Path:
    """Replace ``path`` with ``text`` (UTF-8) atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)
