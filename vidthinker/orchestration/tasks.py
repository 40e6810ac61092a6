"""The annotate DAG's tasks as plain functions (no Airflow import): each takes JSON-able inputs, keeps
its state in files beside the shards, and returns a small JSON-able dict for XCom.

Over 500 lines on purpose: one function per task of the one DAG, sharing the run folder's helpers.

Every step is idempotent under retries and reruns of the same DAG run: the pending set and the shard
schedule of a run are written once and reused (`<out_dir>/airflow/runs/<run_key>/`), a finished shard is
not run again, and updating the ledger with the same shards changes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vidthinker.config import none_if_word
from vidthinker.orchestration.ledger import ShardEntry, VideoEntry, load_ledger, locked_ledger, qa_hash
from vidthinker.redact import redacted_io

log = logging.getLogger(__name__)

RUNS_DIR = ("airflow", "runs")


# --------------------------------------------------------------------------- inputs


class RunParams(BaseModel):
    """The DAG params of one run (conf of a triggered run overrides the settings' defaults)."""

    model_config = ConfigDict(extra="ignore")

    manifest: Path
    out_dir: Path
    engine: Literal["ray", "local"] = "ray"
    ray_address: str | None = None
    shard_size: int = Field(64, ge=1)
    oracle: bool | None = None
    limit: int | None = Field(None, ge=1)
    config: Path | None = None

    @field_validator("manifest", "out_dir", "config", mode="before")
    @classmethod
    def _absolute(cls, value: Any) -> Any:
        if value in (None, ""):
            return None
        return Path(value).expanduser().resolve()

    @field_validator("ray_address", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return none_if_word(value)


def run_params(params: dict[str, Any]) -> RunParams:
    if not params.get("manifest"):
        raise ValueError("no manifest: set the DAG param `manifest` (or VIDTHINKER_AIRFLOW__MANIFEST for scheduled runs)")
    return RunParams.model_validate(params)


def run_key(run_id: str) -> str:
    """A short, file-name-safe, deterministic id of a DAG run; it prefixes the run's shard ids."""
    stamp = re.sub(r"[^0-9T]", "", run_id.split("__")[-1])[:15] or "run"
    return f"{stamp}-{hashlib.sha1(run_id.encode()).hexdigest()[:6]}"


def run_dir(out_dir: Path, key: str) -> Path:
    return Path(out_dir).joinpath(*RUNS_DIR, key)


def _write_json(path: Path, data: Any) -> None:
    from vidthinker.io import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=1, default=str) + "\n", fsync=True)


def _read_pending(directory: Path):
    from vidthinker.formats import read_manifest

    path = directory / "pending.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no pending set (did `discover` run for this DAG run?)")
    return read_manifest(path) if path.stat().st_size else []


def _read_schedule(directory: Path):
    from vidthinker.shards import ShardSpec

    path = directory / "plan.json"  # the file's name predates "schedule"; kept so existing run folders resume
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no shard schedule (did `plan_shards` run for this DAG run?)")
    return [ShardSpec.model_validate(item) for item in json.loads(path.read_text())["shards"]]


# --------------------------------------------------------------------------- settings


def settings_for_run(params: RunParams, model_overrides: dict[str, Any] | None = None):
    """The pipeline settings in force (config file, VIDTHINKER_* variables), plus the run's params and
    the model endpoint from the Airflow connection."""
    from vidthinker.config import load_settings, with_overrides

    settings = load_settings(params.config)
    overrides: dict[str, Any] = {}
    if model_overrides:
        overrides["models"] = dict(model_overrides)
    if params.oracle is not None:
        overrides["annotate"] = {"oracle_captions": params.oracle}
    return with_overrides(settings, overrides) if overrides else settings


# --------------------------------------------------------------------------- discover


