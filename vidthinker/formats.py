"""Readers and writers for the files users bring and take away.

Manifests come as JSONL or parquet (`ManifestRow`), or as LLaVA-Video-178K-style JSON (what the paper
annotated). Records leave as parquet shards or as VideoITG-40K JSON, and public VideoITG-40K JSON comes
back in as records. Every reader names the file and row of the first thing it cannot accept.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from vidthinker import __version__
from vidthinker.schema import (
    VIDEOITG_COLUMNS,
    InstructionType,
    ManifestRow,
    Provenance,
    QAPair,
    SchemaError,
    VideoITGRecord,
    iter_rows,
    validate_row,
    write_parquet,
)

# --------------------------------------------------------------------------- manifests


def read_manifest(path: str | Path) -> list[ManifestRow]:
    """Read a manifest (.jsonl, .parquet, or LLaVA-Video-style .json); relative video paths are
    resolved against the manifest's folder so a manifest can be moved together with its videos."""
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"{path}: manifest not found")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = list(_read_jsonl_manifest(path))
    elif suffix == ".parquet":
        rows = list(iter_rows(pq.read_table(path), ManifestRow, source=str(path)))
    elif suffix == ".json":
        rows = import_llava_video(path)
    else:
        raise SchemaError(f"{path}: unknown manifest format {suffix!r} (use .jsonl, .parquet or LLaVA-Video .json)")
    if not rows:
        raise SchemaError(f"{path}: manifest has no rows")
    _check_unique(rows, path)
    return [_resolve_video(row, path.parent) for row in rows]


def _read_jsonl_manifest(path: Path) -> Iterator[ManifestRow]:
    with path.open() as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as error:
                raise SchemaError(f"{path} line {line_no}: not JSON: {error.msg}") from None
            if not isinstance(data, dict):
                raise SchemaError(f"{path} line {line_no}: expected a JSON object, got {type(data).__name__}")
            yield validate_row(ManifestRow, data, source=f"{path} line {line_no}")


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
        candidate = (base / candidate).resolve()
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


# --------------------------------------------------------------------------- LLaVA-Video-178K import

_MEDIA_TOKEN = re.compile(r"^\s*(<video>|<image>)\s*\n?|\s*(<video>|<image>)\s*$")


def _clean_turn(text: str) -> str:
    return _MEDIA_TOKEN.sub("", text).strip()


def import_llava_video(path: str | Path) -> list[ManifestRow]:
    """LLaVA-Video-178K JSON (a list of `{id, video, conversations: [{from, value}, ...]}`) → manifest.

    Every human turn followed by a gpt turn is one QA pair; conversations about the same video are
    merged into one manifest row, so stage 1 decodes that video once for all of its questions.
    """
    path = Path(path)
    try:
        items = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise SchemaError(f"{path}: not JSON: {error.msg} at line {error.lineno}") from None
    if not isinstance(items, list):
        raise SchemaError(f"{path}: expected a JSON list of conversations (LLaVA-Video-178K format)")
    by_video: OrderedDict[str, dict[str, Any]] = OrderedDict()
    for index, item in enumerate(items):
        where = f"{path} item {index}"
        if not isinstance(item, dict) or not {"id", "video", "conversations"} <= item.keys():
            raise SchemaError(f"{where}: needs keys id, video, conversations")
        turns = item["conversations"]
        if not isinstance(turns, list):
            raise SchemaError(f"{where}: conversations must be a list")
        video = str(item["video"])
        entry = by_video.setdefault(video, {"video_id": _video_id(video), "video": video, "qa": [], "source": item.get("data_source", "llava-video")})
        pending: str | None = None
        turn_no = 0
        for turn in turns:
            speaker = str(turn.get("from", "")).lower() if isinstance(turn, dict) else ""
            value = turn.get("value", "") if isinstance(turn, dict) else ""
            if speaker == "human":
                pending = _clean_turn(str(value))
            elif speaker in ("gpt", "assistant") and pending:
                entry["qa"].append({"qa_id": f"{item['id']}-{turn_no}", "question": pending, "answer": str(value).strip()})
                turn_no += 1
                pending = None
            elif speaker not in ("human", "gpt", "assistant", "system"):
                raise SchemaError(f"{where}: unknown speaker {speaker!r} (expected human/gpt)")
    rows = []
    for entry in by_video.values():
        if entry["qa"]:
            rows.append(validate_row(ManifestRow, entry, source=f"{path} video {entry['video']}"))
    return rows


def _video_id(video: str) -> str:
    stem = Path(video).with_suffix("").as_posix()
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("_") or "video"


# --------------------------------------------------------------------------- records


