"""A run's figures (`compute_run_quality`): every shard's figures (stored ones reused while the shard is
unchanged), merged; then the run pass for what does not merge from figures (provenance, repeated
questions across videos, each shard's part cached in `<run>/quality/<stem>.questions.parquet`),
agreement with ground truth where a manifest has it, and drift against earlier runs.

    <run>/quality/<shard stem>.json   ShardQuality: one shard's figures (reused while its content hash holds)
    <run>/quality/run.json            RunQuality: the shards merged, plus ground-truth agreement,
                                      repeated questions across videos and drift against previous runs
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vidthinker.io import atomic_path, atomic_write_text
from vidthinker.quality.agreement import Agreement, AgreementAccumulator
from vidthinker.quality.drift import drift_report
from vidthinker.quality.merge import merge_figures
from vidthinker.quality.models import (
    QUALITY_VERSION,
    DriftReport,
    QualityFigures,
    RepeatedQuestion,
    RepeatedQuestions,
    RunQuality,
    ShardQuality,
    ShardRef,
    ShardRunPass,
)
from vidthinker.quality.questions import normalise_question, question_hash
from vidthinker.quality.runs import (
    RUN_FILE,
    load_run_quality,
    quality_dir,
    shard_folder,
    shard_paths,
    shard_quality_path,
)
from vidthinker.quality.shard import (
    compute_shard_quality,
    iter_shard_batches,
    shard_manifest_json,
    struct_field,
)
from vidthinker.schema import ManifestRow, SchemaError

TOP_REPEATED = 20


def _load_shard_quality(path: Path, shard: Path) -> ShardQuality | None:
    """Stored figures of a shard, if they still describe it: same file (size, mtime) and, when the shard
    has a manifest, the same content hash (which leaves out latencies, so it alone is not enough)."""
    if not path.is_file():
        return None
    try:
        stored = ShardQuality.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return None
    if stored.version != QUALITY_VERSION:
        return None
    stat = shard.stat()
    if (stored.file_size, stored.file_mtime_ns) != (stat.st_size, stat.st_mtime_ns):
        return None
    manifest = shard_manifest_json(shard)
    if manifest and manifest.get("content_hash") != stored.content_hash:
        return None
    return stored


def _find_manifest(run_dir: Path, first_video: str | None) -> Path | None:
    """A ground-truth manifest for the run: `<run>/manifest.jsonl`, or the synthetic set's manifest that
    sits beside the videos' folder (`<set>/videos/*.mp4` → `<set>/manifest.jsonl`)."""
    for name in ("manifest.jsonl", "manifest.parquet"):
        if (run_dir / name).is_file():
            return run_dir / name
    if first_video and "://" not in first_video:
        video = Path(first_video)
        if video.parent.name == "videos" and (video.parent.parent / "manifest.jsonl").is_file():
            return video.parent.parent / "manifest.jsonl"
    return None


def _resolve_manifest(manifest: str | Path | Sequence[ManifestRow] | None, run_dir: Path, paths: Sequence[Path]
                      ) -> tuple[list[ManifestRow] | None, str | None]:
    from vidthinker.formats import read_manifest

    if manifest is not None and not isinstance(manifest, (str, Path)):
        return list(manifest), "<rows>"
    if manifest is None:
        first_video = None
        for path in paths:
            for batch in iter_shard_batches(path, ["video"], batch_size=1):
                first_video = batch.column("video")[0].as_py() if batch.num_rows else None
                break
            if first_video:
                break
        manifest = _find_manifest(run_dir, first_video)
        if manifest is None:
            return None, None
    rows = read_manifest(manifest)
    if not any(qa.ground_truth for row in rows for qa in row.qa):
        return None, str(manifest)
    return rows, str(manifest)


_QUESTIONS_SCHEMA = pa.schema([("hash", pa.uint64()), ("records", pa.int64()), ("videos", pa.int64()),
                               ("question", pa.string())])
_PROVENANCE_MODELS = (("caption", "caption_model"), ("retrieve", "retrieval_model"),
                      ("localize", "embedding_model"), ("verify", "verify_model"))


