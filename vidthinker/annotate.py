"""Annotating shards: the one function every engine runs on a shard, and the run summary.

* `ShardAnnotator` opens the stage models once (OpenAI-compatible clients and the request cache, or the
  offline llama.cpp server; the image embedder) and then annotates any number of shards with them. The
  local engine holds one for the whole run, each Ray actor holds one for its life.
* `annotate_shard` is the one-shot form (open, annotate one shard, close) for callers with one shard.
* `run_annotation` is `vidthinker annotate` on the local engine: plan shards (resuming what `out_dir`
  holds), run them, write `out_dir/summary.json`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self

from pydantic import BaseModel, Field

from vidthinker.config import Settings
from vidthinker.pipeline import VideoAnnotator, annotate_rows
from vidthinker.schema import ManifestRow, VideoITGRecord
from vidthinker.shards import (
    ShardManifest,
    _atomic_write_bytes,
    error_class_counts,
    error_reason,
    failed_path,
    row_identities,
    write_shard,
)

PIPELINE_ORDER = ("probe", "decode", "caption", "retrieve", "localize")

VideoCallback = Callable[[ManifestRow, list[VideoITGRecord]], None]


class StageStats(BaseModel):
    calls: int = 0
    cached_or_free: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_latency_s: float = 0.0
    wall_s: float = 0.0


class RunSummary(BaseModel):
    """What a run did. Record counts cover every shard of the plan (annotated now or skipped as already
    finished); `stages` (calls, tokens, seconds) covers only the work done in this run."""

    run_id: str
    videos: int
    records: int
    ok: int
    errors: int
    errors_by_stage: dict[str, int] = Field(default_factory=dict)
    errors_by_reason: dict[str, int] = Field(default_factory=dict)
    errors_by_class: dict[str, int] = Field(default_factory=dict, description="error records: transient / permanent")
    transient_by_reason: dict[str, int] = Field(default_factory=dict, description="transient error records by stage:reason")
    repaired: dict[str, int] = Field(
        default_factory=dict,
        description="records that had an error in the shard's previous attempt and are ok now, by that error's class",
    )
    stages: dict[str, StageStats] = Field(default_factory=dict)
    wall_s: float = 0.0
    shards: list[ShardManifest] = Field(default_factory=list, description="manifests of written and skipped shards")
    engine: str = "local"
    workers: int = 1
    skipped_shards: list[str] = Field(default_factory=list, description="already finished, not run again")
    failed_shards: dict[str, str] = Field(default_factory=dict, description="shard id → why it is not finished")
    transient_failures: list[str] = Field(
        default_factory=list,
        description="failed shards whose failure is transient (too many transient errors, endpoint down): a rerun redoes them",
    )
    shard_workers: dict[str, str] = Field(default_factory=dict, description="shard id → the worker that wrote it")
    settings_fingerprint: str = Field("", description="annotation fingerprint of the run's settings (vidthinker.fingerprint)")

    @property
    def calls(self) -> int:
        return sum(s.calls for s in self.stages.values())

    @property
    def tokens(self) -> int:
        return sum(s.prompt_tokens + s.completion_tokens for s in self.stages.values())

    def transient_failure_line(self) -> str | None:
        """One line on the shards that failed transiently (None when none did)."""
        if not self.transient_failures:
            return None
        records = sum(m.errors_by_class.get("transient", 0) for m in self.shards if m.shard_id in set(self.transient_failures))
        top = max(self.transient_by_reason.items(), key=lambda kv: (kv[1], kv[0]))[0] if self.transient_by_reason else None
        reason = top or next(iter(self.failed_shards.get(s, "") for s in self.transient_failures), "")
        return (f"{len(self.transient_failures)} shard(s) failed transiently ({records} record(s) with transient "
                f"errors); top reason: {reason}; rerun the same command to repair them")




def summarise(run_id: str, records: Sequence[VideoITGRecord], wall_s: float, clock: dict[str, float]) -> RunSummary:
    stages: dict[str, StageStats] = defaultdict(StageStats)
    for record in records:
        traces = [("caption", c.trace) for c in record.captions]
        if record.retrieval is not None:
            traces.append(("retrieve", record.retrieval.trace))
        if record.localization is not None:
            traces.append(("localize", record.localization.trace))
        for stage, trace in traces:
            stats = stages[stage]
            stats.calls += trace.usage.calls
            stats.cached_or_free += trace.usage.calls == 0
            stats.prompt_tokens += trace.usage.prompt_tokens
            stats.completion_tokens += trace.usage.completion_tokens
            stats.model_latency_s += trace.latency_s
    for stage, seconds in clock.items():
        stages[stage].wall_s = round(seconds, 3)
    failed = [r for r in records if not r.ok]
    return RunSummary(
        run_id=run_id,
        videos=len({r.video_id for r in records}),
        records=len(records),
        ok=len(records) - len(failed),
        errors=len(failed),
        errors_by_stage=dict(Counter(r.error_stage or "unknown" for r in failed)),
        errors_by_reason=dict(Counter(f"{r.error_stage}:{error_reason(r.error or '')}" for r in failed)),
        errors_by_class=error_class_counts(failed),
        transient_by_reason=transient_reasons(failed),
        stages=_ordered(stages),
        wall_s=round(wall_s, 3),
    )


def transient_reasons(records: Sequence[VideoITGRecord]) -> dict[str, int]:
    return dict(Counter(f"{r.error_stage}:{error_reason(r.error or '')}" for r in records if r.error_class == "transient"))


def previous_errors(shard_path: Path) -> dict[str, str]:
    """Record id → error class of the errors of a shard's previous attempt (its failed attempt in
    `shards/_failed/` when there is one, else the shard file); {} when there is none."""
    import pyarrow.parquet as pq

    for path in (failed_path(shard_path), Path(shard_path)):
        if not path.is_file():
            continue
        try:
            names = pq.read_schema(path).names
            columns = [c for c in ("id", "error", "error_class") if c in names]
            table = pq.read_table(path, columns=columns).to_pylist()
        except (OSError, ValueError):
            continue
        return {row["id"]: row.get("error_class") or "permanent" for row in table if row.get("error") is not None}
    return {}


def _ordered(stages: dict[str, StageStats]) -> dict[str, StageStats]:
    order = {name: i for i, name in enumerate(PIPELINE_ORDER)}
    return dict(sorted(stages.items(), key=lambda item: order.get(item[0], len(order))))


def merge_summaries(
    run_id: str,
    written: Sequence[RunSummary],
    skipped: Sequence[ShardManifest],
    wall_s: float,
    *,
    engine: str = "local",
    workers: int = 1,
    failed: dict[str, str] | None = None,
    shard_workers: dict[str, str] | None = None,
    settings_fingerprint: str = "",
    transient_failed: Sequence[str] = (),
) -> RunSummary:
    """One summary over the shards of a run: those annotated now (their summaries) and those skipped."""
    stages: dict[str, StageStats] = defaultdict(StageStats)
    by_stage: Counter[str] = Counter()
    by_reason: Counter[str] = Counter()
    by_class: Counter[str] = Counter()
    transient: Counter[str] = Counter()
    repaired: Counter[str] = Counter()
    transient_failures: list[str] = []
    manifests: list[ShardManifest] = []
    videos = records = ok = errors = 0
    for summary in written:
        for name, s in summary.stages.items():
            t = stages[name]
            t.calls += s.calls
            t.cached_or_free += s.cached_or_free
            t.prompt_tokens += s.prompt_tokens
            t.completion_tokens += s.completion_tokens
            t.model_latency_s = round(t.model_latency_s + s.model_latency_s, 3)
            t.wall_s = round(t.wall_s + s.wall_s, 3)
        by_stage.update(summary.errors_by_stage)
        by_reason.update(summary.errors_by_reason)
        by_class.update(summary.errors_by_class)
        transient.update(summary.transient_by_reason)
        repaired.update(summary.repaired)
        transient_failures += summary.transient_failures
        videos, records, ok, errors = videos + summary.videos, records + summary.records, ok + summary.ok, errors + summary.errors
        manifests.extend(summary.shards)
    for manifest in skipped:
        by_stage.update(manifest.errors_by_stage)
        by_reason.update(manifest.errors_by_reason)
        by_class.update(manifest.errors_by_class)
        videos, records, ok, errors = videos + manifest.videos, records + manifest.records, ok + manifest.ok, errors + manifest.errors
        manifests.append(manifest)
    return RunSummary(
        run_id=run_id, videos=videos, records=records, ok=ok, errors=errors,
        errors_by_stage=dict(by_stage), errors_by_reason=dict(by_reason), errors_by_class=dict(by_class),
        transient_by_reason=dict(transient), repaired=dict(repaired), stages=_ordered(stages),
        wall_s=round(wall_s, 3), shards=manifests, engine=engine, workers=workers,
        skipped_shards=[m.shard_id for m in skipped], failed_shards=dict(failed or {}),
        transient_failures=sorted(set(transient_failures) | set(transient_failed or ())),
        shard_workers=dict(shard_workers or {}), settings_fingerprint=settings_fingerprint,
    )


class ShardAnnotator:
    """The stage models of one worker, opened once, and the shards annotated with them.

    `async with ShardAnnotator(settings, cache_dir) as worker: await worker.annotate(...)` — models are
    checked on entry (an unreachable endpoint raises ModelUnavailable before any video is touched) and
    closed on exit; the llama.cpp server (offline backend) and the embedder start once per instance.
    """

    def __init__(self, settings: Settings, cache_dir: Path):
        self.settings = settings
        self.cache_dir = Path(cache_dir)
        self.models = None
        self._stack: contextlib.AsyncExitStack | None = None

    async def __aenter__(self) -> Self:
        from vidthinker.backends import open_stage_models
        from vidthinker.serving import request_shapes

        a = self.settings.annotate
        stack = contextlib.AsyncExitStack()
        try:
            self.models = await stack.enter_async_context(open_stage_models(
                self.settings.models, self.cache_dir, need_captioner=not a.oracle_captions, need_verifier=a.verify_frames,
                shapes=request_shapes(self.settings, qa=False),  # start-up check: the served context fits them
            ))
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(self, *exc: object) -> None:
        stack, self._stack = self._stack, None
        self.models = None
        if stack is not None:
            await stack.aclose()

    async def annotate(
        self,
        rows: Sequence[ManifestRow],
        shard_path: Path,
        *,
        run_id: str,
        shard_id: str | None = None,
        on_video_done: VideoCallback | None = None,
        identities: dict[str, str] | None = None,
    ) -> RunSummary:
        """Annotate rows into one shard file (atomic; the manifest names exactly these rows' videos and
        their `identities`, default: `row_identities(rows)` now).

        The shard fails (written to `shards/_failed/`, `state: failed`, named in the summary's
        `failed_shards` and `transient_failures`) when the share of its records with transient errors
        exceeds `annotate.max_transient_error_share`, or when the endpoint went down (`EndpointDown`):
        then no further video is started, and the videos not started get no records."""
        if self.models is None:
            raise RuntimeError("ShardAnnotator is not open: use `async with`")
        from vidthinker.fingerprint import annotation_fingerprint

        started = time.perf_counter()
        fingerprint = annotation_fingerprint(self.settings)  # loads the prompts as VideoAnnotator does, just before it
        identities = identities if identities is not None else await asyncio.to_thread(row_identities, rows)
        previous = await asyncio.to_thread(previous_errors, Path(shard_path))
        annotator = VideoAnnotator(self.models, self.settings, run_id=run_id, created_at=dt.datetime.now(dt.UTC))
        undispatched: list[ManifestRow] = []
        records = await annotate_rows(
            annotator, rows, videos_in_flight=self.settings.annotate.videos_in_flight, on_video_done=on_video_done,
            undispatched=undispatched,
        )
        failure = shard_failure(records, undispatched, len(rows), self.settings.annotate.max_transient_error_share)
        manifest = await asyncio.to_thread(
            write_shard, records, shard_path, shard_id=shard_id, video_ids=[row.video_id for row in rows],
            settings_fingerprint=fingerprint, identities={v: identities[v] for v in (r.video_id for r in rows) if v in identities},
            failure=failure,
        )
        summary = summarise(run_id, records, time.perf_counter() - started, dict(annotator.clock.seconds))
        summary.settings_fingerprint = fingerprint
        summary.shards.append(manifest)
        ok_ids = {r.id for r in records if r.ok}
        summary.repaired = dict(Counter(cls for rid, cls in previous.items() if rid in ok_ids))
        if failure:
            summary.failed_shards[manifest.shard_id] = failure
            summary.transient_failures.append(manifest.shard_id)
        return summary


def shard_failure(records: Sequence[VideoITGRecord], undispatched: Sequence[ManifestRow], videos: int,
                  max_share: float) -> str:
    """Why a shard is failed ('' when it is finished): the endpoint went down (videos left unstarted), or
    the share of records with transient errors exceeds `max_share`. Permanent errors never fail it."""
    from vidthinker.pipeline import endpoint_down

    transient = [r for r in records if r.error_class == "transient"]
    top = Counter(error_reason(r.error or "") for r in transient).most_common(1)
    why = f"; top reason: {top[0][0]}" if top else ""
    if undispatched or any(endpoint_down(r) for r in transient):
        return (f"endpoint down: {len(undispatched)} of {videos} video(s) not started, "
                f"{len(transient)} record(s) with transient errors{why}")
    if records and len(transient) / len(records) > max_share:
        return (f"{len(transient)} of {len(records)} record(s) failed transiently "
                f"({len(transient) / len(records):.0%} > annotate.max_transient_error_share {max_share:.0%}){why}")
    return ""


def default_cache_dir(settings: Settings, out_dir: Path) -> Path:
    """The request cache of a run: `annotate.cache_dir`, else `out_dir/cache`."""
    return Path(settings.annotate.cache_dir or Path(out_dir) / "cache")


async def annotate_shard(
    rows: Sequence[ManifestRow],
    shard_path: Path,
    settings: Settings,
    *,
    run_id: str | None = None,
    cache_dir: Path | None = None,
    on_video_done: VideoCallback | None = None,
) -> RunSummary:
    """Open the models, annotate rows into one shard file (atomic), close; return the shard's summary."""
    run_id = run_id or uuid.uuid4().hex[:12]
    cache_dir = cache_dir or settings.annotate.cache_dir or Path(shard_path).parent.parent / "cache"
    async with ShardAnnotator(settings, cache_dir) as worker:
        return await worker.annotate(rows, Path(shard_path), run_id=run_id, on_video_done=on_video_done)


