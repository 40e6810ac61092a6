"""What reading the released JSON files (LLaVA-Video-178K, VideoITG-40K) shares: the file as UTF-8 text, a
JSON list, a released relative video path joined onto its root, and a filename-safe video id."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from vidthinker.schema import SchemaError


def read_utf8_text(path: Path) -> str:
    """A whole JSON file as text; bytes that are not UTF-8 name the file, line and column."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line_start = data.rfind(b"\n", 0, error.start) + 1
        line_no = data.count(b"\n", 0, error.start) + 1
        bad = data[error.start:error.start + 1].hex()
        raise SchemaError(f"{path} line {line_no}: not UTF-8 text (byte 0x{bad} at column {error.start - line_start + 1}); "
                          "save the file as UTF-8") from None



def read_json_list(path: Path, expected: str) -> list[Any]:
    if not path.is_file():
        raise SchemaError(f"{path}: file not found")
    try:
        items = json.loads(read_utf8_text(path))
    except json.JSONDecodeError as error:
        raise SchemaError(f"{path}: not JSON: {error.msg} at line {error.lineno}") from None
    if not isinstance(items, list):
        raise SchemaError(f"{path}: expected {expected}, got a JSON {type(items).__name__}")
    return items



def join_video(root: Path, video: str) -> str:
    """`video` joined onto `root` as LLaVA-NeXT's loader does, made absolute and normalised (symlinks are
    kept, so a path under a symlinked root stays under it); absolute paths and URIs are kept."""
    if "://" in video:
        return video
    return os.path.normpath(os.path.abspath(os.path.join(root, video)))


def safe_video_id(video: str) -> str:
    stem = Path(video).with_suffix("").as_posix()
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("_") or "video"
