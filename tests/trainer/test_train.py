"""Selector training: loss goes down, exact resume, checkpoints in HF form, DDP with two gloo processes."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from trainer.config import SelectorConfig, TrainConfig, tiny_config
from trainer.data import FeatureCache, MissingVideosError, VideoFeatures, build_examples, data_version, load_samples
from trainer.model import FrameSelector
from trainer.train import evaluate_loss, latest_checkpoint, train


def config(cache_dir: Path, **overrides) -> TrainConfig:
    base = dict(
        model=tiny_config(),
        lr=2e-3,
        head_lr=2e-2,
        epochs=1,
        progress=False,
        budget_range=(64, 256),
        seed=0,
        feature_cache_dir=str(cache_dir),
    )
    base.update(overrides)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("train_feature_cache")


def test_short_training_reduces_loss(tmp_path, small_shards, cache_dir, capsys):
    cfg = config(cache_dir, epochs=30, batch_size=4, lr=3e-3, head_lr=3e-2)
    torch.manual_seed(cfg.seed)
    before_model = FrameSelector(cfg.model)  # train() builds the same init from the same seed
    examples = build_examples(load_samples(small_shards), before_model, cap=512)
    before = evaluate_loss(
        before_model, examples, VideoFeatures(before_model, FeatureCache(cache_dir)), budget=256
    )

    result = train(small_shards, tmp_path / "run", cfg)
    after = evaluate_loss(
        result.model, examples, VideoFeatures(result.model, FeatureCache(cache_dir)), budget=256
    )
    assert result.completed and result.step == result.total_steps == 30 * -(-len(examples) // 4)
    n = len(result.losses)
    tenth = n // 10
    first, last = sum(result.losses[:tenth]) / tenth, sum(result.losses[-tenth:]) / tenth
    with capsys.disabled():
        curve = [round(sum(result.losses[i : i + tenth]) / tenth, 3) for i in range(0, tenth * 10, tenth)]
        print(
            f"\n[train] {len(examples)} samples x 30 epochs = {n} steps (batch 4); mean loss per tenth {curve}; "
            f"train-set loss at budget 256: before {before:.3f} -> after {after:.3f}; {result.elapsed_s:.1f} s"
        )
    assert after < 0.8 * before
    assert last < first

    # metrics JSONL, HF-form final model with the data version
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == n and {"step", "loss", "lr", "head_lr", "grad_norm", "samples_per_s"} <= set(
        lines[0]
    )
    assert lines[0]["head_lr"] == pytest.approx(10 * lines[0]["lr"])
    saved = SelectorConfig.load(tmp_path / "run" / "config.json")
    assert saved.metadata["data_version"] == data_version(small_shards) == result.data_version
    assert saved.metadata["steps"] == n and (tmp_path / "run" / "model.safetensors").is_file()


def test_schedule_is_cosine_with_warmup(tmp_path, shards, cache_dir):
    result = train(
        shards, tmp_path / "run", config(cache_dir, max_steps=20, warmup_ratio=0.1, lr=1e-3, head_lr=1e-2)
    )
    lrs = [json.loads(x)["lr"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    # logged after the step: warmup 2 steps -> 5e-4, 1e-3, then cosine decay to 0 at step 20
    assert lrs[0] == pytest.approx(5e-4) and lrs[1] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:])) and lrs[-1] == pytest.approx(0.0, abs=1e-12)
    assert result.step == 20


def test_resume_continues_from_the_same_step(tmp_path, shards, cache_dir):
    straight = train(shards, tmp_path / "straight", config(cache_dir, max_steps=6, batch_size=2))
    first = train(
        shards, tmp_path / "resumed", config(cache_dir, max_steps=6, batch_size=2, stop_after_steps=3)
    )
    assert not first.completed and first.step == 3
    ckpt = latest_checkpoint(tmp_path / "resumed")
    assert ckpt is not None and ckpt.name == "step-00000003"
    assert {
        "config.json",
        "model.safetensors",
        "optimizer.pt",
        "scheduler.pt",
        "trainer_state.json",
        "rng_state_rank0.pt",
    } <= {p.name for p in ckpt.iterdir()}
    assert not (tmp_path / "resumed" / "model.safetensors").exists()  # not finished: no final model
    second = train(shards, tmp_path / "resumed", config(cache_dir, max_steps=6, batch_size=2))
    assert second.resumed_from == 3 and second.step == 6 and second.completed
    assert second.losses == pytest.approx(straight.losses[3:], rel=1e-5, abs=1e-6)
    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, shards: str, out: str, cache: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    result = train(shards, out, config(Path(cache), max_steps=3, batch_size=2), device="cpu")
    params = {k: v.detach().clone() for k, v in result.model.state_dict().items()}
    torch.save(
        {"params": params, "losses": result.losses, "step": result.step, "total": result.total_steps},
        Path(out) / f"rank{rank}.pt",
    )


def test_ddp_two_gloo_processes(tmp_path, shards, cache_dir):
    out = tmp_path / "ddp"
    out.mkdir()
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(shards), str(out), str(cache_dir)), nprocs=2, join=True)
    r0, r1 = (torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["step"] == r1["step"] == 3 and r0["losses"] == r1["losses"]  # loss is averaged over ranks
    for key, value in r0["params"].items():
        assert torch.equal(value, r1["params"][key]), f"{key} differs between ranks"
    saved = load_file(str(out / "model.safetensors"))
    assert all(torch.equal(saved[k], r0["params"][k]) for k in saved)
    meta = SelectorConfig.load(out / "config.json").metadata
    assert meta["world_size"] == 2 and meta["steps"] == 3
    # same result shape as a single process
    model = FrameSelector.from_pretrained(out)
    ids = model.encode_instruction("q")
    assert model([torch.randn(5, 4, 4, 32)], [ids]).logits.shape == (1, 5)


def test_bad_records_and_videos_are_skipped(tmp_path, shards, cache_dir):
    from vidthinker.schema import VideoITGRecord, read_parquet, write_parquet

    records = read_parquet(next(shards.glob("*.parquet")), VideoITGRecord)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 but then nothing")
    bad_video = records[1].model_copy(update={"qa_id": "bad-video", "video": str(broken)})
    missing = records[2].model_copy(update={"qa_id": "missing", "video": str(tmp_path / "nope.mp4")})
    data = tmp_path / "data"
    write_parquet(records[:4] + [bad_video, missing], VideoITGRecord, data / "part-0.parquet")
    with pytest.raises(MissingVideosError, match="--video-root"):  # 1 of the 3-4 videos: above the 5% default
        train(data, tmp_path / "run", config(cache_dir, max_steps=2))
    result = train(data, tmp_path / "run", config(cache_dir, max_steps=2, max_missing_videos=0.5))
    assert result.completed
    assert result.skipped == {
        "error_records": sum(r.error is not None for r in records[:4]),
        "missing_video": 1,
        "failed_videos": 1,
    }
    assert str(broken) in json.loads((tmp_path / "run" / "data_failures.json").read_text())


def test_compile_option_compiles_every_block_and_trains(tmp_path, small_shards, cache_dir, monkeypatch):
    """TrainConfig.compile (`vidthinker train --compile`) compiles the model's blocks before training."""
    calls = []
    real = FrameSelector.compile_blocks

    def spy(self, **kwargs):
        calls.append(real(self, **kwargs))
        return calls[-1]

    monkeypatch.setattr(FrameSelector, "compile_blocks", spy)
    result = train(small_shards, tmp_path / "run", config(cache_dir, compile=True, max_steps=2))
    assert result.completed and result.step == 2
    assert calls == [len(result.model.transformer_blocks())]
    assert all(torch.isfinite(torch.tensor(result.losses)))