def write_summary(summary: RunSummary, out_dir: Path) -> Path:
    """`out_dir/summary.json`, written atomically."""
    path = Path(out_dir) / "summary.json"
    text = json.dumps(summary.model_dump(mode="json"), indent=1) + "\n"
    _atomic_write_bytes(path, lambda tmp: Path(tmp).write_text(text))
    return path


def run_annotation(
    rows: Sequence[ManifestRow],
    out_dir: Path,
    settings: Settings,
    *,
    on_video_done: VideoCallback | None = None,
    on_shard_done: Callable | None = None,
    engine: str | None = None,
    ray_address: str | None = None,
    retry_errors: bool = False,
    command: str = "",
) -> RunSummary:
    """Annotate rows into `out_dir/shards/` (planned with `plan_run`: finished shards there made with these
    settings are kept and skipped) on the configured engine (`engine.name`, local by default); summary in
    `out_dir/summary.json`. Finished shards made with other settings (stale) raise StaleShardsError before
    anything is written, or with `engine.redo_stale` are annotated again and overwritten. Shards that
    failed, hold transient errors or whose rows changed are redone; with `retry_errors` so are shards
    holding model-reply errors.

    The run holds `out_dir`'s writer lock (`RunFolderLock`, its holder named by `command`) throughout:
    a second run into the folder raises FolderLocked at once."""
    from vidthinker.engine import run_shards
    from vidthinker.fingerprint import annotation_fingerprint
    from vidthinker.shards import RunFolderLock, plan_run

    from vidthinker.preflight import check_output_dirs, shards_to_write

    out_dir = Path(os.path.abspath(out_dir))
    # fail before paying: out/, out/shards and the cache are writable directories with room (OutputPathError)
    check_output_dirs(out_dir, default_cache_dir(settings, out_dir), shards_to_write(len(rows), settings.engine.shard_size))
    with RunFolderLock(out_dir, command=command or "vidthinker annotate"):
        specs = plan_run(rows, out_dir, settings.engine.shard_size, fingerprint=annotation_fingerprint(settings),
                         redo_stale=settings.engine.redo_stale, prefix=settings.engine.shard_prefix)
        summary = run_shards(specs, rows, out_dir, settings, engine=engine, ray_address=ray_address,
                             on_shard_done=on_shard_done, on_video_done=on_video_done, retry_errors=retry_errors)
        _write_summary_or_report(summary, out_dir)
    return summary


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
