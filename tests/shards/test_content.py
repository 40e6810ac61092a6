"""The content hash of a shard's records."""

from __future__ import annotations

import datetime as dt

from tests.shards.shard_records import record
from vidthinker.shards import records_hash


def test_records_hash_ignores_run_timing_and_cache_replays_not_content():
    a = [record("a"), record("b")]
    replayed = [record("a", run_id="r2", latency=0.0, calls=0, when=dt.datetime(2027, 1, 1, tzinfo=dt.UTC)), record("b", run_id="r3")]
    assert records_hash(a) == records_hash(replayed)
    changed = [record("a"), record("b").model_copy(update={"clip_num": [2]})]
    assert records_hash(a) != records_hash(changed)
    assert records_hash(a) != records_hash(list(reversed(a)))
