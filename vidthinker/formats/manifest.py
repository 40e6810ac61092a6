"""Manifests in and out: JSONL, parquet, or LLaVA-Video-178K-style JSON (`vidthinker.formats.llava`) read as
`ManifestRow`s with their relative videos resolved against the manifest's folder; JSONL or parquet written."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from vidthinker.formats.llava import import_llava_video
from vidthinker.schema import ManifestRow, SchemaError, iter_rows, validate_row, write_parquet


def read_manifest(path: str | Path) -> list[ManifestRow]:
    """Read a manifest (.jsonl, .parquet, or LLaVA-Video-style .json); relative video paths are
    resolved against the manifest's folder so a manifest can be moved together with its videos."""
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"{path}: manifest not found" + (" (it is a directory)" if path.is_dir() else ""))
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            rows = list(_read_jsonl_manifest(path))
        elif suffix == ".parquet":
            try:
                table = pq.read_table(path)
            except (pa.ArrowException, ValueError) as error:
                raise SchemaError(f"{path}: not a readable parquet file ({error})") from None
            rows = list(iter_rows(table, ManifestRow, source=str(path)))
        elif suffix == ".json":
            rows = import_llava_video(path)
        else:
            raise SchemaError(f"{path}: unknown manifest format {suffix!r} (use .jsonl, .parquet or LLaVA-Video .json)")
    except OSError as error:  # permission denied, a read error: one line naming the file, not a traceback
        raise SchemaError(f"{path}: cannot read the manifest ({error.strerror or error})") from None
    if not rows:
        raise SchemaError(f"{path}: manifest has no rows")
    _check_unique(rows, path)
    return [_resolve_video(row, path.parent) for row in rows]


def _read_jsonl_manifest(path: Path) -> Iterator[ManifestRow]:
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            line = _utf8_line(raw, path, line_no)
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as error:
                raise SchemaError(f"{path} line {line_no}: not JSON: {error.msg}") from None
            if not isinstance(data, dict):
                raise SchemaError(f"{path} line {line_no}: expected a JSON object, got {type(data).__name__}")
            yield validate_row(ManifestRow, data, source=f"{path} line {line_no}")


def _utf8_line(raw: bytes, path: Path, line_no: int) -> str:
    """One manifest line as text; bytes that are not UTF-8 name the file, line and column."""
    try:
        return raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
    except UnicodeDecodeError as error:
        bad = raw[error.start:error.start + 1].hex()
        raise SchemaError(f"{path} line {line_no}: not UTF-8 text (byte 0x{bad} at column {error.start + 1}); "
                          "save the manifest as UTF-8") from None


def _check_unique(rows: list[ManifestRow], path: Path) -> None:
    seen: set[str] = set()
    for row in rows:
        if row.video_id in seen:
            raise SchemaError(f"{path}: duplicate video_id {row.video_id!r}")
        seen.add(row.video_id)


def _resolve_video(row: ManifestRow, base: Path) -> ManifestRow:
    video = row.video
    if "://" in video:
        return row  # URIs are checked (and rejected or fetched) by the video layer, not here
    candidate = Path(video)
    if not candidate.is_absolute():
        try:
            candidate = (base / candidate).resolve()
        except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13): the row's probe reports it
            candidate = Path(os.path.normpath(os.path.abspath(base / candidate)))
    return row.model_copy(update={"video": str(candidate)})


def write_manifest(rows: Iterable[ManifestRow], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".parquet":
        return write_parquet(rows, ManifestRow, path)
    with path.open("w") as handle:
        for row in rows:
            handle.write(row.model_dump_json(exclude_none=True) + "\n")
    return path