@redacted_io  # XCom and task errors leave the process: vidthinker.redact
def discover(params: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Manifest rows not yet in the ledger → `<run>/pending.jsonl` (sticky: a retry reuses it)."""
    from vidthinker.formats import read_manifest, write_manifest

    p = run_params(params)
    key = run_key(run_id)
    directory = run_dir(p.out_dir, key)
    info_path = directory / "discover.json"
    if info_path.is_file() and (directory / "pending.jsonl").is_file():
        info = json.loads(info_path.read_text())
        log.info("run %s: reusing its pending set (%d videos)", key, info["pending"])
        return info
    rows = read_manifest(p.manifest)
    recovered = reconcile(p.out_dir, rows)
    pending, done, changed = load_ledger(p.out_dir).split(rows)
    if p.limit is not None:
        pending = pending[: p.limit]
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / ".pending.jsonl.tmp"
    write_manifest(pending, tmp) if pending else tmp.write_text("")
    tmp.replace(directory / "pending.jsonl")
    info = {
        "run_key": key,
        "run_id": run_id,
        "manifest": str(p.manifest),
        "out_dir": str(p.out_dir),
        "total": len(rows),
        "pending": len(pending),
        "questions": sum(len(r.qa) for r in pending),
        "done": len(done),
        "changed": len(changed),
        "changed_examples": [r.video_id for r in changed[:20]],
        "recovered_shards": recovered,
    }
    _write_json(info_path, info)
    if changed:
        log.warning("%d manifest rows changed since they were annotated (not re-annotated), e.g. %s",
                    len(changed), info["changed_examples"][:5])
    log.info("run %s: %d videos pending, %d already annotated, of %d", key, len(pending), len(done), len(rows))
    return info


def reconcile(out_dir: Path, rows) -> list[str]:
    """Put finished shards the ledger does not know into it (a crash between a shard and the ledger
    task, or shards written by `vidthinker annotate` into the same folder), after validating them
    against the manifest. A shard with a video the ledger already holds elsewhere is left out (logged)."""
    from vidthinker.shards import ShardSpec, finished_shards

    known = load_ledger(out_dir)
    by_id = {r.video_id: r for r in rows}
    recovered = []
    for manifest in finished_shards(out_dir, fingerprint=None):  # any settings: `schedule_shards` checks them
        if manifest.shard_id in known.shards:
            continue
        spec = ShardSpec(shard_id=manifest.shard_id, video_ids=manifest.video_ids)
        if any(v in known.videos for v in spec.video_ids):
            log.error("shard %s holds videos the ledger has in other shards: left out (duplicate records?)", spec.shard_id)
            continue
        if not all(v in by_id for v in spec.video_ids):
            log.warning("shard %s holds videos not in this manifest: left out of the ledger", spec.shard_id)
            continue
        check = validate_shard(out_dir, spec, by_id)
        if check["status"] != "ok":
            log.warning("shard %s not recovered: %s", spec.shard_id, check["problems"])
            continue
        if _record_shards(out_dir, "recovered", [(spec, check)], by_id)["added_shards"]:
            recovered.append(spec.shard_id)
            log.warning("recovered finished shard %s into the ledger", spec.shard_id)
    return recovered


# --------------------------------------------------------------------------- schedule


@redacted_io  # XCom and task errors leave the process: vidthinker.redact
def schedule_shards(params: dict[str, Any], run_id: str, endpoint=None) -> list[dict[str, Any]]:
    """Pending rows → shard specs in `<run>/plan.json` (deterministic, and sticky per run).

    Fails first with `StaleShardsError` when `out_dir` holds finished shards made with other annotation
    settings than this run's (settings in force + the connection's models; `check_settings`)."""
    from vidthinker.shards import assign_shards

    p = run_params(params)
    key = run_key(run_id)
    directory = run_dir(p.out_dir, key)
    check_settings(p, endpoint)
    path = directory / "plan.json"
    if path.is_file():
        specs = _read_schedule(directory)
    else:
        specs = assign_shards(_read_pending(directory), p.shard_size, prefix=key)
        _write_json(path, {"run_key": key, "shard_size": p.shard_size,
                           "shards": [s.model_dump(mode="json") for s in specs]})
    log.info("run %s: %d shards of up to %d videos", key, len(specs), p.shard_size)
    return [{"shard_id": s.shard_id, "videos": len(s.video_ids)} for s in specs]


AIRFLOW_STALE_REMEDY = (
    "The DAG appends to one dataset and does not annotate again the videos its ledger holds, so "
    "engine.redo_stale does not apply to it. To go on: point the DAG at a new out_dir for the new settings, or "
    "annotate the stale shards again in place with the same settings: "
    "`vidthinker annotate --manifest <manifest> --out <out_dir> --redo-stale`."
)


def check_settings(p: RunParams, endpoint=None) -> str:
    """The run's annotation fingerprint, after checking that every finished shard in `out_dir` was made
    with it: the DAG adds to one dataset, so a shard made with other settings (or before fingerprints)
    raises `StaleShardsError` rather than being counted as done by the ledger."""
    from vidthinker.fingerprint import annotation_fingerprint
    from vidthinker.orchestration.endpoint import Endpoint
    from vidthinker.shards import StaleShardsError, finished_shards, is_stale

    settings = settings_for_run(p, (endpoint or Endpoint()).overrides)
    current = annotation_fingerprint(settings)
    stale = [m for m in finished_shards(p.out_dir, fingerprint=None) if is_stale(m, current)]
    if stale:
        raise StaleShardsError(p.out_dir, stale, current, remedy=AIRFLOW_STALE_REMEDY)
    return current


# --------------------------------------------------------------------------- run one shard


class ShardFailed(RuntimeError):
    """The engine could not produce the shard (its task should fail and be retried)."""


def run_one_shard(
    spec: Any, rows: Sequence[Any], out_dir: Path, settings: Any, *, engine: str = "ray",
    ray_address: str | None = None, run_id: str | None = None, on_video_done: Callable | None = None,
) -> tuple[Any, float]:
    """Run one shard through `vidthinker.engine.run_shards` (the function the CLI uses); returns (RunSummary,
    engine wall seconds measured around the call). A shard the engine reports failed raises ShardFailed,
    so Airflow retries the task."""
    from vidthinker.engine import run_shards

    started = time.perf_counter()
    summary = run_shards([spec], list(rows), Path(out_dir), settings, engine=engine, ray_address=ray_address,
                         run_id=run_id, on_video_done=on_video_done)
    elapsed = time.perf_counter() - started
    if spec.shard_id in summary.failed_shards:
        raise ShardFailed(f"shard {spec.shard_id}: {summary.failed_shards[spec.shard_id]}")
    return summary, elapsed


@redacted_io  # XCom and task errors leave the process: vidthinker.redact
def run_shard(shard: dict[str, Any], params: dict[str, Any], run_id: str, endpoint=None) -> dict[str, Any]:
    """Annotate one planned shard on the engine (skipped when a finished shard is already there)."""
    from vidthinker.fingerprint import annotation_fingerprint
    from vidthinker.orchestration.endpoint import Endpoint
    from vidthinker.shards import RunFolderLock, row_identities, shard_file, shard_state

    p = run_params(params)
    key = run_key(run_id)
    directory = run_dir(p.out_dir, key)
    spec = next((s for s in _read_schedule(directory) if s.shard_id == shard["shard_id"]), None)
    if spec is None:
        raise KeyError(f"shard {shard['shard_id']!r} is not in the shard schedule of run {key}")
    result_path = directory / "results" / f"{spec.shard_id}.json"
    endpoint = endpoint or Endpoint()
    settings = settings_for_run(p, endpoint.overrides)
    wanted = set(spec.video_ids)
    rows = [r for r in _read_pending(directory) if r.video_id in wanted]
    # shard_state decides (the one place): skipped only when finished with these settings and these rows;
    # a settings-stale one makes run_shards raise StaleShardsError; a failed or content-stale one is redone
    state = shard_state(p.out_dir, spec, fingerprint=annotation_fingerprint(settings), identities=row_identities(rows))
    existing = state.manifest if state.state == "finished" else None
    if existing is not None:
        log.info("shard %s already finished (%d records): nothing to do", spec.shard_id, existing.records)
        result = {"shard_id": spec.shard_id, "skipped": True, "records": existing.records, "ok": existing.ok,
                  "errors": existing.errors, "engine_s": 0.0}
        if result_path.is_file():  # keep the timing of the attempt that did the work
            result = {**json.loads(result_path.read_text()), "skipped": True}
        return result
    from vidthinker.orchestration.progress import ShardProgress, describe_models

    progress = ShardProgress(spec.shard_id, len(rows))  # a line per video, a WARNING summary of failures
    log.info("shard %s: %d videos, engine=%s%s, %s (from %s)", spec.shard_id, len(rows), p.engine,
             f" ray_address={p.ray_address}" if p.ray_address else "", describe_models(settings), endpoint.source)
    # shared: the DAG's shard tasks write the folder together; a `vidthinker annotate` there (exclusive)
    # makes this task fail at once with FolderLocked naming it, and Airflow's retries try again later
    with RunFolderLock(p.out_dir, command=f"airflow shard task {spec.shard_id}", shared=True), \
            endpoint.api_key_in_environment():
        try:
            summary, engine_s = run_one_shard(spec, rows, p.out_dir, settings, engine=p.engine,
                                              ray_address=p.ray_address, run_id=key, on_video_done=progress.video_done)
        finally:
            progress.finish()  # why records failed, also when the shard itself failed
    result = {
        "shard_id": spec.shard_id,
        "skipped": False,
        "path": str(shard_file(p.out_dir, spec.shard_id)),
        "videos": summary.videos,
        "records": summary.records,
        "ok": summary.ok,
        "errors": summary.errors,
        "errors_by_stage": summary.errors_by_stage,
        "errors_by_class": summary.errors_by_class,
        "calls": summary.calls,
        "tokens": summary.tokens,
        "engine": p.engine,
        "engine_s": round(engine_s, 3),
        "pipeline_wall_s": summary.wall_s,
        "finished_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    _write_json(result_path, result)
    log.info("shard %s: %d records (%d errors) in %.1f s on %s", spec.shard_id, summary.records, summary.errors, engine_s,
             summary.shard_workers.get(spec.shard_id) or "this task's process")
    return result


# --------------------------------------------------------------------------- validate


def validate_shard(out_dir: Path, spec, rows_by_id: dict[str, Any]) -> dict[str, Any]:
    """Schema, counts and content of one shard against the manifest rows it was scheduled from."""
    from vidthinker.figures import errors_by_stage
    from vidthinker.schema import SchemaError, VideoITGRecord, read_parquet
    from vidthinker.shards import read_shard_manifest, records_hash, shard_file

    path = shard_file(out_dir, spec.shard_id)
    check: dict[str, Any] = {"shard_id": spec.shard_id, "path": str(path), "status": "ok", "problems": []}
    manifest = read_shard_manifest(path)
    if manifest is None:
        return {**check, "status": "missing", "problems": ["no finished shard (its task failed or never ran)"]}
    try:
        records = read_parquet(path, VideoITGRecord)
    except SchemaError as error:
        return {**check, "status": "invalid", "problems": [f"schema: {error}"]}
    problems = []
    expected = {(vid, qa.qa_id) for vid in spec.video_ids if vid in rows_by_id for qa in rows_by_id[vid].qa}
    got = [(r.video_id, r.qa_id) for r in records]
    if len(got) != len(set(got)):
        problems.append(f"{len(got) - len(set(got))} duplicate (video_id, qa_id) records")
    if set(got) != expected:
        missing, extra = expected - set(got), set(got) - expected
        problems.append(f"records vs manifest: {len(missing)} questions missing, {len(extra)} unexpected "
                        f"(e.g. {sorted(missing or extra)[:3]})")
    if manifest.records != len(records) or manifest.ok != sum(r.ok for r in records):
        problems.append(f"shard manifest says {manifest.records} records/{manifest.ok} ok, file has "
                        f"{len(records)}/{sum(r.ok for r in records)}")
    if manifest.content_hash != records_hash(records):
        problems.append("content hash differs from the shard manifest")
    return {
        **check,
        "status": "invalid" if problems else "ok",
        "problems": problems,
        "videos": len({r.video_id for r in records}),
        "records": len(records),
        "ok": sum(r.ok for r in records),
        "errors": sum(not r.ok for r in records),
        "errors_by_stage": errors_by_stage(records),
        "errors_by_video": dict(Counter(r.video_id for r in records if not r.ok)),  # the ledger's per-video `errors`
        "content_hash": manifest.content_hash,
    }


@redacted_io  # XCom and task errors leave the process: vidthinker.redact
def validate(params: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Check every planned shard of the run (runs whatever happened to the shard tasks)."""
    p = run_params(params)
    key = run_key(run_id)
    directory = run_dir(p.out_dir, key)
    specs = _read_schedule(directory)
    rows = {r.video_id: r for r in _read_pending(directory)}
    checks = [validate_shard(p.out_dir, spec, rows) for spec in specs]
    report = {
        "run_key": key,
        "out_dir": str(p.out_dir),
        "planned": len(specs),
        "valid": [c["shard_id"] for c in checks if c["status"] == "ok"],
        "failed": {c["shard_id"]: f"{c['status']}: {'; '.join(c['problems'])}" for c in checks if c["status"] != "ok"},
        "records": sum(c.get("records", 0) for c in checks if c["status"] == "ok"),
        "ok": sum(c.get("ok", 0) for c in checks if c["status"] == "ok"),
        "errors": sum(c.get("errors", 0) for c in checks if c["status"] == "ok"),
    }
    _write_json(directory / "validation.json", {**report, "shards": checks})
    for shard_id, reason in report["failed"].items():
        log.error("shard %s not usable: %s", shard_id, reason)
    log.info("run %s: %d/%d shards valid, %d records", key, len(report["valid"]), len(specs), report["records"])
    return report


