"""Processes the pipeline starts must not re-run the parent's entry script or inherit an Airflow task's
environment (issue: the decode worker died inside Airflow tasks, whose `__main__` is the `airflow`
script and whose environment holds AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=airflow-db-not-allowed:///)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vidthinker import childproc

REPO = Path(__file__).resolve().parents[1]

# An entry script like Airflow's inside a task: re-running it (as multiprocessing's spawn does, under
# the name __mp_main__) or importing airflow settings with the blocked database URL fails loudly.
ENTRY = textwrap.dedent('''
    import json, os, sys
    if __name__ != "__main__":
        raise SystemExit("the entry script was re-run in a child process")
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = "airflow-db-not-allowed:///"
    os.environ["AIRFLOW__CORE__SQL_ALCHEMY_CONN"] = "airflow-db-not-allowed:///"
    os.environ["VIDTHINKER_API_KEY"] = "sk-not-for-children"
    from vidthinker import video
    info = video.probe(sys.argv[1])
    worker = video.DecodeWorker()
    try:
        frames = video.decode_frames(sys.argv[1], [0, info.num_frames - 1], worker=worker, max_side=64)
        seen = {k: worker.call(os.getenv, k, timeout_s=30)
                for k in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "VIDTHINKER_API_KEY", "PATH")}
        main = worker.call(eval, "__import__('sys').modules['__main__'].__file__", timeout_s=30)
    finally:
        worker.close()
    print(json.dumps({"shape": list(frames.shape), "seen": seen, "child_main": main}))
''')


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("childproc") / "testsrc.mp4"
    try:
        subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-t", "2",
                        "-pix_fmt", "yuv420p", str(path)], check=True, timeout=60)
    except (FileNotFoundError, subprocess.CalledProcessError) as err:
        pytest.skip(f"cannot make a test video with ffmpeg: {err}")
    return path


@pytest.fixture
def entry_script(tmp_path):
    path = tmp_path / "airflow_like_entry.py"
    path.write_text(ENTRY)
    return path


def test_decode_worker_starts_under_an_entry_script_that_must_not_rerun(entry_script, clip):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(entry_script), str(clip)], env=env, cwd=entry_script.parent,
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["shape"][0] == 2 and out["shape"][3] == 3
    # the child got a minimal environment: no Airflow task variables, no API key, but a PATH
    assert out["seen"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] is None
    assert out["seen"]["VIDTHINKER_API_KEY"] is None
    assert out["seen"]["PATH"]
    assert out["child_main"].endswith(os.path.join("vidthinker", "video", "worker.py"))


def test_child_environment_drops_airflow_task_variables_and_keys(monkeypatch):
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "airflow-db-not-allowed:///")
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "vidthinker_annotate")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    monkeypatch.setenv("VIDTHINKER_MODELS__BACKEND", "offline")
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    env = childproc.child_environment()
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in env and "AIRFLOW_CTX_DAG_ID" not in env
    assert "OPENAI_API_KEY" not in env
    assert env["VIDTHINKER_MODELS__BACKEND"] == "offline"
    assert env["PYTHONPATH"].split(os.pathsep) == [childproc.package_root(), "/somewhere"]
    minimal = childproc.minimal_environment()
    assert "VIDTHINKER_MODELS__BACKEND" not in minimal and "PYTHONPATH" in minimal


def test_worker_entry_refuses_to_run_without_its_socket():
    done = subprocess.run([sys.executable, "-m", "vidthinker.video.worker"], capture_output=True, text=True,
                          timeout=60, check=False, env=childproc.minimal_environment())
    assert done.returncode != 0 and "usage: python -m vidthinker.video.worker FD" in done.stderr
