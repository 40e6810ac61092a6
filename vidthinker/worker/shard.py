"""One shard's work, the same on every engine: read its rows through the pipeline and write the shard.

`ShardAnnotator` opens the stage models once (OpenAI-compatible clients and the request cache, or the
offline llama.cpp server; the image embedder; `vidthinker.worker.stage_models`) and then annotates any
number of shards with them (`annotate_shard`). The local engine holds one for the whole run, each Ray
actor holds one for its life.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self

from vidthinker.config import Settings
from vidthinker.figures import error_class_name, error_reason
from vidthinker.pipeline import VideoAnnotator, annotate_rows, endpoint_down
from vidthinker.schema import ManifestRow, VideoITGRecord
from vidthinker.shards import failed_path, row_identities, write_shard
from vidthinker.worker.summary import RunSummary, summarise

__all__ = ["ShardAnnotator", "VideoCallback", "default_cache_dir", "previous_errors", "shard_failure"]

VideoCallback = Callable[[ManifestRow, list[VideoITGRecord]], None]


class ShardAnnotator:
    """The stage models of one worker, opened once, and the shards annotated with them.

    `async with ShardAnnotator(settings, cache_dir) as worker: await worker.annotate_shard(...)` — models
    are checked on entry (an unreachable endpoint raises ModelUnavailable before any video is touched)
    and closed on exit; the llama.cpp server (offline backend) and the embedder start once per instance.
    """

    def __init__(self, settings: Settings, cache_dir: Path):
        self.settings = settings
        self.cache_dir = Path(cache_dir)
        self.models = None
        self._stack: contextlib.AsyncExitStack | None = None

    async def __aenter__(self) -> Self:
        from vidthinker.serving import request_shapes
        from vidthinker.worker.stage_models import open_stage_models

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

    async def annotate_shard(
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
        return {row["id"]: error_class_name(row.get("error_class")) for row in table if row.get("error") is not None}
    return {}


def shard_failure(records: Sequence[VideoITGRecord], undispatched: Sequence[ManifestRow], videos: int,
                  max_share: float) -> str:
    """Why a shard is failed ('' when it is finished): the endpoint went down (videos left unstarted), or
    the share of records with transient errors exceeds `max_share`. Permanent errors never fail it."""
    transient = [r for r in records if r.error_class == "transient"]
    top = Counter(error_reason(r.error) for r in transient).most_common(1)
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
