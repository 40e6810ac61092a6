"""`vidthinker airflow up|down|status` without starting Airflow (the live scheduler test starts and stops
the real stack): what it does when nothing runs, and what it refuses."""

from __future__ import annotations

import json
import os

from typer.testing import CliRunner

from vidthinker.cli import app
from vidthinker.orchestration import local_stack

runner = CliRunner()


def test_down_and_status_without_a_stack(tmp_path):
    done = runner.invoke(app, ["airflow", "down", "--home", str(tmp_path)])
    assert done.exit_code == 0 and "no stack running" in done.output
    status = runner.invoke(app, ["airflow", "status", "--home", str(tmp_path)])
    assert status.exit_code == 1 and "no stack started" in status.output


def test_up_refuses_a_home_whose_stack_still_runs(tmp_path):
    (tmp_path / "stack.json").write_text(json.dumps({"pids": {"scheduler": os.getpid()}}))
    done = runner.invoke(app, ["airflow", "up", "--home", str(tmp_path)])
    assert done.exit_code == 1 and "already running" in done.output


def test_up_names_a_missing_dags_folder(tmp_path):
    done = runner.invoke(app, ["airflow", "up", "--home", str(tmp_path / "home"), "--dags", str(tmp_path / "nope")])
    assert done.exit_code == 1 and "nope" in done.output and "not found" in done.output


def test_the_stack_listens_on_loopback_only(tmp_path):
    env = local_stack.stack_environment(tmp_path, 8080, dags=tmp_path, parallelism=2,
                                        secret={"jwt": "j", "key": "k"})
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1" and env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("sqlite:///")
    commands = dict(local_stack.COMPONENTS)
    assert commands["api-server"][commands["api-server"].index("--host") + 1] == "127.0.0.1"
    assert "--skip-serve-logs" in commands["scheduler"]  # no log server on 0.0.0.0
