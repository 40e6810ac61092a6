"""VideoITG-40K JSON: records exported in the release's exact columns and values (streamed from shard
folders), and the release's rows (or our export) imported back as records."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from vidthinker.formats.records import record_paths
from vidthinker.formats.release_files import join_video, read_json_list, safe_video_id
from vidthinker.io import atomic_path
from vidthinker.schema import (
    VIDEOITG_COLUMNS,
    InstructionType,
    Provenance,
    SchemaError,
    VideoITGRecord,
    validate_row,
)

# VideoITG-40K (HF dataset NVEagle/VideoITG-40K, `video_itg_data.json`) is one JSON list of rows with
# exactly these keys: `id` (an integer, one per row), `video` (relative to the data folder, e.g.
# "LLaVA-Video-178K/0_30_s_nextqa/NextQA/NExTVideo/1006/8968804598.mp4"), `question`, `answer`,
# `frame_num` and `clip_num` (ascending 1-fps frame ids and 5 s clip ids), and `motion` / `existence`
# as "Yes" / "No". NVlabs/VideoITG `scripts/videoitg/finetune-qwen2-7b-grounding.sh` trains on it with
# `--data_path ./data/video_itg_data.json --image_folder ./data/`, and `train_itg.py`
# (LazySupervisedDataset.__getitem__) joins `video` onto `image_folder` and builds its labels from
# `clip_num`. Records store motion/existence as "yes"/"no"; only this boundary speaks the release's case.

_RELEASE_YES_NO = {"yes": "Yes", "no": "No"}
_CANONICAL_INT = re.compile(r"0|[1-9][0-9]*")


def export_videoitg_json(
    records: Iterable[VideoITGRecord] | str | Path,
    out: str | Path,
    *,
    include_errors: bool = False,
    video_root: str | Path | None = None,
    absolute: list[str] | None = None,
) -> int:
    """Write records as VideoITG-40K JSON, in the release's exact columns and values; returns the count.

    `video` is written relative to `video_root` (POSIX separators), as the release's paths are relative
    to its data folder: pass the folder that holds `LLaVA-Video-178K/`. A video outside `video_root` is
    an error naming it (a path that resolves nowhere else is what this option exists to prevent); a
    video stored relative (imported as released) is written as stored. Without `video_root` every path
    is written as stored, and the absolute ones are appended to `absolute` (when given) so the caller
    can say so. `id`s that are integers in canonical form are written as JSON integers, as in the
    release; others (annotated records: "<video_id>/<qa_id>") stay strings.

    `records` may be a shard folder or file instead: then only the eight columns (and `error`) are read,
    batch by batch (pyarrow column projection), and only what is written is validated (ids, videos and
    questions non-empty, frame and clip ids >= 0, motion/existence yes/no; full validation is
    `vidthinker validate`'s job). Either way the JSON is written in batches of lines to a temporary file
    renamed at the end (one record per line inside the list), so memory stays at one batch.
    """
    root = None if video_root is None else str(video_root)
    batches = _projected_batches(Path(records), include_errors) if isinstance(records, (str, Path)) \
        else _record_batches(records, include_errors)
    # A video is written once per question (about 11 per video in VideoITG-40K): relate each distinct
    # path to the root once. Bounded: cleared when it reaches _VIDEO_MEMO entries.
    released: dict[str, str] = {}
    count = 0
    with atomic_path(out) as tmp, tmp.open("w", encoding="utf-8") as handle:
        handle.write("[")
        for where, ids, videos, questions, answers, frames, clips, motions, existences in batches:
            if root is None:
                written = videos
                if absolute is not None:
                    absolute.extend(v for v in videos if os.path.isabs(v) or "://" in v)
            else:
                written = []
                for i, video in enumerate(videos):
                    release = released.get(video)
                    if release is None:
                        if len(released) >= _VIDEO_MEMO:
                            released.clear()
                        release = released[video] = _release_video(where(i), root, video=video)
                    written.append(release)
            lines = [_record_json(*values) for values in zip(ids, written, questions, answers, frames, clips,
                                                              map(_RELEASE_YES_NO.__getitem__, motions),
                                                              map(_RELEASE_YES_NO.__getitem__, existences))]
            if lines:
                handle.write(("\n" if count == 0 else ",\n") + ",\n".join(lines))
                count += len(lines)
        handle.write("\n]\n" if count else "]\n")
    return count


_VIDEO_MEMO = 65536
_RECORDS_PER_BATCH = 4096
_STRING = json.encoder.encode_basestring  # the C encoder json.dumps(..., ensure_ascii=False) uses for str


def _record_json(rid: str, video: str, question: str, answer: str, frame_num: list[int], clip_num: list[int],
                 motion: str, existence: str) -> str:
    """One record as `json.dumps(dict(zip(VIDEOITG_COLUMNS, values)), ensure_ascii=False)` writes it, byte
    for byte, without building the dict (the encoder's per-call setup was most of export's time at 474K
    records). A list of Python ints prints as JSON does ("[1, 2]"); tests/formats/test_videoitg.py holds
    this against json.dumps."""
    ident = rid if _CANONICAL_INT.fullmatch(rid) else _STRING(rid)
    return (f'{{"id": {ident}, "video": {_STRING(video)}, "question": {_STRING(question)}, '
            f'"answer": {_STRING(answer)}, "frame_num": {frame_num!s}, "clip_num": {clip_num!s}, '
            f'"motion": "{motion}", "existence": "{existence}"}}')


def _record_batches(records: Iterable[VideoITGRecord], include_errors: bool):
    """Records given as objects, in the batches `_projected_batches` yields (columns as lists)."""
    batch: list[VideoITGRecord] = []
    for record in records:
        if include_errors or record.ok:
            batch.append(record)
            if len(batch) >= _RECORDS_PER_BATCH:
                yield _columns_of(batch)
                batch = []
    if batch:
        yield _columns_of(batch)


def _columns_of(batch: list[VideoITGRecord]):
    return (batch.__getitem__, *([getattr(r, name) for r in batch] for name in VIDEOITG_COLUMNS))


def _sorted_unique(lists) -> bool:
    """Whether every list of a list array is strictly ascending (as records store frame and clip ids)."""
    import pyarrow.compute as pc

    flat = pc.list_flatten(lists)
    if len(flat) < 2:
        return True
    parents = pc.list_parent_indices(lists)
    same = pc.equal(parents.slice(1), parents.slice(0, len(parents) - 1))
    rising = pc.greater(flat.slice(1), flat.slice(0, len(flat) - 1))
    return pc.all(pc.or_(pc.invert(same), rising)).as_py()


class _Where:
    """What `_release_video` names in an error: the record id, and the shard row it was read from."""

    __slots__ = ("path", "rid", "row")

    def __init__(self, path: Path, rid: str, row: int) -> None:
        self.path, self.rid, self.row = path, rid, row

    @property
    def id(self) -> str:
        return f"{self.rid} ({self.path} row {self.row})"


def _where_in(path: Path, ids: list[str], rows: list[int]):
    return lambda i: _Where(path, ids[i], rows[i])


def _first_bad(path: Path, offset, batch, problems) -> None:
    """Raise SchemaError for the first row of `batch` a check in `problems` ({name: bad-row mask}) flags."""
    import pyarrow.compute as pc

    for name, mask in problems.items():
        index = pc.index(mask, True).as_py()
        if index >= 0:
            raise SchemaError(f"{path} row {offset[index]}: not a valid VideoITGRecord: bad {name} "
                              f"(id {batch.column('id')[index].as_py()!r}); run `vidthinker validate {path}`")


def _projected_batches(source: Path, include_errors: bool):
    """Per batch of records to export: (where(i): what an error names for row i, then the eight VideoITG
    columns as lists), read with only those columns (+ `error`) and checked per batch with pyarrow compute
    (what is written, nothing else)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = list(VIDEOITG_COLUMNS) + ["error"]
    yes_no = pa.array(list(_RELEASE_YES_NO))
    for path in record_paths(source):
        try:
            handle = pq.ParquetFile(path)
        except (OSError, pa.ArrowException) as error:
            raise SchemaError(f"{path}: not a readable parquet file: {error}") from None
        with handle:
            present = set(handle.schema_arrow.names)  # schema_arrow builds a new schema per access
            missing = [c for c in columns if c not in present]
            if missing:
                raise SchemaError(f"{path}: not a record shard: no column(s) {missing}")
            start = 0
            for batch in handle.iter_batches(batch_size=8192, columns=columns):
                rows = pa.array(range(start, start + batch.num_rows), pa.int64())
                start += batch.num_rows
                if not include_errors:
                    keep = pc.is_null(batch.column("error"))
                    batch, rows = batch.filter(keep), rows.filter(keep)
                if not batch.num_rows:
                    continue
                problems = {name: pc.fill_null(pc.invert(pc.greater(pc.utf8_length(batch.column(name)), 0)), True)
                            for name in ("id", "video", "question")}
                problems["answer"] = pc.is_null(batch.column("answer"))
                for name in ("frame_num", "clip_num"):
                    lists = batch.column(name)
                    mask = pc.is_null(lists)
                    flat = pc.list_flatten(lists)
                    if len(flat) and (flat.null_count or pc.min(flat).as_py() < 0):
                        bad = pc.fill_null(pc.less(flat, 0), True)
                        parent = pc.list_parent_indices(lists)[pc.index(bad, True).as_py()].as_py()
                        mask = pc.or_(mask, pc.equal(pa.array(range(batch.num_rows), pa.int64()), parent))
                    problems[name] = mask
                for name in ("motion", "existence"):
                    problems[name] = pc.fill_null(pc.invert(pc.is_in(batch.column(name), value_set=yes_no)), True)
                if any(pc.any(mask).as_py() for mask in problems.values()):
                    _first_bad(path, rows.to_pylist(), batch, problems)
                ordered = _sorted_unique(batch.column("frame_num")) and _sorted_unique(batch.column("clip_num"))
                values = [batch.column(name).to_pylist() for name in VIDEOITG_COLUMNS]
                if not ordered:
                    values[4] = [sorted(set(f)) for f in values[4]]
                    values[5] = [sorted(set(c)) for c in values[5]]
                yield _where_in(path, values[0], rows.to_pylist()), *values


def _release_video(record: VideoITGRecord, root: str | None, *, video: str | None = None) -> str:
    video = record.video if video is None else video
    if root is None:
        return video
    if "://" in video:  # a URI is under the root only when the root is its prefix
        prefix = root.rstrip("/") + "/"
        if video.startswith(prefix) and len(video) > len(prefix):
            return video[len(prefix):]
    elif not os.path.isabs(video):
        return Path(video).as_posix()
    elif "://" not in root:
        relative = os.path.relpath(os.path.normpath(video), os.path.normpath(os.path.abspath(root)))
        if relative != os.curdir and relative.split(os.sep)[0] != os.pardir:
            return Path(relative).as_posix()
    raise SchemaError(f"record {record.id!r}: video {video} is not under the video root {root}; "
                      "export with a --video-root that holds every video")


def _yes_no(value: Any, where: str, field: str) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value).strip().lower()
    if text in ("yes", "true", "1"):
        return "yes"
    if text in ("no", "false", "0", "", "none"):
        return "no"
    raise SchemaError(f"{where}: {field} must be \"Yes\"/\"No\", got {value!r}")


