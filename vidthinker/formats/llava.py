"""LLaVA-Video-178K QA files, as released, imported as manifest rows (one per video, all of its questions)."""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

from vidthinker.formats.release_files import join_video, read_json_list, safe_video_id
from vidthinker.schema import ManifestRow, SchemaError, validate_row

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
        for index, item in enumerate(read_json_list(path, "a JSON list of conversations (LLaVA-Video-178K format)")):
            _add_llava_item(item, f"{path} item {index}", root, entries, owners)
    return [
        validate_row(ManifestRow, {k: v for k, v in entry.items() if k not in ("where", "qa_ids")}, source=entry["where"])
        for entry in entries.values()
    ]


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
    resolved = join_video(root, video)
    data_source = item.get("data_source")
    source = str(data_source) if data_source not in (None, "") else None
    entry = entries.get(resolved)
    if entry is None:
        video_id = safe_video_id(f"{source}/{video}" if source else video)
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

