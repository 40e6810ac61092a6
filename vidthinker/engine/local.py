"""The local engine: one ShardAnnotator (models opened once) and the shards one after another."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from vidthinker.annotate import ShardAnnotator, VideoCallback, default_cache_dir
from vidthinker.config import Settings
from vidthinker.engine import ShardCallback, ShardResult, local_worker_label
from vidthinker.models import ModelUnavailable
from vidthinker.schema import ManifestRow
from vidthinker.shards import ShardSpec, shard_file


async def _run(todo, by_id, out_dir, settings, run_id, on_shard_done, on_video_done) -> list[ShardResult]:
    results = []
    label = local_worker_label()
    async with ShardAnnotator(settings, default_cache_dir(settings, out_dir)) as worker:
        for spec in todo:
            rows = [by_id[v] for v in spec.video_ids]
            try:
                summary = await worker.annotate(rows, shard_file(out_dir, spec.shard_id), run_id=run_id,
                                                shard_id=spec.shard_id, on_video_done=on_video_done)
            except ModelUnavailable:
                raise
            except Exception as error:  # noqa: BLE001 - report the shard, go on with the others
                result = ShardResult(shard_id=spec.shard_id, status="failed", videos=len(rows), attempts=1,
                                     error=f"{type(error).__name__}: {error}", worker=label)
            else:
                result = ShardResult(shard_id=spec.shard_id, status="written", videos=len(rows), attempts=1,
                                     manifest=summary.shards[0], summary=summary, worker=label)
            results.append(result)
            if on_shard_done is not None:
                on_shard_done(result)
    return results


def run_local(
    todo: Sequence[ShardSpec],
    by_id: dict[str, ManifestRow],
    out_dir: Path,
    settings: Settings,
    *,
    run_id: str,
    on_shard_done: ShardCallback | None = None,
    on_video_done: VideoCallback | None = None,
) -> list[ShardResult]:
    return asyncio.run(_run(todo, by_id, out_dir, settings, run_id, on_shard_done, on_video_done))
