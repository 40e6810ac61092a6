"""The errors of ``vidthinker.video``: one class per reason a video cannot be used, all ``VideoError``."""

from __future__ import annotations

import os
from typing import Any

PathLike = str | os.PathLike[str]


class VideoError(Exception):
    """A video cannot be used. ``str(err)`` is ``"<path>: <reason>"``."""

    def __init__(self, path: PathLike, reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    # The default pickling replays ``args`` (the formatted message) into __init__, which needs two
    # arguments; errors cross the decode-worker pipe, so pickle the fields instead.
    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.reason))


class VideoNotFound(VideoError):
    """The file does not exist."""


class UnreadableVideo(VideoError):
    """The path cannot be resolved or stat'ed: a symbolic link loop, permission denied, an I/O error."""


class VideoPathNotAllowed(VideoError):
    """The path (after resolving symlinks and ``..``) is outside the allowed roots."""


class NotAVideo(VideoError):
    """Not a media file, or a media file without a video stream (audio-only, a still image)."""


class EmptyVideo(VideoError):
    """Zero bytes, zero duration or zero frames."""


class CorruptVideo(VideoError):
    """Truncated or damaged data, a decoder failure or a decoder crash."""


class VideoDecodeTimeout(VideoError):
    """Decoding did not finish within the time limit (the worker was killed)."""


class UnsupportedVideo(VideoError):
    """Valid input this module does not handle: a remote URI, or a codec the chosen backend lacks."""
