"""Readers and writers for the files users bring and take away.

Manifests come as JSONL or parquet (`ManifestRow`), or as LLaVA-Video-178K-style JSON (what the paper
annotated). Records leave as parquet shards or as VideoITG-40K JSON, and public VideoITG-40K JSON comes
back in as records. Every reader names the file and row of the first thing it cannot accept.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from vidthinker import __version__
from vidthinker.io import atomic_path
from vidthinker.schema import (
    VIDEOITG_COLUMNS,
    InstructionType,
    ManifestRow,
    Provenance,
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


def _read_utf8_text(path: Path) -> str:
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


# --------------------------------------------------------------------------- LLaVA-Video-178K import
#
# The release (HF dataset lmms-lab/LLaVA-Video-178K) has one folder per subset, e.g. `0_30_s_nextqa/`,
# holding `<subset>_{mc,oe}_qa_processed.json` (and `<subset>_cap_processed.json`, detailed captions)
# next to the video tarballs that unpack into that folder. Each file is a JSON list with ONE ITEM PER
# QA PAIR: `{"id", "conversations": [{"from": "human", "value": "<image>\n..."}, {"from": "gpt", ...}],
# "data_source": "<subset>", "video": "<path relative to the subset folder>"}`; the items about one
# video share `id` (e.g. "1006-8968804598" for `NextQA/NExTVideo/1006/8968804598.mp4`). The loader that
# trains on these files, LazySupervisedDataset in LLaVA-VL/LLaVA-NeXT `llava/train/train.py`, joins
# `video` onto its `--video_folder` (os.path.join), and its `preprocess_multimodal` moves a lone `<image>`
# token to the front of a turn: the token marks where the frames go and is not part of the question.

LLAVA_QA_GLOB = "*_qa_processed.json"
_MEDIA_TOKEN = re.compile(r"<(?:image|video)>\n?")


def _clean_turn(text: str) -> str:
    """A human turn without its `<image>`/`<video>` tokens (wherever they stand) and outer whitespace."""
    return _MEDIA_TOKEN.sub("", text).strip()


def _question_digest(question: str) -> str:
    return hashlib.sha256(question.encode("utf-8")).hexdigest()[:10]


def llava_video_files(source: str | Path) -> list[Path]:
    """The QA files to import: `source` itself, or every `*_qa_processed.json` under a folder (sorted)."""
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise SchemaError(f"{source}: no such file or folder")
    files = sorted(path for path in source.rglob(LLAVA_QA_GLOB) if path.is_file())
    if not files:
        raise SchemaError(f"{source}: no {LLAVA_QA_GLOB} files in this folder or below it")
    return files


def import_llava_video(source: str | Path, *, video_root: str | Path | None = None) -> list[ManifestRow]:
    """LLaVA-Video-178K QA files, as released, → manifest rows (one per video, all of its questions).

    `source` is one file or a folder (every `*_qa_processed.json` in it, recursively, e.g. the whole
    release). An item's `video` is relative to its file's folder (the subset folder); `video_root`
    replaces that folder: for one file it is the folder the paths are relative to, for a folder source
    it mirrors the source's layout (`video_root/<subset>/<video>`), since each subset's paths are
    relative to its own folder. Videos are written as absolute paths; URIs are kept as they are.

    Every human turn answered by the next gpt turn is one QA pair, so a multi-turn item gives several.
    Items about the same video (same resolved path, from any file) become one row, so stage 1 decodes
    the video once for all of its questions. `video_id` is `<data_source>/<video>` made filename-safe.

    `qa_id` is `<item id>-<10 hex of sha256(question)>`, with `-1`, `-2`, ... added for a repeat of the
    same question about the same video (in file order). Content rather than position: an id built from
    the turn number restarts in every item and collides across the items that share an `id` (the bug of
    the first importer), and one built from the item's index changes whenever the release is re-cut,
    filtered or merged with another file; a digest of the question survives all of these, is the same
    when a file is imported again, and needs nothing but the item to recompute.
    """
    files = llava_video_files(source)
    base = Path(source)
    entries: OrderedDict[str, dict[str, Any]] = OrderedDict()  # resolved video path → row being built
    owners: dict[str, tuple[str, str]] = {}  # video_id → (resolved video path, where it was first seen)
    for path in files:
        if video_root is None:
            root = path.parent
        elif base.is_dir():
            root = Path(video_root) / path.parent.relative_to(base)
        else:
            root = Path(video_root)
        for index, item in enumerate(_read_json_list(path, "a JSON list of conversations (LLaVA-Video-178K format)")):
            _add_llava_item(item, f"{path} item {index}", root, entries, owners)
    return [
        validate_row(ManifestRow, {k: v for k, v in entry.items() if k not in ("where", "qa_ids")}, source=entry["where"])
        for entry in entries.values()
    ]


def _read_json_list(path: Path, expected: str) -> list[Any]:
    if not path.is_file():
        raise SchemaError(f"{path}: file not found")
    try:
        items = json.loads(_read_utf8_text(path))
    except json.JSONDecodeError as error:
        raise SchemaError(f"{path}: not JSON: {error.msg} at line {error.lineno}") from None
    if not isinstance(items, list):
        raise SchemaError(f"{path}: expected {expected}, got a JSON {type(items).__name__}")
    return items


def _add_llava_item(item: Any, where: str, root: Path, entries: OrderedDict[str, dict[str, Any]],
                    owners: dict[str, tuple[str, str]]) -> None:
    if not isinstance(item, dict):
        raise SchemaError(f"{where}: expected an object, got {type(item).__name__}")
    missing = [key for key in ("id", "video", "conversations") if key not in item]
    if missing:
        raise SchemaError(f"{where}: missing key(s) {', '.join(missing)} (needs id, video, conversations)")
    item_id = item["id"]
    if isinstance(item_id, bool) or not isinstance(item_id, (str, int)) or item_id == "":
        raise SchemaError(f"{where}: id must be a non-empty string or an integer, got {item_id!r}")
    video = item["video"]
    if not isinstance(video, str) or not video.strip():
        raise SchemaError(f"{where}: video must be a non-empty path, got {video!r}")
    if not isinstance(item["conversations"], list):
        raise SchemaError(f"{where}: conversations must be a list of {{from, value}} turns")
    pairs = _llava_pairs(item["conversations"], where)
    resolved = _join_video(root, video)
    data_source = item.get("data_source")
    source = str(data_source) if data_source not in (None, "") else None
    entry = entries.get(resolved)
    if entry is None:
        video_id = _video_id(f"{source}/{video}" if source else video)
        if video_id in owners and owners[video_id][0] != resolved:
            other_path, other_where = owners[video_id]
            raise SchemaError(f"{where}: video {resolved} gets video_id {video_id!r}, which {other_where} "
                              f"already gave to {other_path}")
        owners[video_id] = (resolved, where)
        entry = entries[resolved] = {"video_id": video_id, "video": resolved, "qa": [], "source": source or "llava-video",
                                     "where": f"{where} (video {video})", "qa_ids": set()}
    for question, answer in pairs:
        stem = f"{item_id}-{_question_digest(question)}"
        qa_id, repeat = stem, 0
        while qa_id in entry["qa_ids"]:
            repeat += 1
            qa_id = f"{stem}-{repeat}"
        entry["qa_ids"].add(qa_id)
        entry["qa"].append({"qa_id": qa_id, "question": question, "answer": answer})


def _llava_pairs(turns: list[Any], where: str) -> list[tuple[str, str]]:
    """(question, answer) for each human turn answered by the next gpt turn; system turns are skipped."""
    pairs: list[tuple[str, str]] = []
    pending: tuple[int, str] | None = None
    for number, turn in enumerate(turns):
        at = f"{where} turn {number}"
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
            raise SchemaError(f"{at}: expected {{\"from\": ..., \"value\": text}}, got {turn!r:.80}")
        speaker = str(turn.get("from", "")).lower()
        if speaker == "human":
            if pending is not None:
                raise SchemaError(f"{at}: a second human turn while turn {pending[0]} has no gpt answer")
            question = _clean_turn(turn["value"])
            if not question:
                raise SchemaError(f"{at}: the question is empty once <image>/<video> tokens are removed")
            pending = (number, question)
        elif speaker in ("gpt", "assistant"):
            if pending is None:
                raise SchemaError(f"{at}: a gpt turn with no human question before it")
            pairs.append((pending[1], turn["value"].strip()))
            pending = None
        elif speaker != "system":
            raise SchemaError(f"{at}: unknown speaker {speaker!r} (expected human/gpt)")
    if pending is not None:
        raise SchemaError(f"{where} turn {pending[0]}: the human turn has no gpt answer after it")
    if not pairs:
        raise SchemaError(f"{where}: no question/answer pair (a human turn followed by a gpt turn)")
    return pairs


def _join_video(root: Path, video: str) -> str:
    """`video` joined onto `root` as LLaVA-NeXT's loader does, made absolute and normalised (symlinks are
    kept, so a path under a symlinked root stays under it); absolute paths and URIs are kept."""
    if "://" in video:
        return video
    return os.path.normpath(os.path.abspath(os.path.join(root, video)))


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
    if isinstance(records, (str, Path)):
        rows = _projected_rows(Path(records), include_errors)
    else:
        rows = ((r, r.id, r.video, r.question, r.answer, r.frame_num, r.clip_num, r.motion, r.existence)
                for r in records if include_errors or r.ok)
    # A video is written once per question (about 11 per video in VideoITG-40K): relate each distinct
    # path to the root once. Bounded: cleared when it reaches _VIDEO_MEMO entries.
    released: dict[str, str] = {}
    count = 0
    with atomic_path(out) as tmp, tmp.open("w", encoding="utf-8") as handle:
        handle.write("[")
        lines: list[str] = []
        for where, rid, video, question, answer, frame_num, clip_num, motion, existence in rows:
            if root is None:
                written = video
                if absolute is not None and (os.path.isabs(video) or "://" in video):
                    absolute.append(video)
            else:
                written = released.get(video)
                if written is None:
                    if len(released) >= _VIDEO_MEMO:
                        released.clear()
                    written = released[video] = _release_video(where, root, video=video)
            lines.append(_record_json(rid, written, question, answer, frame_num, clip_num,
                                      _RELEASE_YES_NO[motion], _RELEASE_YES_NO[existence]))
            count += 1
            if len(lines) >= _LINES_PER_WRITE:
                handle.write(("\n" if count == len(lines) else ",\n") + ",\n".join(lines))
                lines.clear()
        if lines:
            handle.write(("\n" if count == len(lines) else ",\n") + ",\n".join(lines))
        handle.write("\n]\n" if count else "]\n")
    return count


_VIDEO_MEMO = 65536
_LINES_PER_WRITE = 4096
_STRING = json.encoder.encode_basestring  # the C encoder json.dumps(..., ensure_ascii=False) uses for str


def _record_json(rid: str, video: str, question: str, answer: str, frame_num: list[int], clip_num: list[int],
                 motion: str, existence: str) -> str:
    """One record as `json.dumps(dict(zip(VIDEOITG_COLUMNS, values)), ensure_ascii=False)` writes it, byte
    for byte, without building the dict (the encoder's per-call setup was most of export's time at 474K
    records). Lists of ints print the same in Python and JSON ("[1, 2]"); tests/test_formats.py holds
    this against json.dumps."""
    ident = rid if _CANONICAL_INT.fullmatch(rid) else _STRING(rid)
    return (f'{{"id": {ident}, "video": {_STRING(video)}, "question": {_STRING(question)}, '
            f'"answer": {_STRING(answer)}, "frame_num": [{", ".join(map(str, frame_num))}], '
            f'"clip_num": [{", ".join(map(str, clip_num))}], "motion": "{motion}", "existence": "{existence}"}}')


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
    """What `_release_video` names in an error: the record id, and the shard row it was read from (one
    object, updated per row)."""

    __slots__ = ("path", "rid", "row")

    @property
    def id(self) -> str:
        return f"{self.rid} ({self.path} row {self.row})"


def _first_bad(path: Path, offset, batch, problems) -> None:
    """Raise SchemaError for the first row of `batch` a check in `problems` ({name: bad-row mask}) flags."""
    import pyarrow.compute as pc

    for name, mask in problems.items():
        index = pc.index(mask, True).as_py()
        if index >= 0:
            raise SchemaError(f"{path} row {offset[index]}: not a valid VideoITGRecord: bad {name} "
                              f"(id {batch.column('id')[index].as_py()!r}); run `vidthinker validate {path}`")


def _projected_rows(source: Path, include_errors: bool):
    """(where, the eight VideoITG columns) of each record to export, read with only those columns (+ `error`)
    and checked per batch with pyarrow compute (what is written, nothing else)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = list(VIDEOITG_COLUMNS) + ["error"]
    where = _Where()
    yes_no = pa.array(list(_RELEASE_YES_NO))
    for path in record_paths(source):
        try:
            handle = pq.ParquetFile(path)
        except (OSError, pa.ArrowException) as error:
            raise SchemaError(f"{path}: not a readable parquet file: {error}") from None
        with handle:
            missing = [c for c in columns if c not in handle.schema_arrow.names]
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
                where.path = path
                ordered = _sorted_unique(batch.column("frame_num")) and _sorted_unique(batch.column("clip_num"))
                for row, rid, video, question, answer, frames, clips, motion, existence in zip(
                        rows.to_pylist(), *(batch.column(name).to_pylist() for name in VIDEOITG_COLUMNS)):
                    where.rid, where.row = rid, row
                    if not ordered:
                        frames, clips = sorted(set(frames)), sorted(set(clips))
                    yield where, rid, video, question, answer, frames, clips, motion, existence


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
    items = _read_json_list(path, "a JSON list of VideoITG-40K rows")
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
            video = _join_video(Path(video_root), video)
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
                    "video_id": _video_id(item["video"]),
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
