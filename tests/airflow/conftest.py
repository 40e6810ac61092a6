"""Airflow test environment: a private AIRFLOW_HOME with a SQLite metadata DB, the repo's dags folder,
no examples. Set before anything imports airflow (its configuration is read at import time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
AIRFLOW_BIN = Path(sys.executable).with_name("airflow")

if "airflow" in sys.modules:  # pragma: no cover - would use someone else's AIRFLOW_HOME/DB
    raise RuntimeError("airflow was imported before tests/airflow/conftest.py could configure it")

_HOME = Path(tempfile.mkdtemp(prefix="vidthinker-airflow-"))
TEST_ENV = {
    "AIRFLOW_HOME": str(_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME / 'airflow.db'}",
    "AIRFLOW__CORE__PARALLELISM": "4",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    # shard tasks in these tests retry once, quickly
    "VIDTHINKER_AIRFLOW__RETRIES": "1",
    "VIDTHINKER_AIRFLOW__RETRY_DELAY_S": "1",
    "VIDTHINKER_AIRFLOW__SCHEDULE": "none",
    "VIDTHINKER_AIRFLOW__OUT_DIR": str(_HOME / "data"),
}
os.environ.update(TEST_ENV)
API_KEY = "sk-vidthinker-TEST-KEY-7f3a9c"


def conn_json(base_url: str, **extra) -> str:
    """AIRFLOW_CONN_VIDTHINKER_MODEL_ENDPOINT for the stub server: host → base_url, password → key."""
    return json.dumps({"conn_type": "http", "host": base_url, "password": API_KEY,
                       "extra": {"caption_model": "scripted", "structured_output": "json_schema", **extra}})


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """`airflow db migrate` once per session, and the models pool."""
    env = {**os.environ, **TEST_ENV}
    for cmd in (["db", "migrate"], ["pools", "set", "vidthinker_models", "2", "model-serving slots"]):
        done = subprocess.run([str(AIRFLOW_BIN), *cmd], env=env, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, f"airflow {' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return _HOME


@pytest.fixture(scope="session")
def two_videos(tmp_path_factory) -> Path:
    from vidthinker.synth import generate_synthetic_set

    return generate_synthetic_set(tmp_path_factory.mktemp("af-synth"), 2, seed=5, min_seconds=10, max_seconds=14)


@pytest.fixture
def stub():
    from tests.servers.openai_stub import StubServer
    from tests.test_pipeline import scripted_model

    with StubServer(models=["scripted"], api_key=API_KEY) as server:
        server.state.responder = scripted_model
        yield server