def record_paths(shards: str | Path) -> list[Path]:
    """The record shards under a folder (or a single shard file), in a stable order."""
    shards = Path(shards)
    if shards.is_file():
        return [shards]
    if not shards.is_dir():
        raise SchemaError(f"{shards}: no such shard folder")
    # Hidden and underscore-prefixed files and folders are staging areas (atomic writes, _hf/ publishing).
    paths = sorted(
        p for p in shards.rglob("*.parquet")
        if not any(part.startswith((".", "_")) for part in p.relative_to(shards).parts)
    )
    if not paths:
        raise SchemaError(f"{shards}: no parquet shards found")
    return paths


def iter_records(shards: str | Path) -> Iterator[VideoITGRecord]:
    for path in record_paths(shards):
        yield from iter_rows(pq.read_table(path), VideoITGRecord, source=str(path))


def export_videoitg_json(records: Iterable[VideoITGRecord], out: str | Path, *, include_errors: bool = False) -> int:
    """Write records in the public VideoITG-40K JSON format (exactly its columns); returns the count."""
    rows = [
        {column: getattr(record, column) for column in VIDEOITG_COLUMNS}
        for record in records
        if include_errors or record.ok
    ]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
    return len(rows)


def _yes_no(value: Any, where: str, field: str) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value).strip().lower()
    if text in ("yes", "true", "1"):
        return "yes"
    if text in ("no", "false", "0", "", "none"):
        return "no"
    raise SchemaError(f"{where}: {field} must be yes/no, got {value!r}")


def import_videoitg_json(path: str | Path, *, video_root: str | Path | None = None) -> list[VideoITGRecord]:
    """Public VideoITG-40K JSON → records (marked as imported in their provenance)."""
    path = Path(path)
    try:
        items = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise SchemaError(f"{path}: not JSON: {error.msg} at line {error.lineno}") from None
    if not isinstance(items, list):
        raise SchemaError(f"{path}: expected a JSON list of VideoITG records")
    provenance = Provenance(
        pipeline_version=f"imported:{path.name}",
        clip_seconds=5.0,
        grid_fps=1.0,
        created_at=dt.datetime.now(dt.UTC),
    )
    records = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        where = f"{path} item {index}"
        if not isinstance(item, dict):
            raise SchemaError(f"{where}: expected an object")
        missing = [c for c in ("id", "video", "question", "frame_num") if c not in item]
        if missing:
            raise SchemaError(f"{where}: missing {missing}")
        motion = _yes_no(item.get("motion", "no"), where, "motion")
        existence = _yes_no(item.get("existence", "no"), where, "existence")
        video = str(item["video"])
        if video_root is not None and not Path(video).is_absolute():
            video = str(Path(video_root) / video)
        record_id = str(item["id"])
        # Released ids repeat across a video's questions; qa_id keeps each record addressable.
        occurrence = seen.get(record_id, 0)
        seen[record_id] = occurrence + 1
        records.append(
            validate_row(
                VideoITGRecord,
                {
                    "id": record_id,
                    "video": video,
                    "question": item["question"],
                    "answer": str(item.get("answer", "")),
                    "frame_num": item.get("frame_num") or [],
                    "clip_num": item.get("clip_num") or [],
                    "motion": motion,
                    "existence": existence,
                    "instruction_type": InstructionType.from_flags(motion == "yes", existence == "yes"),
                    "video_id": _video_id(str(item["video"])),
                    "qa_id": f"{record_id}-{occurrence}" if occurrence else record_id,
                    "provenance": provenance,
                },
                source=where,
            )
        )
    return records


def records_from_ground_truth(manifest: Iterable[ManifestRow], *, run_id: str = "ground-truth") -> list[VideoITGRecord]:
    """Records whose frames are a manifest's known ground truth (synthetic sets): the reference the
    annotation pipeline is measured against, and training data for the selector without annotation."""
    now = dt.datetime.now(dt.UTC)
    provenance = Provenance(pipeline_version=f"vidthinker {__version__} ground-truth", run_id=run_id, clip_seconds=5.0, grid_fps=1.0, created_at=now)
    records = []
    for row in manifest:
        for pair in row.qa:
            if pair.ground_truth is None:
                continue
            kind = InstructionType(pair.ground_truth.instruction_type or InstructionType.SEMANTIC_ONLY)
            records.append(
                VideoITGRecord(
                    id=f"{row.video_id}/{pair.qa_id}",
                    video=row.video,
                    question=pair.question,
                    answer=pair.answer,
                    frame_num=pair.ground_truth.frame_ids,
                    clip_num=pair.ground_truth.clip_ids,
                    motion="yes" if kind.motion else "no",
                    existence="yes" if kind.existence else "no",
                    instruction_type=kind,
                    video_id=row.video_id,
                    qa_id=pair.qa_id,
                    provenance=provenance,
                )
            )
    return records


def qa_lookup(rows: Iterable[ManifestRow]) -> dict[tuple[str, str], tuple[ManifestRow, QAPair]]:
    return {(row.video_id, pair.qa_id): (row, pair) for row in rows for pair in row.qa}