def _fsdp_worker(rank: int, world: int, port: int, shards: str, out: str, cache: str, strategy: str,
                 stop_after: int | None) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    cfg = config(Path(cache), max_steps=3, batch_size=2, grad_accum=2, strategy=strategy, stop_after_steps=stop_after)
    result = train(shards, out, cfg, device="cpu")
    lm = list(result.model.lm.parameters())
    local = sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in lm)
    torch.save({"losses": result.losses, "step": result.step, "completed": result.completed,
                "resumed_from": result.resumed_from, "lm_local": local, "lm_full": sum(p.numel() for p in lm)},
               Path(out) / f"rank{rank}.pt")


def _spawn(strategy: str, out: Path, shards, cache_dir, stop_after: int | None = None) -> list[dict]:
    mp.spawn(_fsdp_worker, args=(2, _free_port(), str(shards), str(out), str(cache_dir), strategy, stop_after),
             nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)]


def test_fsdp_matches_ddp_and_resumes_from_its_sharded_checkpoint(tmp_path, shards, cache_dir):
    """Two gloo processes: FSDP (sharded weights, gradients, AdamW; gradient accumulation) reaches the
    weights DDP reaches, and an FSDP run stopped after 2 of 3 steps resumes from its checkpoint (full
    state gathered to rank 0, optimizer keyed by names) to the same place."""
    ddp_out, fsdp_out = tmp_path / "ddp", tmp_path / "fsdp"
    ddp = _spawn("ddp", ddp_out, shards, cache_dir)
    first = _spawn("fsdp", fsdp_out, shards, cache_dir, stop_after=2)
    assert [r["step"] for r in first] == [2, 2] and not first[0]["completed"]
    state = json.loads((latest_checkpoint(fsdp_out) / "trainer_state.json").read_text())
    assert state["strategy"] == "fsdp" and state["step"] == 2
    optim = torch.load(latest_checkpoint(fsdp_out) / "optimizer.pt", weights_only=False)
    assert any(str(key).startswith("lm.layers.0.") for key in optim["state"])  # keyed by names, not ids
    second = _spawn("fsdp", fsdp_out, shards, cache_dir)
    assert [r["resumed_from"] for r in second] == [2, 2] and second[0]["completed"] and second[0]["step"] == 3
    for r in first + second:  # each rank holds about half of the LM (the shards), DDP ranks all of it
        assert r["lm_local"] <= 0.55 * r["lm_full"]
    assert all(r["lm_local"] == r["lm_full"] for r in ddp)
    assert first[0]["losses"] + second[0]["losses"] == pytest.approx(ddp[0]["losses"], rel=1e-4, abs=1e-6)
    want, got = load_file(str(ddp_out / "model.safetensors")), load_file(str(fsdp_out / "model.safetensors"))
    assert set(want) == set(got)
    for key in want:
        assert torch.allclose(want[key], got[key], rtol=1e-4, atol=1e-5), key
    meta = SelectorConfig.load(fsdp_out / "config.json").metadata
    assert meta["strategy"] == "fsdp" and meta["world_size"] == 2 and meta["steps"] == 3

    # a checkpoint's optimizer layout belongs to its strategy: resuming it under the other is refused
    with pytest.raises(mp.ProcessRaisedException, match="written by a fsdp run; resume it with strategy=fsdp"):
        _spawn("ddp", fsdp_out, shards, cache_dir)
