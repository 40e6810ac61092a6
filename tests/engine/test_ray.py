"""The Ray engine: embedded local Ray (with a worker killed mid-shard) and a two-node local cluster.

Each test starts Ray (~4 s and ~1.8 GiB on 2 cores) and two actors that import torch and load the
embedder once each, so they are the slow part of this folder.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.engine.conftest import cli_sets, dataset_hash, read_dataset, settings_for
from tests.extras import require
from tests.servers.openai_stub import StubServer
from tests.test_pipeline import scripted_model
from vidthinker.engine import run_annotation
from vidthinker.fingerprint import annotation_fingerprint
from vidthinker.shards import assign_shards, finished_shard

ray = require("ray", "ray")
RAY_BIN = Path(sys.executable).with_name("ray")


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_embedded_ray_matches_local_even_when_a_worker_is_killed_mid_shard(baseline, tmp_path):
    """Two actors, three shards: the actor that finishes first is SIGKILLed 0.8 s into its next shard;
    Ray restarts it, the driver hands the shard out again, and the records equal the local run's."""
    out = tmp_path / "run"
    killed: list[int] = []
    videos: list[str] = []
    results = []

    def shard_done(result):
        results.append(result)
        if result.status == "written" and not killed:
            pid = int(result.worker.rsplit("pid ", 1)[1])
            killed.append(pid)
            threading.Timer(0.8, os.kill, (pid, signal.SIGKILL)).start()

    # serialised 0.2 s replies: a shard of 7-8 questions takes > 1.5 s, so the kill lands inside one
    with StubServer(models=["scripted"], latency_s=0.2, capacity=1) as slow:
        slow.state.responder = scripted_model
        settings = settings_for(slow.base_url, "engine.workers=2", "engine.local_num_cpus=2")
        summary = run_annotation(baseline.rows, out, settings, engine="ray",
                                 on_video_done=lambda row, records: videos.append(row.video_id), on_shard_done=shard_done)
    assert summary.engine == "ray" and summary.workers == 2 and not summary.failed_shards
    assert killed and any(r.attempts >= 2 for r in results), [(r.shard_id, r.status, r.attempts) for r in results]
    assert sorted(videos) == sorted(r.video_id for r in baseline.rows)  # progress counts each video once
    assert len({label.rsplit(" pid", 1)[0] for label in summary.shard_workers.values()}) == 1  # one node
    assert [r.id for r in read_dataset(out)] == baseline.ids
    assert dataset_hash(out) == baseline.hash
    assert not ray.is_initialized()  # the embedded instance is shut down again


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(path: Path, text: str, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in (path.read_text(errors="replace") if path.exists() else ""):
        assert proc.poll() is None, path.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, f"no {text!r} in {path} after {timeout_s} s"
        time.sleep(0.2)


def _stop(proc: subprocess.Popen) -> None:
    """`ray start --block` stops the node's processes on SIGTERM; kill its process group if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # only the group this test started (start_new_session)
    except ProcessLookupError:
        pass
    proc.wait(10)


@pytest.fixture
def two_node_cluster(tmp_path):
    """A head and a worker node on this machine, 1 CPU each, in their own temp dir, on free ports.

    Started with `ray start --block` in new sessions and stopped by signalling those processes, so
    other Ray instances on the machine are left alone (`ray stop` would end every one of them)."""
    temp_dir = Path(tempfile.mkdtemp(prefix="vtray", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop("RAY_ADDRESS", None)
    port = _free_port()
    common = ["--num-cpus", "1", "--dashboard-agent-listen-port", str(_free_port()), "--block"]
    head_log, worker_log = tmp_path / "head.log", tmp_path / "worker.log"
    procs = []
    try:
        with open(head_log, "wb") as log:
            procs.append(subprocess.Popen(
                [str(RAY_BIN), "start", "--head", "--port", str(port), "--include-dashboard=false",
                 "--dashboard-port", str(_free_port()), "--ray-client-server-port", str(_free_port()),
                 "--temp-dir", str(temp_dir), *common],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        _wait_for(head_log, "Ray runtime started", procs[0], 120)
        with open(worker_log, "wb") as log:
            procs.append(subprocess.Popen(
                [str(RAY_BIN), "start", "--address", f"127.0.0.1:{port}", *common],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        _wait_for(worker_log, "Ray runtime started", procs[1], 120)
        yield f"127.0.0.1:{port}", env
    finally:
        for proc in reversed(procs):
            _stop(proc)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_vidthinker_annotate_on_a_two_node_ray_cluster(baseline, stub, synthetic_set, two_node_cluster, tmp_path):
    address, env = two_node_cluster
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "vidthinker.cli"]
    for assignment in cli_sets(stub.base_url):
        cmd += ["--set", assignment]
    cmd += ["annotate", "--manifest", str(synthetic_set), "--out", str(out), "--engine", "ray",
            "--ray-address", address, "--shard-size", "1", "--workers", "2"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "3 written, 0 already finished (skipped), 0 failed; engine ray with 2 worker(s)" in " ".join(done.stdout.split())
    summary = json.loads((out / "summary.json").read_text())
    nodes = {label.rsplit(" pid", 1)[0] for label in summary["shard_workers"].values()}
    assert len(nodes) == 2, summary["shard_workers"]  # one actor per node: both nodes wrote shards
    assert all(finished_shard(out, spec, fingerprint=annotation_fingerprint(settings_for(stub.base_url)))
               for spec in assign_shards(baseline.rows, 1))
    assert [r.id for r in read_dataset(out)] == baseline.ids
    assert dataset_hash(out) == baseline.hash


def test_an_unreachable_ray_address_is_a_clear_error_at_once(baseline, stub, synthetic_set, tmp_path):
    from typer.testing import CliRunner

    from vidthinker.cli import app

    port = _free_port()  # nobody listens there
    args = [a for s in cli_sets(stub.base_url) for a in ("--set", s)]
    started = time.monotonic()
    result = CliRunner().invoke(app, [*args, "annotate", "--manifest", str(synthetic_set), "--out", str(tmp_path / "run"),
                                      "--engine", "ray", "--ray-address", f"127.0.0.1:{port}"])
    assert result.exit_code == 2, result.output
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in " ".join(result.output.split())
    assert time.monotonic() - started < 60 and not ray.is_initialized()
