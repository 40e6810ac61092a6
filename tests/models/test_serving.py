"""What the settings ask of the model server (vidthinker.serving), the `serve-args` command, and the
start-up check wired through the stage models (vidthinker.worker.stage_models)."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from vidthinker.config import load_settings
from vidthinker.models import EndpointMismatch
from vidthinker.serving import endpoint_needs, request_shapes, serve_limits


def test_shapes_follow_the_settings():
    s = load_settings(None, ["annotate.frames_per_clip=4", "models.qa_frames=32"])
    by_stage = {shape.stage.split(" ITG")[0]: shape for shape in request_shapes(s)}
    assert by_stage["stage 1 caption"].images == 4 and by_stage["stage 1 caption"].videos == 0
    assert by_stage["stage 2 retrieval"].images == 0
    assert by_stage["downstream QA"].images == 32
    video = request_shapes(load_settings(None, ["annotate.clip_as_video=true"]), qa=False)
    assert (video[0].images, video[0].videos) == (0, 1) and all(s.videos == 0 for s in video[1:])
    oracle = request_shapes(load_settings(None, ["annotate.oracle_captions=true"]), qa=False)
    assert [shape.stage for shape in oracle] == ["stage 2 retrieval"]
    # a clip has only clip_seconds * grid_fps frames to show, whatever frames_per_clip says
    few = request_shapes(load_settings(None, ["annotate.frames_per_clip=16", "video.grid_fps=1"]), qa=False)
    assert few[0].images == 5


def test_limits_and_needs():
    s = load_settings(None, ["annotate.verify_frames=true", "models.qa_frames=8", "annotate.frames_per_clip=2"])
    limits = serve_limits(s)
    assert limits.images == 8 and limits.videos == 0 and limits.max_model_len % 4096 == 0
    assert limits.max_model_len >= max(shape.context for shape in request_shapes(s))
    needs = endpoint_needs(request_shapes(s, qa=False), ["stage 1", "frame check"])
    assert needs["needed_images"] == 2 and needs["needed_videos"] == 0 and "stage 1" in needs["needed_context_why"]
    assert endpoint_needs(request_shapes(s, qa=False), ["nothing"]) == {}


def test_serve_args_command():
    from vidthinker.cli import app

    runner = CliRunner()
    done = runner.invoke(app, ["--set", "annotate.clip_as_video=true", "serve-args"])
    assert done.exit_code == 0, done.output
    flags = dict(line.split("=", 1) for line in done.stdout.splitlines() if line.startswith("--"))
    limits = serve_limits(load_settings(None, ["annotate.clip_as_video=true"]))
    assert json.loads(flags["--limit-mm-per-prompt"]) == {"image": limits.images, "video": 1}
    assert int(flags["--max-model-len"]) == limits.max_model_len
    env = runner.invoke(app, ["serve-args", "--env"])
    assert env.exit_code == 0 and "VLLM_MAX_IMAGES=32" in env.stdout and "VLLM_MAX_VIDEOS=0" in env.stdout


def test_stage_models_refuse_a_context_too_small(tmp_path, monkeypatch):
    from openai_stub import StubServer

    from vidthinker.worker.stage_models import open_stage_models

    monkeypatch.delenv("VIDTHINKER_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with StubServer(models=["vlm"], max_model_len=4096) as s:
        settings = load_settings(None, ["models.backend=openai", f"models.base_url={s.base_url}",
                                        "models.caption_model=vlm", "models.structured_output=json_schema"])

        async def open_models():
            async with open_stage_models(settings.models, tmp_path / "cache",
                                         shapes=request_shapes(settings, qa=False)):
                pass

        with pytest.raises(EndpointMismatch) as ei:
            asyncio.run(open_models())
        assert "max_model_len=4096" in str(ei.value) and "stage 1 caption" in str(ei.value)
        assert s.count == 0  # nothing sent to chat/completions
