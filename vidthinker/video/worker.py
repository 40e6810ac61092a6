"""Entry point of the decode worker process: ``python -m vidthinker.video_worker FD``.

``vidthinker.video.DecodeWorker`` starts this module with ``subprocess`` (see ``vidthinker.childproc``
for why not ``multiprocessing``'s spawn): it imports only ``vidthinker.video`` (PyAV, NumPy, decord),
never the parent's ``__main__``. FD is the child's end of a socket pair, wrapped as a
``multiprocessing.connection.Connection`` (pickled messages). The first message is the parent's
``sys.path``, so a decode function the parent names by module (a test's stand-in) imports here too.
"""

from __future__ import annotations

import sys
from multiprocessing.connection import Connection


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        raise SystemExit("usage: python -m vidthinker.video_worker FD  (started by vidthinker.video.DecodeWorker)")
    conn = Connection(int(args[0]))
    try:
        hello = conn.recv()
    except (EOFError, OSError):
        return
    if isinstance(hello, tuple) and len(hello) == 2 and hello[0] == "sys.path":
        sys.path.extend(p for p in hello[1] if isinstance(p, str) and p not in sys.path)
    from vidthinker.video import _worker_main

    _worker_main(conn)


if __name__ == "__main__":
    main()