# --------------------------------------------------------------------------- quality


@redacted_io  # XCom and task errors leave the process: vidthinker.redact
def quality(params: dict[str, Any], run_id: str, validation: dict[str, Any]) -> dict[str, Any] | None:
    """Run quality: counts and error rates over the run's valid shards, agreement with the manifest's
    ground truth where it has some, and the whole folder's figures (`vidthinker.quality`), written to
    `<run>/quality.json`. None when the run made no valid shard (nothing to measure).

    The run's figures are the stored per-shard quality figures of exactly its valid shards
    (`quality.figures_of_shards`: computed column-wise once per shard, reused while the shard is
    unchanged) merged by `quality.merge_figures`; no record is read into Python here, so memory does
    not grow with the run. Derived from those figures: `frames_per_record` / `clips_per_record` (mean,
    median, min, max of the good records' frames / clips, from the exact value counts of `frames_per_qa` /
    `clips_per_qa`: the same numbers as before) and `instruction_types` (a good record without a type
    counts as "unknown", as in every quality file; this task used to write "None")."""
    from vidthinker import quality as q
    from vidthinker.shards import shard_file

    if not validation["valid"]:
        return None
    p = run_params(params)
    key = run_key(run_id)
    directory = run_dir(p.out_dir, key)
    rows = _read_pending(directory)
    paths = [shard_file(p.out_dir, shard_id) for shard_id in validation["valid"]]
    figures = q.QualityFigures(**q.merge_figures(q.figures_of_shards(p.out_dir, paths)))
    results = [json.loads(f.read_text()) for f in sorted((directory / "results").glob("*.json"))]
    questions = sum(len(r.qa) for r in rows)
    report: dict[str, Any] = {
        "run_key": key,
        "shards": {"planned": validation["planned"], "valid": len(validation["valid"]), "failed": len(validation["failed"])},
        "videos": figures.videos,  # a video is in one shard: the shards' video counts add up
        "videos_planned": len(rows),
        "questions_planned": questions,
        "records": figures.records,
        "ok": figures.ok,
        "errors": figures.errors,
        "error_rate": round(figures.errors / figures.records, 4) if figures.records else None,
        "coverage": round(figures.ok / questions, 4) if rows else None,
        "errors_by_stage": {stage: e.errors for stage, e in figures.errors_by_stage.items()},
        "frames_per_record": _spread(figures.frames_per_qa),
        "clips_per_record": _spread(figures.clips_per_qa),
        "instruction_types": dict(figures.instruction_types),
        "engine_s": round(sum(r.get("engine_s", 0.0) for r in results), 3),
        "model_calls": sum(r.get("calls", 0) for r in results),
        "tokens": sum(r.get("tokens", 0) for r in results),
    }
    if any(qa.ground_truth for row in rows for qa in row.qa):
        agreement = q.agreement_of_shards(paths, rows)  # column-wise over the same shards
        report["ground_truth"] = {k: v.model_dump() for k, v in agreement.items()}
    try:  # the whole folder's figures (vidthinker.quality), reusing stored per-shard figures
        total = q.compute_run_quality(p.out_dir, manifest=p.manifest)
        report["out_dir_quality"] = str(q.quality_dir(p.out_dir) / q.RUN_FILE)
        report["out_dir_totals"] = {"records": total.records, "errors": total.errors, "error_rate": total.error_rate,
                                    "videos": total.videos, "shards": len(total.shards)}
    except Exception as error:  # noqa: BLE001 - the run's own figures above still stand
        log.warning("vidthinker.quality.compute_run_quality(%s) failed: %s", p.out_dir, error)
        report["out_dir_quality_error"] = f"{type(error).__name__}: {error}"
    _write_json(directory / "quality.json", report)
    summary = {k: report[k] for k in ("run_key", "records", "ok", "errors", "error_rate", "coverage")}
    if "ground_truth" in report and "all" in report["ground_truth"]:
        gt = report["ground_truth"]["all"]
        summary["ground_truth"] = {k: gt[k] for k in ("records", "frame_precision", "frame_recall", "clip_precision",
                                                      "clip_recall", "type_accuracy")}
    summary["path"] = str(directory / "quality.json")
    log.info("run %s quality: %s", key, json.dumps(summary))
    return summary


