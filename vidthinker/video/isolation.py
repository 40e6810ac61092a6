"""``DecodeWorker``: the parent's side of the reusable child process that decodes with a time limit.

The child runs ``python -m vidthinker.video.worker`` (``vidthinker/video/worker.py``); this side starts
it, sends it calls, and kills and replaces it on a timeout or a crash.
"""

from __future__ import annotations

import multiprocessing.connection
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any


class WorkerCrashed(Exception):
    def __init__(self, exitcode: int | None) -> None:
        self.exitcode = exitcode
        if exitcode is not None and exitcode < 0:
            try:
                how = f"killed by {signal.Signals(-exitcode).name}"
            except ValueError:
                how = f"killed by signal {-exitcode}"
        else:
            how = f"exit code {exitcode}"
        super().__init__(how)


class WorkerTimeout(Exception):
    pass


class DecodeWorker:
    """A reusable child process that runs decode calls with a time limit.

    One call at a time (a lock serialises threads); create several workers for parallel decoding. The
    process starts on first use as ``python -m vidthinker.video.worker`` (``subprocess``, not
    ``multiprocessing``: no inherited locks or FFmpeg state, and the parent's ``__main__`` script, e.g.
    the ``airflow`` entry point inside a task, is never re-run; see ``vidthinker.childproc``) with a
    minimal environment. It is killed on a timeout and replaced on the next call after a crash or a kill.
    ``python`` picks another interpreter (default: this one); ``start_method`` is accepted for
    compatibility and ignored.
    """

    def __init__(
        self, *, start_method: str | None = None, start_timeout_s: float = 120.0, python: str | None = None
    ) -> None:
        del start_method  # the child is always a fresh interpreter running vidthinker.video.worker
        self._python = python
        self._start_timeout_s = start_timeout_s
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: multiprocessing.connection.Connection | None = None
        self._owner = os.getpid()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    def _start(self) -> multiprocessing.connection.Connection:
        if self._owner != os.getpid():
            # A forked copy of this object: the process and pipe belong to the parent; leave them be.
            self._process = self._conn = None
            self._owner = os.getpid()
        if self._process is not None and self._process.poll() is None and self._conn is not None:
            return self._conn
        self._discard()
        from vidthinker import childproc

        ours, theirs = socket.socketpair()
        try:
            process = subprocess.Popen(
                [self._python or childproc.python_executable(), "-m", "vidthinker.video.worker",
                 str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # the worker prints nothing; FFmpeg/decord warnings go to stderr
                pass_fds=(theirs.fileno(),),
                env=childproc.minimal_environment(),
                cwd=os.getcwd() if os.path.isdir(os.getcwd()) else None,
            )  # fmt: skip
        except OSError as err:
            ours.close()
            raise RuntimeError(f"decode worker could not start ({err})") from None
        finally:
            theirs.close()
        parent_conn = multiprocessing.connection.Connection(ours.detach())
        self._process, self._conn = process, parent_conn
        try:
            parent_conn.send(("sys.path", [p for p in sys.path if isinstance(p, str)]))
            if not parent_conn.poll(self._start_timeout_s):
                raise RuntimeError(f"decode worker did not start within {self._start_timeout_s:g} s")
            parent_conn.recv()
        except (EOFError, OSError) as err:
            code = self._discard()
            raise RuntimeError(f"decode worker died while starting ({err!r}, exit code {code})") from None
        except RuntimeError:
            self._discard()
            raise
        return parent_conn

    def _discard(self) -> int | None:
        """Kill and forget the process; return its exit code."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is None:
            return None
        if process.poll() is None:
            process.kill()
        try:
            return process.wait(5)
        except subprocess.TimeoutExpired:
            return None

    def call(self, fn: Callable[..., Any], *args: Any, timeout_s: float) -> Any:
        """Run ``fn(*args)`` in the worker (fn must be importable by name); re-raise its exceptions.

        Raises ``WorkerTimeout`` after ``timeout_s`` (the worker is killed) and ``WorkerCrashed`` if
        the process died.
        """
        with self._lock:
            conn = self._start()
            try:
                conn.send((fn, args))
                ready = conn.poll(timeout_s)
            except (OSError, EOFError):
                raise WorkerCrashed(self._discard()) from None
            if not ready:
                self._discard()
                raise WorkerTimeout()
            try:
                status, payload = conn.recv()
            except (OSError, EOFError):
                raise WorkerCrashed(self._discard()) from None
        if status == "ok":
            return payload
        raise payload

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.send(None)
                except OSError:
                    pass
            self._discard()


_default_worker: DecodeWorker | None = None
_default_worker_lock = threading.Lock()


def default_worker() -> DecodeWorker:
    global _default_worker
    with _default_worker_lock:
        if _default_worker is None:
            _default_worker = DecodeWorker()
        return _default_worker


def _forget_default_worker() -> None:
    # After fork (Ray, Airflow, Celery workers) the child must not share the parent's worker or locks.
    global _default_worker, _default_worker_lock
    _default_worker = None
    _default_worker_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_default_worker)
