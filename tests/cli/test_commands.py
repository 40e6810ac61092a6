"""The command line as a user meets it: help, exit codes, errors, and the files each command writes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

from typer.testing import CliRunner

from vidthinker.cli import app

runner = CliRunner()


def invoke(*args, **kw):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, **kw)


def flat(result) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def test_every_command_explains_itself():
    result = invoke("--help")
    assert result.exit_code == 0
    commands = ["synth", "probe", "plan", "annotate", "import", "export", "validate", "config", "demo"]
    for command in commands:
        assert command in result.output
        sub = invoke(command, "--help")
        assert sub.exit_code == 0 and "Usage" in sub.output


# What `vidthinker --help` and every command's start must not load: the library is imported inside the
# command that needs it (vidthinker/cli/__init__.py).
HEAVY_MODULES = ("torch", "av", "decord", "ray", "airflow", "streamlit", "pyarrow", "numpy", "eval.selectors",
                 "eval.predictions", "trainer.model", "vidthinker.quality.run", "vidthinker.schema")


def test_importing_the_cli_loads_no_library():
    probe = ("import sys, vidthinker.cli; heavy = " + repr(HEAVY_MODULES) + "; print(sorted({m for m in sys.modules "
             "for h in heavy if m == h or m.startswith(h + '.')}))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"`import vidthinker.cli` loads {done.stdout.strip()}"


def test_config_show_reflects_env_and_set(monkeypatch):
    monkeypatch.setenv("VIDTHINKER_VIDEO__JPEG_QUALITY", "70")
    result = invoke("--set", "video.clip_seconds=10", "config", "show")
    data = json.loads(result.output)
    assert data["video"]["clip_seconds"] == 10 and data["video"]["jpeg_quality"] == 70


def test_bad_configuration_is_exit_2_with_the_key_named():
    result = runner.invoke(app, ["--set", "video.grid_fps=-3", "config", "show"])
    assert result.exit_code == 2
    assert "video.grid_fps" in flat(result) and "-3" in flat(result)


def test_synth_twice_gives_identical_manifests(tmp_path):
    for name in ("a", "b"):
        result = invoke("synth", "--out", tmp_path / name, "--videos", 2, "--seed", 5, "--max-seconds", 24, "--min-seconds", 20)
        assert result.exit_code == 0, result.output
    assert (tmp_path / "a/manifest.jsonl").read_bytes() == (tmp_path / "b/manifest.jsonl").read_bytes()


def test_plan_marks_a_broken_video_and_plans_the_rest(synthetic_set, tmp_path):
    rows = [json.loads(line) for line in synthetic_set.read_text().splitlines()]
    rows[0]["video"] = str(synthetic_set.parent / rows[0]["video"])
    rows[1]["video"] = str(tmp_path / "missing.mp4")
    rows = rows[:2]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = invoke("plan", "--manifest", manifest, "--out", tmp_path / "plans.parquet")
    assert result.exit_code == 0, result.output
    assert "planned 1/2 videos" in flat(result) and "VideoNotFound" in flat(result)
    check = invoke("validate", tmp_path / "plans.parquet", "--table", "ClipPlan")
    assert check.exit_code == 0 and "2 valid ClipPlan rows" in flat(check)


def test_validate_rejects_the_wrong_table(tmp_path, synthetic_set):
    invoke("plan", "--manifest", synthetic_set, "--out", tmp_path / "plans.parquet")
    result = runner.invoke(app, ["validate", str(tmp_path / "plans.parquet"), "--table", "VideoITGRecord"])
    assert result.exit_code == 1 and "columns do not match VideoITGRecord" in flat(result)


def test_import_and_export_round_trip(tmp_path):
    public = [{"id": "a", "video": "a.mp4", "question": "What?", "answer": "x", "frame_num": [3, 1], "clip_num": [0],
               "motion": "no", "existence": "yes"}]
    (tmp_path / "p.json").write_text(json.dumps(public))
    assert invoke("import", tmp_path / "p.json", "--format", "videoitg-json", "--out", tmp_path / "s/shard.parquet").exit_code == 0
    result = invoke("export", "--shards", tmp_path / "s", "--format", "videoitg-json", "--out", tmp_path / "out.json")
    assert result.exit_code == 0 and "exported 1 records" in flat(result)
    assert json.loads((tmp_path / "out.json").read_text()) == [{**public[0], "frame_num": [1, 3], "motion": "No", "existence": "Yes"}]


def test_missing_manifest_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["plan", "--manifest", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "p.parquet")])
    assert result.exit_code == 2 and "manifest not found" in flat(result)


def test_unreachable_endpoint_fails_fast_before_any_video_is_decoded(synthetic_set, tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = runner.invoke(app, ["--set", "models.max_retries=0", "annotate", "--manifest", str(synthetic_set),
                                 "--out", str(tmp_path / "run"), "--backend", "openai",
                                 "--base-url", f"http://127.0.0.1:{port}/v1", "--model", "m"])
    assert result.exit_code == 3, result.output
    assert f"127.0.0.1:{port}" in flat(result)
    assert not list((tmp_path / "run").glob("shards/*.parquet"))
