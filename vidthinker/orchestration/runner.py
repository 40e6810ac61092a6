"""The seam to shard planning and the execution engine (vidthinker.shards / vidthinker.engine).

One mapped Airflow task runs one shard through `vidthinker.engine.run_shards`, the same function the
CLI uses; a shard the engine reports as failed becomes an exception, so Airflow retries that task.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vidthinker.schema import ManifestRow
from vidthinker.shards import ShardSpec, finished_shard, finished_shards, plan_shards, shard_file


class ShardFailed(RuntimeError):
    """The engine could not produce the shard (its task should fail and be retried)."""


def run_one_shard(
    spec: ShardSpec, rows: Sequence[ManifestRow], out_dir: Path, settings: Any, *, engine: str = "ray",
    ray_address: str | None = None, run_id: str | None = None, on_video_done: Callable | None = None,
) -> tuple[Any, float]:
    """Run one shard on the engine; returns (RunSummary, engine wall seconds measured around the call)."""
    from vidthinker.engine import run_shards

    started = time.perf_counter()
    summary = run_shards([spec], list(rows), Path(out_dir), settings, engine=engine, ray_address=ray_address,
                         run_id=run_id, on_video_done=on_video_done)
    elapsed = time.perf_counter() - started
    if spec.shard_id in summary.failed_shards:
        raise ShardFailed(f"shard {spec.shard_id}: {summary.failed_shards[spec.shard_id]}")
    return summary, elapsed


__all__ = ["ShardFailed", "ShardSpec", "finished_shard", "finished_shards", "plan_shards", "run_one_shard", "shard_file"]