def questions_path(run_dir: Path, shard: Path) -> Path:
    return shard_quality_path(run_dir, shard).with_suffix(".questions.parquet")


def _questions_key(figures: ShardQuality) -> str:
    return f"{figures.file_size}:{figures.file_mtime_ns}:{figures.content_hash or ''}"


def compute_shard_run_pass(path: Path) -> tuple[ShardRunPass, pa.Table]:
    """One shard's part of the run pass: provenance figures, and its distinct questions (hash, records,
    videos, the first wording) as a table. A video is in one shard, so per-shard video counts add up."""
    counts: Counter[str] = Counter()
    videos_of: dict[str, set[str]] = defaultdict(set)
    shown: dict[str, str] = {}
    run_ids: Counter[str] = Counter()
    versions: set[str] = set()
    models: dict[str, set[str]] = defaultdict(set)
    earliest = None
    for batch in iter_shard_batches(path, ["video_id", "question", "provenance"]):
        prov = batch.column("provenance")
        value = pc.min(struct_field(prov, "created_at")).as_py()
        if value is not None and (earliest is None or value < earliest):
            earliest = value
        run_ids.update(struct_field(prov, "run_id").drop_null().to_pylist())
        versions.update(pc.unique(struct_field(prov, "pipeline_version").drop_null()).to_pylist())
        for stage, name in _PROVENANCE_MODELS:
            models[stage].update(pc.unique(struct_field(prov, name).drop_null()).to_pylist())
        for video_id, question in zip(batch.column("video_id").to_pylist(), batch.column("question").to_pylist()):
            key = normalise_question(question)
            counts[key] += 1
            videos_of[key].add(video_id)
            shown.setdefault(key, question)
    keys = list(counts)
    table = pa.Table.from_arrays([
        pa.array([question_hash(k) for k in keys], pa.uint64()), pa.array([counts[k] for k in keys], pa.int64()),
        pa.array([len(videos_of[k]) for k in keys], pa.int64()), pa.array([shown[k] for k in keys], pa.string())],
        schema=_QUESTIONS_SCHEMA)
    part = ShardRunPass(created_at=earliest, run_ids=dict(sorted(run_ids.items())), pipeline_versions=sorted(versions),
                        models={stage: sorted(ids) for stage, ids in models.items() if ids})
    return part, table


def _stored_questions(path: Path, key: str) -> pa.Table | None:
    if not path.is_file():
        return None
    try:
        handle = pq.ParquetFile(path)
        if (handle.schema_arrow.metadata or {}).get(b"key", b"").decode() != key:
            return None
        return handle.read(columns=["hash", "records", "videos"])
    except (OSError, ValueError, pa.ArrowException):
        return None


def _agreement_pass(paths: Sequence[Path], agreement: AgreementAccumulator) -> None:
    columns = ["video_id", "qa_id", "error", "frame_num", "clip_num", "instruction_type"]
    for path in paths:
        for batch in iter_shard_batches(path, columns):
            ok = batch.column("error").is_null().to_pylist()
            for video_id, qa_id, good, frames, clips, kind in zip(
                batch.column("video_id").to_pylist(), batch.column("qa_id").to_pylist(), ok,
                batch.column("frame_num").to_pylist(), batch.column("clip_num").to_pylist(),
                batch.column("instruction_type").to_pylist(),
            ):
                agreement.add(video_id, qa_id, good, frames, clips, kind)


