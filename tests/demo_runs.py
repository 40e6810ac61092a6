"""Realistic annotation runs without models: synthetic videos, records derived from their ground truth.

`make_demo_runs(root, runs=3, videos=4)` writes one synthetic set and several run folders

    root/synth/                      videos/, truth/, manifest.jsonl (generate_synthetic_set)
    root/runs/<run>/shards/*.parquet VideoITG records (+ shard manifests), two videos per shard
    root/runs/<run>/summary.json     RunSummary, as `vidthinker annotate` writes it

Each record looks like what the pipeline writes: per-clip captions with traces (model, prompt hash,
raw output, latency, token usage, cache hits as calls=0), a retrieval with its explanation and JSON raw
output, a localization with candidates, dropped near-duplicates and its policy. Runs differ the way real
ones do: a few probe / caption / retrieval / localization failures with the pipeline's error messages, a
truncated video that cannot be probed, near-duplicate questions, and the last run drifts (a retrieval
prompt that returns every clip and reads questions as no-clue ones more often). Deterministic per seed
(except `created_at`, which is spaced one day apart back from a fixed date).

A test fixture (tests/demo_support.py builds it once per session for the quality, dashboard and
publishing tests), also handy for trying the dashboard: from the repository root,
`.venv/bin/python -m tests.demo_runs OUT` then `vidthinker dashboard --out OUT/runs`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np

from vidthinker import __version__
from vidthinker.formats import read_manifest
from vidthinker.schema import (
    ClipCaption,
    ClipRetrieval,
    FrameLocalization,
    InstructionType,
    ManifestRow,
    Provenance,
    QAPair,
    StageTrace,
    Usage,
    VideoITGRecord,
)
from vidthinker.shards import write_shard

CAPTION_MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"
RETRIEVAL_MODEL = "Qwen/Qwen2.5-7B-Instruct"
EMBEDDING_MODEL = "google/siglip-so400m-patch14-384"
BASE_TIME = dt.datetime(2025, 6, 1, 9, 0, tzinfo=dt.UTC)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class _RunStyle:
    def __init__(self, index: int, drift: bool):
        self.index = index
        self.drift = drift
        self.caption_error = 0.03 + 0.01 * index
        self.retrieve_error = 0.04 if not drift else 0.08
        self.localize_error = 0.015
        self.type_flip = 0.08 if not drift else 0.35
        self.all_clips = 0.04 if not drift else 0.45
        self.cache_hit = 0.1 + 0.2 * (index > 0)
        self.retrieval_prompt = f"retrieval-prompt-v{1 + int(drift)}"


def _uniform(items: list[int], n: int) -> list[int]:
    if len(items) <= n:
        return list(items)
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


def _trace(rng: np.random.Generator, model: str, prompt: str, raw: str, prompt_tokens: float, style: _RunStyle,
           latency: float, error: str | None = None) -> StageTrace:
    cached = rng.random() < style.cache_hit
    return StageTrace(
        model=model,
        prompt_hash=_hash(prompt),
        raw_output=raw,
        latency_s=0.0 if cached else round(float(rng.gamma(4.0, latency / 4.0)), 3),
        usage=Usage(prompt_tokens=0 if cached else int(prompt_tokens * rng.uniform(0.9, 1.1)),
                    completion_tokens=0 if cached else max(1, len(raw.split()) * 4 // 3),
                    calls=0 if cached else 1),
        error=error,
    )


def _record(row: ManifestRow, qa: QAPair, num_frames: int, rng: np.random.Generator, style: _RunStyle,
            provenance: Provenance) -> VideoITGRecord:
    gt = qa.ground_truth
    n_clips = math.ceil(num_frames / 5)
    descriptions = row.clip_descriptions or [f"clip {c}" for c in range(n_clips)]
    base = {"id": f"{row.video_id}/{qa.qa_id}", "video": row.video, "question": qa.question, "answer": qa.answer,
                "video_id": row.video_id, "qa_id": qa.qa_id, "provenance": provenance}

    # stage 1: a caption per clip, conditioned on the question
    captions = []
    caption_failed = rng.random() < style.caption_error
    failed_clip = int(rng.integers(0, n_clips)) if caption_failed else -1
    for clip_id in range(n_clips):
        text = descriptions[clip_id] if clip_id < len(descriptions) else ""
        if rng.random() < 0.3:
            text = f"{text} Relevant to the question: {qa.question.rstrip('?').lower()}."
        error = "ModelTimeout: caption call timed out after 60.0 s (3 attempts)" if clip_id == failed_clip else None
        captions.append(ClipCaption(
            video_id=row.video_id, qa_id=qa.qa_id, clip_id=clip_id, caption="" if error else text,
            keywords=[w.strip(".,").lower() for w in qa.question.split() if len(w) > 4][:4],
            trace=_trace(rng, CAPTION_MODEL, "caption-prompt-v3", "" if error else text, 620 + 5 * 196, style, 1.8, error),
        ))
    if caption_failed:
        return VideoITGRecord(**base, captions=captions, error=captions[failed_clip].trace.error, error_stage="caption",
                              error_class="transient")

    # stage 2: retrieval (type, clips, explanation)
    kind = InstructionType(gt.instruction_type if gt and gt.instruction_type else InstructionType.SEMANTIC_ONLY)
    if rng.random() < style.type_flip:
        kind = InstructionType.NO_CLUES if style.drift else InstructionType(rng.choice([t.value for t in InstructionType]))
    clip_ids = list(gt.clip_ids) if gt else []
    if kind is InstructionType.NO_CLUES or rng.random() < style.all_clips:
        clip_ids = list(range(n_clips))
    elif rng.random() < 0.15 and clip_ids:
        clip_ids = sorted(set(clip_ids) | {min(n_clips - 1, clip_ids[-1] + 1)})
    elif rng.random() < 0.05:
        clip_ids = []
    explanation = (
        "The question asks about the whole video, so every clip is relevant." if len(clip_ids) == n_clips
        else "No clip mentions what the question asks about." if not clip_ids
        else f"Clip-{clip_ids[0]} first shows what the question asks about"
             + (f"; clips {', '.join(f'Clip-{c}' for c in clip_ids[1:])} continue it." if len(clip_ids) > 1 else ".")
    )
    raw = json.dumps({"explanation": explanation, "instruction_type": kind.value, "clips": clip_ids})
    retrieve_failed = rng.random() < style.retrieve_error
    if retrieve_failed:
        raw = "Sure! The relevant clips are Clip-1 and Clip-2 because"
    listing = sum(len(c.caption.split()) for c in captions) * 4 // 3 + 180
    r_trace = _trace(rng, RETRIEVAL_MODEL, style.retrieval_prompt, raw, listing, style, 0.9,
                     "ModelReplyError: reply is not valid JSON for the retrieval schema" if retrieve_failed else None)
    retrieval = ClipRetrieval(video_id=row.video_id, qa_id=qa.qa_id, clip_ids=[] if retrieve_failed else clip_ids,
                              explanation="" if retrieve_failed else explanation,
                              instruction_type=None if retrieve_failed else kind, trace=r_trace)
    if retrieve_failed:
        return VideoITGRecord(**base, captions=captions, retrieval=retrieval, error=r_trace.error, error_stage="retrieve",
                              error_class="permanent")

    # stage 3: frames (the localize stage's policies; "duplicates" dropped greedily)
    all_frames = list(range(num_frames))
    in_clips = [f for f in all_frames if f // 5 in set(clip_ids)]
    truth = set(gt.frame_ids) if gt else set()
    if kind in (InstructionType.MOTION_ONLY, InstructionType.NO_CLUES):
        candidates, policy = _uniform(all_frames, 8), f"{kind.value}:uniform@0.97"
        kept = [f for f in candidates if rng.random() > 0.1] or candidates[:1]
    elif kind is InstructionType.SEMANTIC_MOTION:
        candidates, policy = in_clips, f"{kind.value}:all_clip_frames"
        kept = list(candidates)
    else:
        candidates, policy = in_clips, f"{kind.value}:dedup@0.90"
        kept = []
        for f in candidates:
            # consecutive frames of a static scene are near-duplicates; frames on the truth's edges are kept
            if not kept or f - kept[-1] >= 3 or (f in truth) != (kept[-1] in truth) or rng.random() < 0.2:
                kept.append(f)
    duplicates = [f for f in candidates if f not in kept]
    localize_failed = rng.random() < style.localize_error
    l_trace = StageTrace(model=EMBEDDING_MODEL, latency_s=round(float(rng.gamma(3.0, 0.05)), 3),
                         error="EmbeddingError: image embedding returned NaN for 1 frame" if localize_failed else None)
    localization = FrameLocalization(video_id=row.video_id, qa_id=qa.qa_id, frame_ids=[] if localize_failed else kept,
                                     candidate_frame_ids=candidates, duplicate_frame_ids=duplicates, policy=policy,
                                     trace=l_trace)
    ok = not localize_failed
    return VideoITGRecord(
        **base,
        frame_num=kept if ok else [],
        clip_num=clip_ids if ok else [],
        motion="yes" if kind.motion else "no",
        existence="yes" if kind.existence else "no",
        instruction_type=kind,
        error=None if ok else l_trace.error,
        error_stage=None if ok else "localize",
        error_class=None if ok else "permanent",
        captions=captions,
        retrieval=retrieval,
        localization=localization,
    )


def _with_near_duplicates(row: ManifestRow, index: int) -> ManifestRow:
    """Ask one question of the first video twice more: re-punctuated (an exact duplicate once normalised)
    and prefixed (a near duplicate by token Jaccard)."""
    if index != 0 or len(row.qa) < 2:
        return row
    first, second = row.qa[0], row.qa[1]
    exact = first.model_copy(update={"qa_id": f"{first.qa_id}-dup", "question": first.question.rstrip("?").upper() + " ?"})
    near = second.model_copy(update={"qa_id": f"{second.qa_id}-dup", "question": "Please, " + second.question.lower()})
    return row.model_copy(update={"qa": [*row.qa, exact, near]})


def make_demo_runs(root: str | Path, *, runs: int = 3, videos: int = 4, seed: int = 7, per_shard: int = 2,
                   min_seconds: float = 20, max_seconds: float = 40, manifest: Path | None = None) -> list[Path]:
    """Write a synthetic set (unless `manifest` is given) and `runs` run folders; return the run folders."""
    from vidthinker.worker.summary import summarise

    root = Path(root)
    if manifest is None:
        from vidthinker.synth import generate_synthetic_set

        manifest = generate_synthetic_set(root / "synth", videos, seed, min_seconds=min_seconds, max_seconds=max_seconds)
    rows = read_manifest(manifest)
    lengths = {}
    for row in rows:
        truth = Path(row.video).parent.parent / "truth" / f"{row.video_id}.json"
        lengths[row.video_id] = int(json.loads(truth.read_text())["duration_s"]) if truth.is_file() else 30
    # a truncated copy of the first video: probing it fails, as a broken upload would
    broken = Path(rows[0].video).with_name("broken-upload.mp4")
    if not broken.exists():
        broken.write_bytes(Path(rows[0].video).read_bytes()[:4096])
    broken_row = rows[0].model_copy(update={"video_id": "broken-upload", "video": str(broken), "qa": rows[0].qa[:3]})

    out = []
    for r in range(runs):
        style = _RunStyle(r, drift=runs > 2 and r == runs - 1)
        rng = np.random.default_rng([seed, r])
        run_id = f"run-{r + 1:02d}-{_hash(f'{seed}-{r}')[:6]}"
        created = BASE_TIME + dt.timedelta(days=r)
        provenance = Provenance(
            pipeline_version=f"vidthinker {__version__}", run_id=run_id, caption_model=CAPTION_MODEL,
            retrieval_model=RETRIEVAL_MODEL, embedding_model=EMBEDDING_MODEL,
            caption_prompt_hash=_hash("caption-prompt-v3"), retrieval_prompt_hash=_hash(style.retrieval_prompt),
            clip_seconds=5.0, grid_fps=1.0, created_at=created,
        )
        run_dir = root / "runs" / f"{created:%Y%m%d}-{run_id}"
        if run_dir.exists():
            shutil.rmtree(run_dir)
        run_rows = [_with_near_duplicates(row, i) for i, row in enumerate(rows)]
        if r > 0:
            run_rows.append(broken_row)
        all_records = []
        for s in range(0, len(run_rows), per_shard):
            records = []
            for row in run_rows[s:s + per_shard]:
                if row.video_id == "broken-upload":
                    records += [VideoITGRecord(
                        id=f"{row.video_id}/{qa.qa_id}", video=row.video, question=qa.question, answer=qa.answer,
                        video_id=row.video_id, qa_id=qa.qa_id, provenance=provenance,
                        error=f"CorruptVideo: {row.video}: moov atom not found (file truncated?)", error_stage="probe",
                        error_class="permanent",
                    ) for qa in row.qa]
                    continue
                records += [_record(row, qa, lengths[row.video_id], rng, style, provenance) for qa in row.qa]
            # not made by the pipeline from Settings: a marker, never equal to a real annotation fingerprint
            # (so `vidthinker annotate` into a demo run folder reports these shards as stale, not finished)
            write_shard(records, run_dir / "shards" / f"shard-{s // per_shard:05d}.parquet",
                        settings_fingerprint=f"demo-{_hash(CAPTION_MODEL + RETRIEVAL_MODEL + style.retrieval_prompt)[:11]}")
            all_records += records
        clock = {"probe": 0.4, "decode": 3.1, "caption": 41.0, "retrieve": 9.5, "localize": 2.2}
        summary = summarise(run_id, all_records, wall_s=60.0 + 5 * r, clock=clock)
        (run_dir / "summary.json").write_text(json.dumps(summary.model_dump(mode="json"), indent=1) + "\n")
        out.append(run_dir)
    return out


if __name__ == "__main__":  # pragma: no cover - convenience
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/demo-quality")
    for path in make_demo_runs(target):
        print(path)