def _spread(distribution: Any) -> dict[str, float] | None:
    """Mean, median, min and max of an integer `vidthinker.quality.Distribution` (None when empty); the
    median is its p50 (linear interpolation between order statistics, as `statistics.median`)."""
    if not distribution.count:
        return None
    return {"mean": round(distribution.sum / distribution.count, 3), "median": float(distribution.quantiles["p50"]),
            "min": int(distribution.min), "max": int(distribution.max)}


# --------------------------------------------------------------------------- ledger + asset


def _record_shards(out_dir: Path, key: str, shards: list[tuple[Any, dict[str, Any]]], rows: dict[str, Any]) -> dict[str, Any]:
    added_shards, added_videos, conflicts = [], 0, []
    now = dt.datetime.now(dt.UTC)
    with locked_ledger(out_dir) as ledger:
        for spec, check in shards:
            if spec.shard_id in ledger.shards:
                continue
            taken = [v for v in spec.video_ids if v in ledger.videos]
            if taken:
                conflicts.append(f"{spec.shard_id}: {len(taken)} videos already in the ledger (e.g. {taken[:3]})")
                continue
            ledger.shards[spec.shard_id] = ShardEntry(
                run=key, path=str(Path(check["path"]).relative_to(out_dir) if Path(check["path"]).is_relative_to(out_dir) else check["path"]),
                videos=check["videos"], records=check["records"], ok=check["ok"], errors=check["errors"],
                content_hash=check["content_hash"], added_at=now)
            per_video = Counter(vid for vid in spec.video_ids)
            for vid in per_video:
                row = rows[vid]
                ledger.videos[vid] = VideoEntry(shard=spec.shard_id, run=key, fingerprint=qa_hash(row),
                                                records=len(row.qa), errors=check.get("errors_by_video", {}).get(vid, 0))
                added_videos += 1
            added_shards.append(spec.shard_id)
        total = len(ledger.videos)
    for conflict in conflicts:
        log.error("not recorded: %s", conflict)
    return {"added_shards": added_shards, "added_videos": added_videos, "videos_total": total, "conflicts": conflicts}


