"""The local engine: one ShardAnnotator (models opened once) and the shards one after another."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from vidthinker.config import Settings
from vidthinker.engine import ShardCallback, ShardResult, local_worker_label, result_of
from vidthinker.models import ModelUnavailable
from vidthinker.preflight import describe_error
from vidthinker.schema import ManifestRow
from vidthinker.shards import ShardSpec, shard_file
from vidthinker.worker.shard import ShardAnnotator, VideoCallback, default_cache_dir


async def _run(todo, by_id, out_dir, settings, run_id, on_shard_done, on_video_done, identities) -> list[ShardResult]:
    results = []
    label = local_worker_label()
    down = ""
    async with ShardAnnotator(settings, default_cache_dir(settings, out_dir)) as worker:
        for spec in todo:
            rows = [by_id[v] for v in spec.video_ids]
            if down:  # the endpoint went down in an earlier shard: do not burn this one too
                result = ShardResult(shard_id=spec.shard_id, status="failed", videos=len(rows), attempts=0,
                                     error=f"not started: {down}", worker=label, transient=True)
            else:
                try:
                    summary = await worker.annotate_shard(rows, shard_file(out_dir, spec.shard_id), run_id=run_id,
                                                          shard_id=spec.shard_id, on_video_done=on_video_done,
                                                          identities=identities)
                except ModelUnavailable:
                    raise
                except Exception as error:  # noqa: BLE001 - report the shard, go on with the others
                    result = ShardResult(shard_id=spec.shard_id, status="failed", videos=len(rows), attempts=1,
                                         error=describe_error(error, path=shard_file(out_dir, spec.shard_id)), worker=label)
                else:
                    result = result_of(spec, summary, label, 1)
                    if result.status == "failed" and (result.error or "").startswith("endpoint down"):
                        down = f"the endpoint went down in shard {spec.shard_id}"
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
    identities: dict[str, str] | None = None,
) -> list[ShardResult]:
    return asyncio.run(_run(todo, by_id, out_dir, settings, run_id, on_shard_done, on_video_done, identities))
