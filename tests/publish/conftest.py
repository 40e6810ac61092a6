"""Publishing tests: demo runs, and a strict stub of the Hub's HTTP API that huggingface_hub talks to
through HF_ENDPOINT (legacy LFS transfer: HF_HUB_DISABLE_XET). The Airflow environment of tests/airflow
is reused (its conftest configures AIRFLOW_HOME before Airflow is imported)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

import tests.airflow.conftest as airflow_env  # noqa: F401 - sets the Airflow env before anything imports airflow
from tests.airflow.conftest import airflow_db  # noqa: F401 - fixture
from tests.demo_support import copy_run, demo_root
from tests.publish.hub_stub import HubStub
from vidthinker.quality.runs import find_runs, shard_paths

WRITE_TOKEN = "hf_WriteTokenForTests0123456789abcd"
READ_TOKEN = "hf_ReadTokenForTests0123456789abcde"
OTHER_TOKEN = "hf_OtherUserToken0123456789abcdefg"
USER = "tester"
ORG = "vidthinker-org"


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    return demo_root(tmp_path_factory)


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """The stub hub, with HF_ENDPOINT/HF_TOKEN pointing at it and no other token source in reach."""
    from huggingface_hub import constants

    tokens = {
        WRITE_TOKEN: {"name": USER, "orgs": [ORG], "role": "write"},
        READ_TOKEN: {"name": USER, "orgs": [ORG], "role": "read"},
        OTHER_TOKEN: {"name": "someone-else", "orgs": [], "role": "write"},
    }
    with HubStub(tokens) as stub:
        monkeypatch.setenv("HF_ENDPOINT", stub.url)
        monkeypatch.setenv("HF_TOKEN", WRITE_TOKEN)
        monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
        monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token-file"))
        monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-stored-tokens"))
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the stub speaks the LFS protocol
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_PROGRESS_BARS", True)
        yield stub


def good_records(run: Path) -> int:
    dataset = ds.dataset([str(p) for p in shard_paths(run)], format="parquet")
    return dataset.count_rows(filter=pc.field("error").is_null())


@pytest.fixture
def run_one_shard(demo, tmp_path) -> Path:
    """A private copy of the first demo run, holding only its first shard (the second comes later)."""
    run = copy_run(find_runs(demo / "runs")[0], tmp_path / "run")
    shutil.rmtree(run / "quality", ignore_errors=True)
    extra = tmp_path / "later"
    extra.mkdir()
    for path in sorted((run / "shards").iterdir()):
        if not path.name.startswith("shard-00000"):
            shutil.move(str(path), extra / path.name)
    return run


def add_later_shards(run: Path) -> None:
    """Move the shards `run_one_shard` held back into the run."""
    for path in sorted((run.parent / "later").iterdir()):
        shutil.move(str(path), run / "shards" / path.name)


def synthetic_run(root: Path, shards: int = 24, per_shard: int = 30, answer: str = "a ball") -> Path:
    """`shards` shards of `per_shard` good records (shard 5 answers `answer`), written by the shard writer."""
    import datetime as dt

    from vidthinker.schema import Provenance, VideoITGRecord
    from vidthinker.shards import write_shard

    for s in range(shards):
        records = [VideoITGRecord(
            id=f"v{s}-{i // 3}/q{i % 3}", video=f"/videos/v{s}-{i // 3}.mp4", question=f"what happens {s} {i}?",
            answer=answer if s == 5 else "a ball", frame_num=[i % 7, 9], clip_num=[1], video_id=f"v{s}-{i // 3}",
            qa_id=f"q{i % 3}", provenance=Provenance(pipeline_version="0", clip_seconds=5, grid_fps=1,
                                                      created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))
            for i in range(per_shard)]
        write_shard(records, root / "shards" / f"shard-{s:05d}.parquet")
    return root