@redacted_io  # XCom and task errors leave the process: vidthinker.redact
def update_ledger(params: dict[str, Any], run_id: str, validation: dict[str, Any]) -> dict[str, Any]:
    """Record the run's valid shards (and their videos) in the ledger; idempotent."""
    p = run_params(params)
    key = run_key(run_id)
    directory = run_dir(p.out_dir, key)
    checks = {c["shard_id"]: c for c in json.loads((directory / "validation.json").read_text())["shards"]}
    specs = [s for s in _read_schedule(directory) if s.shard_id in set(validation["valid"])]
    rows = {r.video_id: r for r in _read_pending(directory)}
    result = _record_shards(p.out_dir, key, [(s, checks[s.shard_id]) for s in specs], rows)
    log.info("ledger: +%d shards, +%d videos, %d videos in total", len(result["added_shards"]),
             result["added_videos"], result["videos_total"])
    return result


@redacted_io  # XCom and task errors leave the process: vidthinker.redact
def asset_extra(params: dict[str, Any], run_id: str, validation: dict[str, Any]) -> dict[str, Any] | None:
    """What the `vidthinker_shards` asset event says; None when the run made no new valid shard."""
    from vidthinker.shards import shard_file

    if not validation["valid"]:
        return None
    p = run_params(params)
    return {
        "run_key": run_key(run_id),
        "out_dir": str(p.out_dir),
        "shards": [str(shard_file(p.out_dir, s)) for s in validation["valid"]],
        "records": validation["records"],
        "ok": validation["ok"],
        "errors": validation["errors"],
        "ledger": str(p.out_dir / "ledger.json"),
    }


@redacted_io  # XCom and task errors leave the process: vidthinker.redact
def problems(validation: dict[str, Any] | None, ledger: dict[str, Any] | None,
             quality_summary: dict[str, Any] | None = None) -> list[str]:
    """Why the run must end failed (after its good shards were validated, recorded and announced)."""
    found = []
    if quality_summary is None and validation is not None and validation["valid"]:
        found.append("the quality report was not written")
    if validation is None:
        found.append("validation did not run")
    else:
        found += [f"shard {k} {v}" for k, v in validation["failed"].items()]
    if ledger is None:
        found.append("the ledger was not updated")
    elif ledger.get("conflicts"):
        found += ledger["conflicts"]
    return found


