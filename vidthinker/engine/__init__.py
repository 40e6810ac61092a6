"""The engine: schedules a run's shards, dispatches them `local` (in this process) or on `ray` (a pool of Ray
actors), and merges the run summary. It sits above the worker layer (`vidthinker.worker`: one shard).

* `run_annotation` is `vidthinker annotate`: schedule shards (resuming what `out_dir` holds), run them,
  write `out_dir/summary.json` (`write_summary`).
* `run_shards` runs scheduled shards. Both engines run the same `ShardAnnotator.annotate_shard`
  (`vidthinker.worker.shard`) on the same shard and write the same files; they differ only in where and
  how many at once::

    run_shards(specs, rows, out_dir, settings, engine="local" | "ray", ray_address=None,
               on_shard_done=None, on_video_done=None) -> RunSummary

* What a shard is (todo / finished / stale / failed) is decided by `vidthinker.shards.shard_state` alone.
  Finished shards (made with the run's settings, same annotation fingerprint, `vidthinker.fingerprint`,
  for the same rows, no transient errors) are skipped and reported, never rewritten. Failed shards and
  shards whose rows changed (stale by content) are redone. A shard made with other settings (stale)
  stops the run with `StaleShardsError` before any shard is annotated, unless `engine.redo_stale` is set:
  then it is annotated again and overwritten. A shard to redo that holds videos the rows leave out is
  skipped as it is (it cannot be annotated again without them).
* A shard whose transient-error share exceeds `annotate.max_transient_error_share`, or whose endpoint
  went down, is reported failed (status "failed", with its summary; its records in `shards/_failed/`).
* `local`: one `ShardAnnotator` for the whole run (models opened once), shards one after another.
* `ray`: `engine.workers` actors (`ShardWorker`, `engine.cpus_per_worker` CPUs each), each opening the
  stage models once; the driver hands each idle actor the next shard and streams per-video progress back.
  Embedded local Ray by default; a cluster with `ray_address` / `engine.ray_address` / `RAY_ADDRESS`.
  A shard whose worker dies is handed out again (at most `engine.max_shard_attempts` tries); its model
  calls are replayed from the request cache.

`on_shard_done(ShardResult)` is called once per shard (skipped ones too); `on_video_done(row, records)`
once per annotated video, in the calling thread.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from vidthinker.config import Settings
from vidthinker.schema import ManifestRow
from vidthinker.shards import ShardManifest, ShardSpec, StaleShardsError, row_identities, shard_state
from vidthinker.worker.shard import VideoCallback
from vidthinker.worker.summary import RunSummary, merge_summaries

__all__ = ["Engine", "EngineUnavailable", "ShardResult", "run_annotation", "run_shards", "write_summary"]

Engine = Literal["local", "ray"]


class ShardResult(BaseModel):
    """What happened to one shard of a run."""

    shard_id: str
    status: Literal["written", "skipped", "failed"]
    videos: int
    manifest: ShardManifest | None = None
    summary: RunSummary | None = None
    error: str | None = None
    worker: str | None = None
    attempts: int = 0
    transient: bool = False  # failed for a transient reason (endpoint down, transient errors): a rerun redoes it


def result_of(spec: ShardSpec, summary: RunSummary, worker: str | None, attempts: int) -> ShardResult:
    """The ShardResult of a shard `ShardAnnotator.annotate_shard` returned: written, or failed transiently."""
    manifest = summary.shards[0]
    if manifest.state == "failed":
        return ShardResult(shard_id=spec.shard_id, status="failed", videos=len(spec.video_ids), attempts=attempts,
                           manifest=manifest, summary=summary, worker=worker, error=manifest.failure, transient=True)
    return ShardResult(shard_id=spec.shard_id, status="written", videos=len(spec.video_ids), attempts=attempts,
                       manifest=manifest, summary=summary, worker=worker)


ShardCallback = Callable[[ShardResult], None]


class EngineUnavailable(RuntimeError):
    """The engine cannot start here: Ray not installed, or no Ray cluster at the address given."""


def local_worker_label() -> str:
    return f"local {socket.gethostname()} pid {os.getpid()}"


def rows_for(
    specs: Sequence[ShardSpec], rows: Sequence[ManifestRow], *, to_run: Sequence[ShardSpec] | None = None
) -> dict[str, ManifestRow]:
    """video_id → row; a video in two specs is an error, and so is a video of a shard `to_run` (default:
    every spec) that has no row. Shards that are only skipped need no rows: a finished shard may hold
    videos the current rows leave out (a rerun with a smaller `--limit`)."""
    by_id = {row.video_id: row for row in rows}
    seen: set[str] = set()
    for spec in specs:
        twice = seen.intersection(spec.video_ids)
        if twice:
            raise ValueError(f"shard {spec.shard_id}: video(s) {sorted(twice)[:5]} are in another shard too")
        seen.update(spec.video_ids)
    for spec in specs if to_run is None else to_run:
        missing = [v for v in spec.video_ids if v not in by_id]
        if missing:
            raise ValueError(f"shard {spec.shard_id}: video(s) {missing[:5]} are not in the rows given")
    return by_id


def run_shards(
    specs: Sequence[ShardSpec],
    rows: Sequence[ManifestRow],
    out_dir: str | Path,
    settings: Settings,
    *,
    engine: Engine | None = None,
    ray_address: str | None = None,
    on_shard_done: ShardCallback | None = None,
    on_video_done: VideoCallback | None = None,
    run_id: str | None = None,
    retry_errors: bool = False,
) -> RunSummary:
    """Annotate every unfinished shard of `specs` into `out_dir/shards/` and return one summary.

    `engine` defaults to `settings.engine.name`. Raises ModelUnavailable (before any shard is written)
    when a model endpoint cannot be used; a shard that fails otherwise is reported in `failed_shards`.
    Raises StaleShardsError (before any shard is written) when a spec's shard is finished but was made
    with other settings, unless `settings.engine.redo_stale`.
    """
    from vidthinker.fingerprint import annotation_fingerprint

    engine = engine or settings.engine.name
    if engine not in ("local", "ray"):
        raise ValueError(f"unknown engine {engine!r} (local | ray)")
    out_dir = Path(os.path.abspath(out_dir))
    run_id = run_id or uuid.uuid4().hex[:12]
    started = time.perf_counter()
    fingerprint = annotation_fingerprint(settings)
    identities = row_identities(rows)
    todo: list[ShardSpec] = []
    skipped: list[ShardManifest] = []
    stale: list[ShardManifest] = []
    for spec in specs:
        state = shard_state(out_dir, spec, fingerprint=fingerprint, identities=identities, retry_errors=retry_errors)
        if state.state == "stale" and state.reason == "settings":
            stale.append(state.manifest)
            todo.append(spec)
        elif state.redo and state.state != "todo" and state.manifest is not None and state.manifest.state == "finished" \
                and not set(spec.video_ids) <= identities.keys():
            skipped.append(state.manifest)  # cannot redo without all its rows (a rerun with a smaller --limit)
        elif state.redo:
            todo.append(spec)
        else:
            skipped.append(state.manifest)
    if stale and not settings.engine.redo_stale:
        raise StaleShardsError(out_dir, stale, fingerprint)
    by_id = rows_for(specs, rows, to_run=todo)
    if todo:  # fail before paying (every caller: CLI, Airflow task, API): OutputPathError names the folder
        from vidthinker.preflight import check_output_dirs
        from vidthinker.worker.shard import default_cache_dir

        check_output_dirs(out_dir, default_cache_dir(settings, out_dir), len(todo))
    if on_shard_done is not None:
        for manifest in skipped:
            on_shard_done(ShardResult(shard_id=manifest.shard_id, status="skipped", videos=len(manifest.video_ids),
                                      manifest=manifest))
    results: list[ShardResult] = []
    workers = 0
    if todo:
        if engine == "local":
            from vidthinker.engine.local import run_local

            results = run_local(todo, by_id, out_dir, settings, run_id=run_id, on_shard_done=on_shard_done,
                                on_video_done=on_video_done, identities=identities)
            workers = 1
        else:
            try:
                from vidthinker.engine.ray_engine import run_ray
            except ModuleNotFoundError as error:
                raise EngineUnavailable(f"engine 'ray' needs Ray ({error}); install it: pip install 'vidthinker[ray]'") from None
            try:
                results, workers = run_ray(todo, by_id, out_dir, settings, run_id=run_id, address=ray_address,
                                           on_shard_done=on_shard_done, on_video_done=on_video_done, identities=identities)
            except ConnectionError as error:
                raise EngineUnavailable(str(error)) from None
    written = [r for r in results if r.status == "written"]
    return merge_summaries(
        run_id, [r.summary for r in results if r.summary is not None], skipped, time.perf_counter() - started,
        engine=engine, workers=workers,
        failed={r.shard_id: r.error or "failed" for r in results if r.status == "failed"},
        shard_workers={r.shard_id: r.worker or "" for r in written}, settings_fingerprint=fingerprint,
        transient_failed=[r.shard_id for r in results if r.status == "failed" and r.transient],
    )


def run_annotation(
    rows: Sequence[ManifestRow],
    out_dir: Path,
    settings: Settings,
    *,
    on_video_done: VideoCallback | None = None,
    on_shard_done: ShardCallback | None = None,
    engine: Engine | None = None,
    ray_address: str | None = None,
    retry_errors: bool = False,
    command: str = "",
) -> RunSummary:
    """Annotate rows into `out_dir/shards/` (scheduled with `schedule_run`: finished shards there made with these
    settings are kept and skipped) on the configured engine (`engine.name`, local by default); summary in
    `out_dir/summary.json`. Finished shards made with other settings (stale) raise StaleShardsError before
    anything is written, or with `engine.redo_stale` are annotated again and overwritten. Shards that
    failed, hold transient errors or whose rows changed are redone; with `retry_errors` so are shards
    holding model-reply errors.

    The run holds `out_dir`'s writer lock (`RunFolderLock`, its holder named by `command`) throughout:
    a second run into the folder raises FolderLocked at once."""
    from vidthinker.fingerprint import annotation_fingerprint
    from vidthinker.preflight import check_output_dirs, shards_to_write
    from vidthinker.shards import RunFolderLock, schedule_run
    from vidthinker.worker.shard import default_cache_dir

    out_dir = Path(os.path.abspath(out_dir))
    # fail before paying: out/, out/shards and the cache are writable directories with room (OutputPathError)
    check_output_dirs(out_dir, default_cache_dir(settings, out_dir), shards_to_write(len(rows), settings.engine.shard_size))
    with RunFolderLock(out_dir, command=command or "vidthinker annotate"):
        specs = schedule_run(rows, out_dir, settings.engine.shard_size, fingerprint=annotation_fingerprint(settings),
                             redo_stale=settings.engine.redo_stale, prefix=settings.engine.shard_prefix)
        summary = run_shards(specs, rows, out_dir, settings, engine=engine, ray_address=ray_address,
                             on_shard_done=on_shard_done, on_video_done=on_video_done, retry_errors=retry_errors)
        _write_summary_or_report(summary, out_dir)
    return summary


def write_summary(summary: RunSummary, out_dir: Path) -> Path:
    """`out_dir/summary.json`, written atomically."""
    from vidthinker.io import atomic_write_text

    return atomic_write_text(Path(out_dir) / "summary.json", json.dumps(summary.model_dump(mode="json"), indent=1) + "\n")


def _write_summary_or_report(summary: RunSummary, out_dir: Path) -> None:
    """Write summary.json; a full or read-only disk is one line, not a traceback. When shards failed
    (the usual companion of a full disk) that is what the run reports; otherwise OutputPathError."""
    from vidthinker.preflight import OutputPathError, os_reason

    path = Path(out_dir) / "summary.json"
    try:
        write_summary(summary, out_dir)
    except OSError as error:
        if not summary.failed_shards:
            raise OutputPathError("run summary", path, os_reason(error)) from None
        logging.getLogger(__name__).error("run summary %s not written: %s (the failed shards are the run's result)",
                                          path, os_reason(error))
