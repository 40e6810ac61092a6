"""The annotation fingerprint: what decides a record's content is in it, where and how fast it runs is not."""

from __future__ import annotations

import json
import shutil

import pytest

import vidthinker
from vidthinker.config import AnnotateSettings, ModelSettings, VideoSettings, load_settings
from vidthinker.fingerprint import EXCLUDED, annotation_fingerprint, fingerprint_inputs
from vidthinker.prompts import prompts_dir

OPENAI = ["models.backend=openai", "models.caption_model=Qwen/Qwen2.5-VL-7B-Instruct"]


def fp(*sets: str) -> str:
    return annotation_fingerprint(load_settings(None, list(sets)))


def test_equal_settings_give_the_same_short_hex_fingerprint():
    first = fp(*OPENAI)
    assert first == fp(*OPENAI) == fp(*reversed(OPENAI))
    assert len(first) == 16 and int(first, 16) >= 0
    # the defaults spelled out are the defaults
    assert fp() == fp("video.clip_seconds=5", "annotate.caption_mode=shared", "models.offline_llm=smollm2")


@pytest.mark.parametrize("change", [
    "models.caption_model=other/vlm",
    "models.retrieval_model=other/llm",
    "models.embedder=google/siglip-so400m-patch14-384",
    "models.structured_output=json_object",
    "models.backend=offline",
    "annotate.caption_mode=per_question",
    "annotate.oracle_captions=true",
    "annotate.use_answer=false",
    "annotate.frames_per_clip=8",
    "annotate.clip_as_video=true",
    "annotate.semantic_threshold=0.8",
    "annotate.uniform_frames=6",
    "annotate.verify_frames=true",
    "video.clip_seconds=4",
    "video.grid_fps=2",
    "video.request_max_side=336",
    "video.jpeg_quality=70",
    "video.decode_backend=pyav",
])
def test_a_content_setting_changes_the_fingerprint(change):
    assert fp(*OPENAI, change) != fp(*OPENAI)


def test_the_offline_llm_counts_for_the_offline_backend():
    assert fp("models.offline_llm=other-gguf") != fp()


@pytest.mark.parametrize("change", [
    "models.base_url=http://elsewhere:9000/v1",
    "models.max_in_flight=3",
    "models.timeout_s=5",
    "models.max_retries=0",
    "annotate.videos_in_flight=7",
    "annotate.cache_dir=/tmp/other-cache",
    "video.decode_timeout_s=9",
    "video.isolate_decode=false",
    "engine.shard_size=5",
    "engine.workers=4",
    "engine.name=ray",
    "engine.ray_address=10.0.0.5:6379",
    "engine.shard_prefix=nightly",
    "engine.redo_stale=true",
    "synth.videos=3",
])
def test_where_and_how_fast_it_runs_does_not_change_it(change):
    assert fp(*OPENAI, change) == fp(*OPENAI)


def test_no_endpoint_or_api_key_goes_in(monkeypatch):
    monkeypatch.setenv("VIDTHINKER_API_KEY", "sk-secret-do-not-write")
    settings = load_settings(None, [*OPENAI, "models.base_url=http://user:pw@vllm-host:8000/v1"])
    text = json.dumps(fingerprint_inputs(settings))
    assert "sk-secret" not in text and "vllm-host" not in text and "user:pw" not in text
    monkeypatch.delenv("VIDTHINKER_API_KEY")
    assert annotation_fingerprint(settings) == fp(*OPENAI)


def test_unused_model_names_do_not_count_and_defaults_are_resolved():
    assert fp("models.caption_model=other/vlm") == fp()  # offline: served models unused
    assert fp(*OPENAI, "models.offline_llm=other-gguf") == fp(*OPENAI)  # openai: the offline LLM unused
    # retrieval and verify models default to the caption model: unset == named explicitly
    assert fp(*OPENAI, "models.retrieval_model=Qwen/Qwen2.5-VL-7B-Instruct") == fp(*OPENAI)
    verify = [*OPENAI, "annotate.verify_frames=true"]
    assert fp(*verify, "models.verify_model=Qwen/Qwen2.5-VL-7B-Instruct") == fp(*verify)
    assert fp(*OPENAI, "models.verify_model=other/vlm") == fp(*OPENAI)  # no verification, no verify model
    assert fp(*verify, "models.verify_model=other/vlm") != fp(*verify)


def test_a_prompt_template_edit_changes_it(tmp_path, monkeypatch):
    before = fp(*OPENAI)
    inputs = fingerprint_inputs(load_settings(None, OPENAI))
    assert set(inputs["prompts"]) == {"caption_clip", "retrieve_clips"}
    copy = tmp_path / "prompts"
    shutil.copytree(prompts_dir(), copy)
    monkeypatch.setenv("VIDTHINKER_PROMPTS_DIR", str(copy))
    assert fp(*OPENAI) == before  # same templates elsewhere: same fingerprint
    (copy / "retrieve_clips.j2").write_text((copy / "retrieve_clips.j2").read_text() + "\nBe brief.\n")
    assert fp(*OPENAI) != before
    # the caption prompt does not count when stage 1 comes from the manifest (as in record provenance)
    oracle = fp(*OPENAI, "annotate.oracle_captions=true")
    (copy / "caption_clip.j2").write_text((copy / "caption_clip.j2").read_text() + "\nBe brief.\n")
    assert fp(*OPENAI, "annotate.oracle_captions=true") == oracle


def test_the_pipeline_version_counts(monkeypatch):
    before = fp()
    monkeypatch.setattr(vidthinker, "__version__", "99.0.0")
    assert fp() != before


def test_every_setting_is_classified():
    """A new models/annotate/video setting is in the fingerprint unless excluded: decide, then pin it here."""
    how = ("a setting was added or removed: if it decides what a record says keep it in the fingerprint and add "
           "it here; if it only says where or how fast the run goes, add it to vidthinker.fingerprint.EXCLUDED")
    inputs = fingerprint_inputs(load_settings(None, [*OPENAI, "annotate.verify_frames=true"]))
    assert set(inputs["models"]) == {"backend", "embedder", "structured_output", "caption_model", "retrieval_model",
                                     "verify_model"}, how
    assert set(inputs["annotate"]) == {
        "caption_mode", "oracle_captions", "use_answer", "frames_per_clip", "clip_as_video", "caption_max_chars",
        "caption_max_tokens", "semantic_threshold", "uniform_threshold", "uniform_frames", "verify_frames"}, how
    assert set(inputs["video"]) == {"clip_seconds", "grid_fps", "decode_backend", "request_max_side", "jpeg_quality"}, how
    assert set(inputs) == {"fingerprint_version", "pipeline_version", "schema_version", "models", "annotate", "video",
                           "prompts"}
    for section, model in (("models", ModelSettings), ("annotate", AnnotateSettings), ("video", VideoSettings)):
        assert EXCLUDED[section] <= set(model.model_fields), f"{section}: EXCLUDED names a setting that does not exist"