def _run_pass(run_dir: Path, paths: Sequence[Path], parts: Sequence[ShardQuality], *, write: bool) -> dict:
    """The run-level figures that do not merge from shards, from each shard's cached part (`run_pass` in its
    figures, its questions file); only shards without a current part are read (provenance and questions)."""
    earliest = None
    run_ids: Counter[str] = Counter()
    versions: set[str] = set()
    models: dict[str, set[str]] = defaultdict(set)
    hashes, records, videos, owner = [], [], [], []
    for index, (shard, figures) in enumerate(zip(paths, parts)):
        key = _questions_key(figures)
        target = questions_path(run_dir, shard)
        table = _stored_questions(target, key) if figures.run_pass and figures.run_pass.questions_key == key else None
        if table is None:
            part, full = compute_shard_run_pass(shard)
            part.questions_key = key
            figures.run_pass = part
            if write:
                try:
                    with atomic_path(target) as tmp:
                        pq.write_table(full.replace_schema_metadata({"key": key}), tmp, compression="zstd")
                    atomic_write_text(shard_quality_path(run_dir, shard), figures.model_dump_json(indent=1))
                except OSError:
                    pass  # a read-only run folder: computed again next time
            table = full
        part = figures.run_pass
        if part.created_at is not None and (earliest is None or part.created_at < earliest):
            earliest = part.created_at
        run_ids.update(part.run_ids)
        versions.update(part.pipeline_versions)
        for stage, ids in part.models.items():
            models[stage].update(ids)
        hashes.append(table.column("hash").combine_chunks().to_numpy(zero_copy_only=False))
        records.append(table.column("records").combine_chunks().to_numpy(zero_copy_only=False))
        videos.append(table.column("videos").combine_chunks().to_numpy(zero_copy_only=False))
        owner.append(np.full(table.num_rows, index, dtype=np.int32))
    repeated = RepeatedQuestions()
    if hashes:
        h, n, v, o = (np.concatenate(x) for x in (hashes, records, videos, owner))
        order = np.argsort(h, kind="stable")  # stable: a question's first shard (in path order) comes first
        h, n, v, o = h[order], n[order], v[order], o[order]
        starts = np.flatnonzero(np.r_[True, h[1:] != h[:-1]])
        total_n, total_v, first = np.add.reduceat(n, starts), np.add.reduceat(v, starts), o[starts]
        total = int(n.sum())
        repeated = RepeatedQuestions(distinct=len(starts), records=total,
                                     distinct_share=round(len(starts) / total, 6) if total else 0.0)
        many = np.flatnonzero(total_v > 1)
        if len(many):
            # candidates: the top by (records, videos), ties at the cut included; wordings read for these only
            ranked = many[np.lexsort((-total_v[many], -total_n[many]))]
            cut = ranked[min(TOP_REPEATED, len(ranked)) - 1]
            keep = ranked[(total_n[ranked] > total_n[cut]) | ((total_n[ranked] == total_n[cut]) & (total_v[ranked] >= total_v[cut]))]
            wanted: dict[int, set[int]] = defaultdict(set)
            for i in keep:
                wanted[int(first[i])].add(int(h[starts[i]]))
            text: dict[int, str] = {}
            for shard_index, want in wanted.items():
                table = pq.read_table(questions_path(run_dir, paths[shard_index]), columns=["hash", "question"]) \
                    if questions_path(run_dir, paths[shard_index]).is_file() else compute_shard_run_pass(paths[shard_index])[1]
                for qh, question in zip(table.column("hash").to_pylist(), table.column("question").to_pylist()):
                    if qh in want:
                        text.setdefault(qh, question)
            rows = sorted(((int(total_n[i]), int(total_v[i]), normalise_question(text[int(h[starts[i]])]),
                            text[int(h[starts[i]])]) for i in keep), reverse=True)
            repeated.top = [RepeatedQuestion(question=q, records=a, videos=b) for a, b, _, q in rows[:TOP_REPEATED]]
    return {
        "created_at": earliest,
        "run_ids": sorted(run_ids),
        "pipeline_versions": sorted(versions),
        "models": {stage: sorted(models[stage]) for stage, _ in _PROVENANCE_MODELS if models.get(stage)},
        "repeated_questions": repeated,
    }


def _run_id_from_summary(run_dir: Path) -> str | None:
    summary = run_dir / "summary.json"
    try:
        return json.loads(summary.read_text()).get("run_id") if summary.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None


