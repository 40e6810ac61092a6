"""CLI command functions (typer-compatible) and the GPU bench script's CPU path."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.extras import require

REPO = Path(__file__).resolve().parents[2]


def test_commands_are_typer_compatible_and_run(tmp_path, small_shards, synthetic_manifest, capsys):
    import typer
    from typer.testing import CliRunner

    from eval.commands import select_command
    from trainer.commands import train_command

    for fn in (train_command, select_command):
        for name, param in inspect.signature(fn, eval_str=True).parameters.items():
            meta = getattr(param.annotation, "__metadata__", None) or ()
            assert any(isinstance(m, (typer.models.OptionInfo, typer.models.ArgumentInfo)) for m in meta), (
                name
            )
            assert all(m.help for m in meta), f"{fn.__name__}.{name} has no help text"

    app = typer.Typer()
    app.command("train")(train_command)
    app.command("select")(select_command)
    runner = CliRunner()
    wide = {"COLUMNS": "250", "TERMINAL_WIDTH": "250", "NO_COLOR": "1"}
    assert "--gradient-checkpointing" in runner.invoke(app, ["train", "--help"], env=wide).output
    select_help = runner.invoke(app, ["select", "--help"], env=wide).output
    assert "--num-frames" in select_help and "--compile" in select_help
    assert "--compile" in runner.invoke(app, ["train", "--help"], env=wide).output

    config = tmp_path / "train.yaml"
    config.write_text("model: tiny\nmax_steps: 2\nbudget_range: [64, 128]\nlr: 0.001\nhead_lr: 0.01\n")
    run = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "train",
            str(small_shards),
            "--out",
            str(run),
            "--config",
            str(config),
            "--no-progress",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["completed"] and summary["step"] == 2 and (run / "model.safetensors").is_file()

    result = runner.invoke(
        app,
        [
            "select",
            str(run),
            str(synthetic_manifest),
            "--out",
            str(tmp_path / "sel"),
            "-k",
            "3",
            "--no-progress",
            "--device",
            "cpu",
            "--limit",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "sel" / "frame_indices.jsonl").read_text().splitlines()
    assert lines and all(len(json.loads(x)["index"]) == 3 for x in lines)


def test_bench_help_and_tiny_cpu_sweep(tmp_path):
    """The GPU bench's CPU path: every setting of a sweep is measured, a kernel that cannot run here
    (cuDNN attention on a CPU) is reported as that setting's failure and the run goes on."""
    script = REPO / "bench" / "selector_gpu.py"
    help_out = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, check=True
    )
    for flag in ("--tiny", "--sweep", "--compile", "--sdpa-backend", "--accum", "--questions"):
        assert flag in help_out.stdout
    out_json = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, str(script), "--tiny", "--compile", "both", "--sdpa-backend", "auto", "cudnn",
         "--accum", "2", "--json", str(out_json)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    print(run.stdout)
    for word in ("matmul", "score", "FLOP floor", "questions/video", "train", "ckpt=off", "ckpt=on", "compile=on",
                 "MFU", "goal"):
        assert word in run.stdout
    report = json.loads(out_json.read_text())
    scores = report["score"]
    assert [(s["compile"], s["sdpa_backend"]) for s in scores] == [
        (False, "auto"), (False, "cudnn"), (True, "auto"), (True, "cudnn")
    ]
    for s in scores:
        if s["sdpa_backend"] == "cudnn":  # eager names the kernel; compiled wraps it in a tracing error
            assert s["error"] and ("scaled_dot_product_attention" in s["error"] or s["compile"])
        else:
            assert "error" not in s and s["lm_tokens"] > 0 and s["floor_s"] > 0 and s["total_s"] > 0
            assert s["latency_over_floor"] == pytest.approx(s["total_s"] / s["floor_s"])
            assert s["questions"] == 4 and s["batched_s_per_question"] > 0 and s["single_s_per_question"] > 0
    trains = report["train"]
    assert len(trains) == 8 and all(t["accum"] == 2 for t in trains)
    ok = [t for t in trains if "error" not in t]
    assert {(t["gradient_checkpointing"], t["compile"]) for t in ok} == {
        (False, False), (True, False), (False, True), (True, True)
    }
    assert all(t["samples_per_s"] > 0 and t["sdpa_backend"] == "auto" for t in ok)
    assert all(t.get("error") for t in trains if t["sdpa_backend"] == "cudnn")
    best = max(ok, key=lambda t: t["mfu_vs_measured_matmul"])
    assert report["goals"]["train"]["mfu"] == best["mfu_vs_measured_matmul"]
    assert report["goals"]["train"]["met"] == (best["mfu_vs_measured_matmul"] >= 0.55)


def test_bench_requires_cuda_without_tiny():
    torch = require("torch", "train")

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the full bench would run")
    run = subprocess.run(
        [sys.executable, str(REPO / "bench" / "selector_gpu.py"), "--skip-train"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and "CUDA is required" in run.stderr
