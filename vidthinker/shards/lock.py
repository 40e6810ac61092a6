"""One writer per run folder: `RunFolderLock`, an exclusive (or, for the Airflow shard tasks of one DAG
run, shared) `fcntl.flock` on `OUT/.vidthinker.lock`; `FolderLocked` when another live process holds it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

LOCK_NAME = ".vidthinker.lock"


class FolderLocked(RuntimeError):
    """Another live process writes this run folder."""


class RunFolderLock:
    """One writer per run folder: an exclusive `fcntl.flock` on `OUT/.vidthinker.lock`, whose text names
    the holder (host, pid, start time, command).

    The kernel drops a flock when its process dies, however it dies, so the lock of a dead process is
    free: taking it finds the dead holder's text still there, which is logged as a warning (taken over).
    The file is emptied, never deleted, on release (deleting would let two processes lock two different
    files of the same name). `shared=True` takes a shared lock instead (the Airflow shard tasks of one
    DAG run write one folder together; an exclusive `vidthinker annotate` then waits for none of them
    and fails at once). Only the driver process holds it; Ray actors write shard files under it.
    """

    def __init__(self, out_dir: str | Path, *, command: str = "", shared: bool = False):
        self.path = Path(out_dir) / LOCK_NAME
        self.command = command
        self.shared = shared
        self._fd: int | None = None
        self.took_over: str | None = None

    def acquire(self) -> "RunFolderLock":
        import datetime as dt
        import fcntl
        import logging
        import socket

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise FolderLocked(
                f"run folder {self.path.parent} is being written by another run: "
                + (holder or "Airflow shard tasks (shared lock)")
                + f"; wait for it to end (lock file {self.path})"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        if not self.shared:
            previous = _read_holder(fd)
            if previous:
                self.took_over = previous
                logging.getLogger(__name__).warning(
                    "run folder %s: taking over the lock of a run that ended without releasing it (%s)",
                    self.path.parent, previous)
            text = json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                               "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                               "command": self.command[:500]})
            os.ftruncate(fd, 0)
            os.pwrite(fd, text.encode(), 0)
        return self

    def release(self) -> None:
        import fcntl

        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if not self.shared:
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> "RunFolderLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    """'host H, pid P, since T: COMMAND' from a lock file's text ('' when empty or unreadable)."""
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode() or "null")
    except (OSError, ValueError):
        return ""
    if not isinstance(data, dict):
        return ""
    return (f"host {data.get('host')}, pid {data.get('pid')}, since {data.get('started')}"
            + (f": {data['command']}" if data.get("command") else ""))