def import_videoitg_json(path: str | Path, *, video_root: str | Path | None = None) -> list[VideoITGRecord]:
    """VideoITG-40K JSON (the release's rows, or our export) → records marked as imported.

    The eight columns are kept so that exporting them again gives the same JSON values: `question` and
    `answer` as they are, `id` as text (written back as an integer), `motion`/`existence` in any case
    (booleans too), `video` as released, or joined onto `video_root` (absolute) when given, so that
    `export --video-root` with the same folder gives back the released path. `frame_num`/`clip_num` are
    kept ascending without repeats (as every release row we have seen already is).
    """
    path = Path(path)
    items = read_json_list(path, "a JSON list of VideoITG-40K rows")
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
            raise SchemaError(f"{where}: expected an object, got {type(item).__name__}")
        missing = [c for c in ("id", "video", "question", "frame_num") if c not in item]
        if missing:
            raise SchemaError(f"{where}: missing {', '.join(missing)}")
        raw_id = item["id"]
        if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or raw_id == "":
            raise SchemaError(f"{where}: id must be an integer or a non-empty string, got {raw_id!r}")
        for field in ("video", "question"):
            if not isinstance(item[field], str) or not item[field].strip():
                raise SchemaError(f"{where}: {field} must be a non-empty string, got {item[field]!r}")
        motion = _yes_no(item.get("motion", "no"), where, "motion")
        existence = _yes_no(item.get("existence", "no"), where, "existence")
        video = item["video"]
        if video_root is not None and not os.path.isabs(video) and "://" not in video:
            video = join_video(Path(video_root), video)
        record_id = str(raw_id)
        # The release's ids are unique row numbers; a file with repeated ids (older exports) still gives
        # every record its own qa_id.
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
                    "video_id": safe_video_id(item["video"]),
                    "qa_id": f"{record_id}-{occurrence}" if occurrence else record_id,
                    "provenance": provenance,
                },
                source=where,
            )
        )
    return records
