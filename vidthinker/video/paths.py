"""Which video paths may be read: local paths and file:// URIs only, inside the allowed roots."""

from __future__ import annotations

import os
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from vidthinker.video.errors import PathLike, UnreadableVideo, UnsupportedVideo, VideoPathNotAllowed


def _local_path(path: PathLike) -> Path:
    text = os.fspath(path)
    if "://" not in text:
        return Path(text)
    parts = urllib.parse.urlsplit(text)
    if parts.scheme.lower() != "file":
        raise UnsupportedVideo(
            text,
            f"'{parts.scheme}://' URIs are not supported: only local paths and file:// URIs are read "
            "(remote fetching is out of scope for vidthinker.video; download the file first)",
        )
    if parts.netloc not in ("", "localhost"):
        raise UnsupportedVideo(
            text, f"file:// URI names a remote host '{parts.netloc}'; only local files are read"
        )
    return Path(urllib.request.url2pathname(parts.path))


def check_allowed(path: PathLike, allowed_roots: Iterable[PathLike] | PathLike | None = None) -> Path:
    """Return the resolved local path of ``path`` (a path or file:// URI) if it lies under one of
    ``allowed_roots``; ``None`` allows everything, an empty list nothing.

    Symlinks and ``..`` are resolved before the check, so a link inside a root that points outside it is
    refused. Raises ``VideoPathNotAllowed`` (or ``UnsupportedVideo`` for remote URIs). The file need not
    exist: refusing before looking keeps the answer from revealing what exists outside the roots.
    """
    try:
        resolved = Path(os.path.abspath(_local_path(path))).resolve()
    except RuntimeError:  # Python < 3.13 raises this for a symlink loop (3.13 leaves it to stat: ELOOP)
        raise UnreadableVideo(path, "cannot resolve the path: symbolic link loop") from None
    except OSError as err:
        raise UnreadableVideo(path, f"cannot resolve the path ({err.strerror or err})") from None
    if allowed_roots is None:
        return resolved
    if isinstance(allowed_roots, (str, os.PathLike)):
        allowed_roots = [allowed_roots]
    roots = [Path(os.path.abspath(_local_path(r))).resolve() for r in allowed_roots]
    if any(resolved.is_relative_to(root) for root in roots):
        return resolved
    shown = ", ".join(str(r) for r in roots) or "none configured"
    raise VideoPathNotAllowed(path, f"resolves to {resolved}, which is outside the allowed roots ({shown})")