def compute_run_quality(
    run_dir: str | Path,
    manifest: str | Path | Sequence[ManifestRow] | None = None,
    previous_runs: Sequence[str | Path | RunQuality] = (),
    *,
    write: bool = True,
) -> RunQuality:
    """A run's quality figures, written to `<run>/quality/run.json` (and one file per shard).

    `manifest`: a manifest file or rows with ground truth for the agreement figures; None looks for
    `<run>/manifest.jsonl` or the synthetic set's manifest beside the records' video folder.
    `previous_runs`: run folders (their stored `quality/run.json`, computed when missing) or RunQuality
    objects, the drift baseline (pooled). Stored shard figures are reused while a shard file is unchanged
    (size, mtime and manifest content hash), so rerunning after new shards only reads the new ones.
    """
    run_dir = Path(run_dir)
    paths = shard_paths(run_dir)
    if not paths:
        raise SchemaError(f"{run_dir}: no parquet shards found")
    parts = shard_figures(run_dir, write=write)
    rows, manifest_name = _resolve_manifest(manifest, run_dir, paths)
    agreement = AgreementAccumulator(rows) if rows else None
    if agreement is not None:  # ground truth (synthetic sets): read the columns it compares
        _agreement_pass(paths, agreement)
    run_level = _run_pass(run_dir, paths, parts, write=write)
    merged = merge_figures(parts)
    run_ids = run_level["run_ids"]
    quality = RunQuality(
        run_dir=str(run_dir),
        run_id=_run_id_from_summary(run_dir) or (run_ids[0] if len(run_ids) == 1 else None),
        shards=[ShardRef(shard=p.shard, records=p.records, errors=p.errors, error_rate=p.error_rate, videos=p.videos,
                         content_hash=p.content_hash, errors_by_stage={k: v.errors for k, v in p.errors_by_stage.items()},
                         errors_by_class=dict(p.errors_by_class),
                         instruction_types=dict(p.instruction_types)) for p in parts],
        agreement=agreement.result() if agreement else None,
        ground_truth_manifest=manifest_name,
        **run_level,
        **merged,
    )
    baseline = [_as_run_quality(p) for p in previous_runs]
    quality.drift = drift_report(quality, [b for b in baseline if b is not None])
    if write:
        atomic_write_text(quality_dir(run_dir) / RUN_FILE, quality.model_dump_json(indent=1))
    return quality


def _as_run_quality(run: str | Path | RunQuality) -> RunQuality | None:
    if isinstance(run, RunQuality):
        return run
    stored = load_run_quality(run)
    if stored is not None:
        return stored
    try:
        return compute_run_quality(run, previous_runs=())
    except SchemaError:
        return None


def shard_figures(run_dir: str | Path, *, write: bool = True) -> list[ShardQuality]:
    """Every shard's figures (stored ones reused, missing or stale ones computed and stored)."""
    return figures_of_shards(run_dir, shard_paths(Path(run_dir)), write=write)


def figures_of_shards(run_dir: str | Path, shards: Sequence[Path], *, write: bool = True) -> list[ShardQuality]:
    """The figures of some shard files of a run folder, in the order given (stored ones reused while the
    shard is unchanged, missing or stale ones computed and stored in `<run>/quality/`)."""
    run_dir = Path(run_dir)
    out = []
    for shard in shards:
        target = shard_quality_path(run_dir, shard)
        figures = _load_shard_quality(target, shard)
        if figures is None:
            figures = compute_shard_quality(shard, shard_name=shard.relative_to(shard_folder(run_dir)).as_posix())
            if write:
                atomic_write_text(target, figures.model_dump_json(indent=1))
        out.append(figures)
    return out


def agreement_of_shards(shards: Sequence[Path], manifest: Iterable[ManifestRow]) -> dict[str, Agreement]:
    """Agreement with the ground truth of `manifest` of the good records in some shard files, read
    column-wise (`ground_truth_agreement` over the same records gives the same figures)."""
    agreement = AgreementAccumulator(manifest)
    _agreement_pass(shards, agreement)
    return agreement.result()


def shard_drift(run_dir: str | Path, new_shards: Sequence[str | Path]) -> DriftReport | None:
    """Drift of some shards of a folder (e.g. the ones an annotate DAG run just added) against all the
    other shards of the same folder; None when either side is empty."""
    run_dir = Path(run_dir)
    wanted = {Path(s).name for s in new_shards}
    parts = shard_figures(run_dir)
    new = [p for p in parts if Path(p.shard).name in wanted]
    old = [p for p in parts if Path(p.shard).name not in wanted]
    if not new or not old:
        return None
    return drift_report(QualityFigures(**merge_figures(new)), old)
