"""GPU placement of the stage-3 embedder: `models.embedder_device` and Ray's `engine.gpus_per_worker`.

This machine has no GPU, so Ray is given a logical one (`engine.local_num_gpus`): Ray then schedules
and isolates GPU actors exactly as on a GPU node (it sets CUDA_VISIBLE_DEVICES); only torch finds no
device behind it, so "auto" resolves to the CPU there.
"""

from __future__ import annotations

import time

import pytest

from tests.engine.conftest import read_dataset, settings_for
from tests.extras import require
from vidthinker.config import ConfigError, load_settings
from vidthinker.models import ModelUnavailable
from vidthinker.models.embedders import resolve_device
from vidthinker.shards import records_hash


def test_auto_device_follows_what_the_process_sees(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(ModelUnavailable, match=r"embedder_device='cuda' but this process sees no CUDA device \(CUDA_VISIBLE_DEVICES=''\)"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda:0") == "cuda:0"
    with pytest.raises(ModelUnavailable, match=r"'cuda:3' but this process sees 1 CUDA device"):
        resolve_device("cuda:3")


def test_device_and_gpu_settings_are_validated():
    with pytest.raises(ConfigError, match="embedder_device"):
        load_settings(None, ["models.embedder_device=gpu"])
    with pytest.raises(ConfigError, match="gpus_per_worker"):
        load_settings(None, ["engine.gpus_per_worker=-1"])
    s = load_settings(None, ["models.embedder_device=cuda:1", "engine.gpus_per_worker=0.25"])
    assert s.models.embedder_device == "cuda:1" and s.engine.gpus_per_worker == 0.25


def test_an_embedder_on_a_missing_gpu_fails_before_any_video(stub, synthetic_set, tmp_path):
    from vidthinker.engine import run_annotation
    from vidthinker.formats import read_manifest

    rows = read_manifest(synthetic_set)
    settings = settings_for(stub.base_url, "models.embedder_device=cuda")
    with pytest.raises(ModelUnavailable, match="sees no CUDA device"):
        run_annotation(rows, tmp_path / "run", settings)
    assert not list((tmp_path / "run").glob("shards/*.parquet"))


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_ray_workers_reserve_gpu_shares_and_a_gpu_less_cluster_is_refused(baseline, stub, tmp_path):
    require("ray", "ray")
    from vidthinker.engine import EngineUnavailable, run_annotation

    # Two workers sharing one (logical) GPU: both are placed, both see GPU 0, records are unchanged.
    settings = settings_for(stub.base_url, "engine.local_num_cpus=2", "engine.local_num_gpus=1",
                            "engine.gpus_per_worker=0.5")
    summary = run_annotation(baseline.rows, tmp_path / "shared", settings, engine="ray")
    assert summary.errors == 0 and not summary.failed_shards and summary.workers == 2
    assert summary.shard_workers and all(label.endswith(" gpus 0") for label in summary.shard_workers.values())
    assert records_hash(read_dataset(tmp_path / "shared")) == baseline.hash

    # A worker asking for a GPU on a cluster without one would wait forever in Ray: refused at once.
    settings = settings_for(stub.base_url, "engine.local_num_cpus=2", "engine.local_num_gpus=0",
                            "engine.gpus_per_worker=1")
    started = time.monotonic()
    with pytest.raises(EngineUnavailable, match=r"engine.gpus_per_worker=1 but the Ray cluster has 0 GPUs"):
        run_annotation(baseline.rows, tmp_path / "none", settings, engine="ray")
    assert time.monotonic() - started < 60
    assert not list((tmp_path / "none").glob("shards/*.parquet"))
