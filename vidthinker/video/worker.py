"""Entry point of the decode worker process: ``python -m vidthinker.video.worker FD``.

``vidthinker.video.isolation.DecodeWorker`` starts this module with ``subprocess`` (see
``vidthinker.childproc`` for why not ``multiprocessing``'s spawn): it imports only ``vidthinker.video``
(PyAV, NumPy, decord), never the parent's ``__main__``. FD is the child's end of a socket pair, wrapped as
a ``multiprocessing.connection.Connection`` (pickled messages). The first message is the parent's
``sys.path``, so a decode function the parent names by module (a test's stand-in) imports here too.
"""

from __future__ import annotations

import os
import signal
import sys
from multiprocessing.connection import Connection
from typing import Any

from vidthinker.video.decoding import import_decord


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        raise SystemExit(
            "usage: python -m vidthinker.video.worker FD  (started by vidthinker.video.DecodeWorker)"
        )
    conn = Connection(int(args[0]))
    try:
        hello = conn.recv()
    except (EOFError, OSError):
        return
    if isinstance(hello, tuple) and len(hello) == 2 and hello[0] == "sys.path":
        sys.path.extend(p for p in hello[1] if isinstance(p, str) and p not in sys.path)
    serve(conn)


def serve(conn: Connection) -> None:
    """Answer ``(fn, args)`` calls from the parent until it sends None or closes the pipe."""
    # Ctrl-C reaches the whole process group; the parent decides what to do, the child just serves.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:  # Linux: die with the parent even if stuck inside a decoder
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001, S110 - not Linux/glibc: the pipe EOF still ends an idle worker
        pass
    try:  # import once here, so the first request's time limit does not pay for it
        import_decord()
    except Exception:  # noqa: BLE001, S110 - no decord: "auto" uses PyAV, "decord" reports the error
        pass
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        except Exception as err:  # noqa: BLE001 - the request itself did not unpickle
            conn.send(("error", RuntimeError(f"decode worker could not read the request: {err!r}")))
            continue
        if message is None:
            return
        fn, args = message
        try:
            reply: tuple[str, Any] = ("ok", fn(*args))
        except BaseException as err:  # noqa: BLE001 - report everything; the worker keeps serving
            reply = ("error", err)
        try:
            conn.send(reply)
        except Exception as err:  # noqa: BLE001 - e.g. an exception that does not pickle
            conn.send(("error", RuntimeError(f"{type(reply[1]).__name__}: {reply[1]!s} ({err!r})")))


if __name__ == "__main__":
    main()
