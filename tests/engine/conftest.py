"""Fixtures of the engine tests: the strict OpenAI stub with a scripted retrieval model, settings that
use it (oracle captions: no llama.cpp, no image model), and one uninterrupted local run to compare with."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers.openai_stub import StubServer
from tests.test_pipeline import scripted_model
from vidthinker.config import Settings, load_settings
from vidthinker.formats import iter_records, read_manifest
from vidthinker.models.cache import RequestCache
from vidthinker.schema import VideoITGRecord
from vidthinker.shards import records_hash


def settings_for(base_url: str, *extra: str) -> Settings:
    return load_settings(None, list(cli_sets(base_url)) + list(extra))


def cli_sets(base_url: str) -> list[str]:
    """`section.key=value` overrides shared by the in-process runs and the `vidthinker annotate` ones."""
    return [
        "annotate.oracle_captions=true", "models.backend=openai", f"models.base_url={base_url}",
        "models.caption_model=scripted", "models.structured_output=json_schema", "models.max_retries=1",
        "engine.shard_size=1",
    ]


def read_dataset(out_dir: Path) -> list[VideoITGRecord]:
    """Every record under out_dir/shards, by id."""
    return sorted(iter_records(Path(out_dir) / "shards"), key=lambda r: r.id)


def dataset_hash(out_dir: Path) -> str:
    return records_hash(read_dataset(out_dir))


def cached_replies(cache_dir: Path) -> int:
    path = Path(cache_dir) / RequestCache.FILENAME
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM replies").fetchone()[0])
    except sqlite3.OperationalError:  # table not created yet
        return 0


@dataclass
class Baseline:
    rows: list
    hash: str
    ids: list[str]
    calls: int


@pytest.fixture(scope="package")
def stub():
    with StubServer(models=["scripted"]) as server:
        server.state.responder = scripted_model
        yield server


@pytest.fixture(scope="package")
def baseline(synthetic_set, stub, tmp_path_factory) -> Baseline:
    """An uninterrupted local run of the synthetic set: what every other run must reproduce."""
    from vidthinker.engine import run_annotation

    rows = read_manifest(synthetic_set)
    out = tmp_path_factory.mktemp("baseline")
    before = stub.count
    summary = run_annotation(rows, out, settings_for(stub.base_url))
    assert summary.errors == 0 and not summary.failed_shards, summary
    records = read_dataset(out)
    assert len(records) == sum(len(r.qa) for r in rows)
    return Baseline(rows=rows, hash=records_hash(records), ids=[r.id for r in records], calls=stub.count - before)
