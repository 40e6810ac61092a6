"""Benchmark adapters: annotation files → ``EvalItem`` lists.

Field names follow the public releases and their lmms-eval tasks (the user brings the files and videos;
nothing is downloaded):

* **VideoMME** (``lmms-lab/Video-MME``, ``videomme/test-*.parquet``): ``video_id, duration, domain,
  sub_category, url, videoID, question_id, task_type, question, options ["A. ...", ...], answer "A"``;
  video ``<video_root>/{videoID}.mp4`` (lmms-eval: ``<cache>/data/{videoID}.mp4``; ``.MP4``/``.mkv`` also
  tried). doc_id = question_id, group = task_type.
* **MLVU**: the dev split lmms-eval reads (``sy1998/MLVU_dev``): ``video_name, question`` (options inside the
  text as ``(A) ...`` lines), ``answer`` (a letter), ``task_type``; or the original release's per-task JSON
  (``json/1_plotQA.json`` ...: ``video, duration, question, candidates [...], answer`` (text),
  ``question_type``; videos in ``video/<task>/``). group = task type.
* **LongVideoBench** (``lvb_val.json`` / parquet): ``id, video_path, question, candidates`` or
  ``option0..option4`` ("N/A" = absent), ``correct_choice`` (0-based), ``question_category,
  duration_group, duration``; video ``<video_root>/{video_path}``. group = question_category.
* **CG-Bench** (``cgbench.json`` / ``cgbench_mini.json``): ``qid, video_uid, question, choices, right_answer``
  (a letter), ``answer`` (text), ``clue_intervals [[start_s, end_s], ...]``, ``duration, domain,
  sub_category``; video ``<video_root>/{video_uid}.mp4``. Its clue intervals are temporal truth: grid id k
  (t = k s) is relevant when start ≤ k ≤ end (an interval holding no whole second gives its rounded middle).
  group = sub_category.
* **VidThinker manifests** (synthetic sets, hand-labelled sets): ``ManifestRow`` with ``qa[].options`` and
  ``qa[].ground_truth`` (1-fps frame ids, instruction type). The gold letter is the option equal to
  ``answer``. doc_id = qa_id, or ``<video_id>/<qa_id>`` when qa_ids repeat across videos (the record id
  ``records_from_ground_truth`` uses); the row is the question's position in manifest order, the integer
  ``eval.lmms_select.read_queries`` writes (with ``doc_ids.jsonl``). group = instruction type.

Annotations come as .json (a list, or {"data": [...]}) , .jsonl or .parquet; a folder means every such
file in it (files in name order, rows in file order). A video that is missing is not an error here: the
harness reports it as a failed video.

**Two ids per item.** ``EvalItem.doc_id`` is the benchmark's own question id (it names rows in reports);
``extra["row"]`` (``EvalItem.lmms_doc_id``) is the item's position in the file's row order, counted from 0
over the whole file (``--limit`` does not renumber). That is lmms-eval's ``doc_id``: lmms-eval numbers a
task's docs with ``enumerate`` over the evaluation split (``lmms_eval/api/task.py``, ``eval_docs``), and the
tasks read here have no ``process_docs`` that would reorder or filter them (NVlabs/VideoITG's fork:
``lmms_eval/tasks/videomme/videomme.yaml`` test split of ``lmms-lab/Video-MME``; ``mlvu/mlvu_dev.yaml`` test
split of ``sy1998/MLVU_dev``; ``longvideobench/longvideobench_val_v.yaml`` validation split of
``longvideobench/LongVideoBench``; ``cgbench/cgbench.yaml`` the train split of ``cgbench_mini.json``). So
the row numbers agree with lmms-eval when the file given here is that split in its order (the released
parquet/JSON file itself). Every prediction file this project writes uses the row number as ``doc_id``;
a VidThinker manifest's rows are its questions in manifest order (video by video, ``qa`` in order).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from eval.items import LETTERS, EvalItem

BENCHMARKS = ("manifest", "videomme", "mlvu", "longvideobench", "cgbench")
_OPTION_PREFIX = re.compile(r"^\s*[\(\[]?([A-J])[\)\]\.\:]\s*")


# --------------------------------------------------------------------------- files


def read_records(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".json", ".jsonl", ".parquet"))
        if not files:
            raise FileNotFoundError(f"{path}: no .json/.jsonl/.parquet annotation files")
        out = []
        for f in files:
            for row in read_records(f):
                row.setdefault("_source", f.stem)
                out.append(row)
        return out
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    text = path.read_text(encoding="utf-8")
    if suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    if isinstance(data, dict):
        for key in ("data", "annotations", "questions", "test", "validation"):
            if isinstance(data.get(key), list):
                return list(data[key])
        # {id: record} maps
        if all(isinstance(v, dict) for v in data.values()):
            return [{"_key": k, **v} for k, v in data.items()]
        raise ValueError(f"{path}: a JSON object without a list of records")
    if not isinstance(data, list):
        raise TypeError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    return data


def _find_video(root: Path, names: Iterable[str]) -> str:
    names = [n for n in names if n]
    for name in names:
        p = Path(name)
        p = p if p.is_absolute() else root / p
        if p.exists():
            return str(p.resolve())
    first = Path(names[0])
    return str((first if first.is_absolute() else root / first).resolve())


def _letter(index: int) -> str:
    return LETTERS[index]


def _strip_option(text: str) -> str:
    return _OPTION_PREFIX.sub("", str(text), count=1).strip()


# --------------------------------------------------------------------------- adapters


def videomme_items(records: list[dict[str, Any]], video_root: Path) -> list[EvalItem]:
    items = []
    for i, r in enumerate(records):
        vid = str(r["videoID"])
        options = tuple(_strip_option(o) for o in r["options"])
        answer = str(r["answer"]).strip().upper()[:1]
        items.append(
            EvalItem(
                doc_id=str(r.get("question_id", i)),
                video=_find_video(
                    video_root,
                    [
                        f"{vid}.mp4",
                        f"data/{vid}.mp4",
                        f"{vid}.MP4",
                        f"data/{vid}.MP4",
                        f"{vid}.mkv",
                        f"data/{vid}.mkv",
                    ],
                ),
                question=str(r["question"]),
                options=options,
                answer=answer,
                group=r.get("task_type"),
                video_id=str(r.get("video_id", vid)),
                extra={"row": i, **{k: r.get(k) for k in ("duration", "domain", "sub_category") if k in r}},
            )
        )
    return items


def _split_embedded_options(question: str) -> tuple[str, tuple[str, ...]]:
    """MLVU dev: 'Question text\\n(A) one\\n(B) two' → ('Question text', ('one', 'two'))."""
    stem, options = [], []
    for line in question.splitlines():
        m = re.match(r"^\s*\(([A-J])\)\s*(.*)$", line)
        if m:
            options.append(m.group(2).strip())
        elif not options:
            stem.append(line)
    return "\n".join(stem).strip(), tuple(options)


def mlvu_items(records: list[dict[str, Any]], video_root: Path) -> list[EvalItem]:
    items = []
    for i, r in enumerate(records):
        task = r.get("task_type") or r.get("question_type") or r.get("_source")
        if "candidates" in r:
            options = tuple(str(c) for c in r["candidates"])
            answer_text = str(r["answer"])
            answer = (
                _letter(options.index(answer_text))
                if answer_text in options
                else answer_text.strip()[:1].upper()
            )
            question = str(r["question"])
        else:
            question, options = _split_embedded_options(str(r["question"]))
            answer = str(r["answer"]).strip().strip("()").upper()[:1]
        name = str(r.get("video_name") or r.get("video"))
        source = r.get("_source")
        names = [name, f"video/{name}"]
        if source:
            names += [f"{source}/{name}", f"video/{source}/{name}"]
        if task:
            names += [f"{task}/{name}", f"video/{task}/{name}"]
        items.append(
            EvalItem(
                doc_id=str(r.get("question_id", r.get("id", f"{source or 'mlvu'}-{i}"))),
                video=_find_video(video_root, names),
                question=question,
                options=options,
                answer=answer if options else None,
                group=str(task) if task else None,
                video_id=Path(name).stem,
                extra={"row": i, **{k: r.get(k) for k in ("duration",) if k in r}},
            )
        )
    return items


def longvideobench_items(records: list[dict[str, Any]], video_root: Path) -> list[EvalItem]:
    items = []
    for i, r in enumerate(records):
        if "candidates" in r:
            options = tuple(str(c) for c in r["candidates"])
        else:
            options = tuple(
                str(r[f"option{j}"]) for j in range(5) if r.get(f"option{j}") not in (None, "N/A")
            )
        correct = r["correct_choice"]
        answer = (
            _letter(int(correct)) if not isinstance(correct, str) or correct.isdigit() else correct.upper()
        )
        path = str(r["video_path"])
        items.append(
            EvalItem(
                doc_id=str(r.get("id", i)),
                video=_find_video(video_root, [path, f"videos/{path}"]),
                question=str(r["question"]),
                options=options,
                answer=answer,
                group=r.get("question_category"),
                video_id=str(r.get("video_id", Path(path).stem)),
                extra={"row": i, **{k: r.get(k) for k in ("duration_group", "duration") if k in r}},
            )
        )
    return items


def intervals_to_grid(intervals: Iterable[Iterable[float]], duration: float | None = None) -> tuple[int, ...]:
    """Grid ids k (t = k s) inside any [start, end] interval; an interval holding no whole second gives
    round(middle). Clipped to the video (k < ceil(duration)) when the duration is known."""
    ids: set[int] = set()
    for interval in intervals:
        start, end = (float(x) for x in list(interval)[:2])
        if end < start:
            start, end = end, start
        inside = range(math.ceil(start), math.floor(end) + 1)
        ids.update(inside if len(inside) else [math.floor((start + end) / 2 + 0.5)])
    if duration:
        n = math.ceil(float(duration))
        ids = {k for k in ids if 0 <= k < n}
    return tuple(sorted(k for k in ids if k >= 0))


def cgbench_items(records: list[dict[str, Any]], video_root: Path) -> list[EvalItem]:
    items = []
    for i, r in enumerate(records):
        options = tuple(str(c) for c in r["choices"])
        right = str(r.get("right_answer") or "").strip().upper()
        if len(right) == 1 and right in LETTERS[: len(options)]:
            answer = right
        elif str(r.get("answer")) in options:
            answer = _letter(options.index(str(r["answer"])))
        else:
            raise ValueError(f"CG-Bench record {r.get('qid', i)}: no usable right_answer/answer")
        uid = str(r["video_uid"])
        clues = r.get("clue_intervals")
        items.append(
            EvalItem(
                doc_id=str(r.get("qid", i)),
                video=_find_video(
                    video_root, [f"{uid}.mp4", f"cg_videos_720p/{uid}.mp4", f"videos/{uid}.mp4"]
                ),
                question=str(r["question"]),
                options=options,
                answer=answer,
                gt_frames=intervals_to_grid(clues, r.get("duration")) if clues else None,
                group=r.get("sub_category") or r.get("domain"),
                video_id=uid,
                extra={"row": i, **{k: r.get(k) for k in ("duration", "domain") if k in r}},
            )
        )
    return items


def manifest_items(path: str | Path) -> list[EvalItem]:
    from vidthinker.formats import read_manifest

    rows = read_manifest(path)
    qa_ids = [pair.qa_id for row in rows for pair in row.qa]
    unique = len(set(qa_ids)) == len(qa_ids)
    items = []
    for row in rows:
        for pair in row.qa:
            options = tuple(pair.options)
            answer = None
            if options and pair.answer in options:
                answer = _letter(options.index(pair.answer))
            elif (
                options
                and len(pair.answer.strip()) == 1
                and pair.answer.strip().upper() in LETTERS[: len(options)]
            ):
                answer = pair.answer.strip().upper()
            gt = pair.ground_truth
            items.append(
                EvalItem(
                    doc_id=pair.qa_id if unique else f"{row.video_id}/{pair.qa_id}",
                    video=str(Path(row.video).resolve()) if "://" not in row.video else row.video,
                    question=pair.question,
                    options=options if answer is not None else (),
                    answer=answer,
                    gt_frames=tuple(gt.frame_ids) if gt is not None else None,
                    group=(gt.instruction_type if gt is not None else None),
                    video_id=row.video_id,
                    extra={"row": len(items)},  # manifest order: eval.lmms_select.read_queries agrees
                )
            )
    return items


ADAPTERS: dict[str, Callable[[list[dict[str, Any]], Path], list[EvalItem]]] = {
    "videomme": videomme_items,
    "mlvu": mlvu_items,
    "longvideobench": longvideobench_items,
    "cgbench": cgbench_items,
}


def detect_benchmark(record: dict[str, Any]) -> str:
    keys = set(record)
    if "qa" in keys and "video_id" in keys:
        return "manifest"
    if {"videoID", "options"} <= keys:
        return "videomme"
    if "video_uid" in keys or "clue_intervals" in keys:
        return "cgbench"
    if "correct_choice" in keys:
        return "longvideobench"
    if "video_name" in keys or ("candidates" in keys and ("question_type" in keys or "video" in keys)):
        return "mlvu"
    raise ValueError(f"cannot tell which benchmark a record with fields {sorted(keys)} is from")


def load_items(
    path: str | Path,
    benchmark: str = "auto",
    *,
    video_root: str | Path | None = None,
    limit: int | None = None,
) -> list[EvalItem]:
    """Items of a benchmark (or a VidThinker manifest). ``video_root`` defaults to the annotation's folder.
    ``limit`` keeps the questions of the first N videos."""
    path = Path(path)
    if benchmark not in ("auto", *BENCHMARKS, "synthetic"):
        raise ValueError(f"unknown benchmark {benchmark!r}; choose from auto, {', '.join(BENCHMARKS)}")
    if benchmark in ("manifest", "synthetic"):
        items = manifest_items(path)
    else:
        if benchmark == "auto" and path.is_file() and path.suffix.lower() in (".jsonl", ".parquet"):
            first = read_records(path)[:1]
            if first and "qa" in first[0]:
                benchmark = "manifest"
        if benchmark == "auto" and path.is_file() and path.suffix.lower() == ".json":
            first = read_records(path)[:1]
            if first and ("conversations" in first[0] or "qa" in first[0]):
                benchmark = "manifest"  # LLaVA-Video JSON: read_manifest imports it
        if benchmark == "manifest":
            items = manifest_items(path)
        else:
            records = read_records(path)
            if not records:
                raise ValueError(f"{path}: no records")
            kind = detect_benchmark(records[0]) if benchmark == "auto" else benchmark
            if kind == "manifest":
                items = manifest_items(path)
            else:
                root = (
                    Path(video_root) if video_root is not None else (path if path.is_dir() else path.parent)
                )
                items = ADAPTERS[kind](records, root)
    seen: set[str] = set()
    for item in items:
        if item.doc_id in seen:
            raise ValueError(f"{path}: duplicate doc_id {item.doc_id!r}")
        seen.add(item.doc_id)
    if limit is not None:
        videos: list[str] = []
        for item in items:
            if item.video not in videos:
                videos.append(item.video)
        keep = set(videos[:limit])
        items = [i for i in items if i.video in keep]
    return items
