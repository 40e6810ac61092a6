"""The annotation pipeline end to end over a real HTTP server speaking the OpenAI API.

The server is the strict stub (it validates every request as the API would); its answers come from a
scripted "model" that reads the prompt it is sent, so the test knows what the right records are.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from pathlib import Path

import pytest

from tests.servers.openai_stub import StubServer
from vidthinker.worker.summary import summarise
from vidthinker.config import load_settings
from vidthinker.formats import read_manifest
from vidthinker.models.cache import CachedChatModel, RequestCache
from vidthinker.models.embedders import make_embedder
from vidthinker.models.openai_compat import OpenAICompatChat, OpenAIEndpoint
from vidthinker.pipeline import StageModels, VideoAnnotator, annotate_rows

COLOURS = {"red", "green", "blue", "yellow", "magenta", "cyan", "orange", "white", "purple", "pink"}
MOTION_WORDS = ("move", "direction", "travel", "way")


def _user_text(body) -> str:
    # the first user message is the prompt; a repair retry appends the bad reply and a correction
    content = next(m for m in body["messages"] if m["role"] == "user")["content"]
    if isinstance(content, str):
        return content
    return "\n".join(part["text"] for part in content if part["type"] == "text")


def scripted_model(body):
    """A deterministic stand-in for an LLM that follows the retrieval rules literally."""
    name = body["response_format"]["json_schema"]["name"]
    text = _user_text(body)
    if name == "clip_retrieval":
        question = text.rsplit("Question:", 1)[1].strip().lower()
        words = set(re.findall(r"[a-z]+", question))
        clues = words & (COLOURS | {"circle", "square", "triangle", "star", "hexagon", "diamond", "word"})
        motion = any(w in question for w in MOTION_WORDS)
        clips = []
        for line in text.splitlines():
            match = re.match(r"Clip-(\d+): (.*)", line)
            if match and clues and all(c in match.group(2).lower() for c in clues):
                clips.append(int(match.group(1)))
        kind = {(True, True): "semantic_motion", (True, False): "motion_only", (False, True): "semantic_only",
                (False, False): "no_clues"}[(motion, bool(clues))]
        return {"explanation": f"clips mentioning {sorted(clues)}", "instruction_type": kind, "clips": clips}
    if name == "clip_captions":
        ids = re.findall(r"Question (\S+):", text)
        assert ids == body["response_format"]["json_schema"]["schema"]["required"]
        return {i: {"caption": f"caption for {i}", "keywords": []} for i in ids}
    return None


@pytest.fixture(scope="module")
def embedder():
    return make_embedder("efficientnet-lite0")


@pytest.fixture
def server():
    with StubServer(models=["scripted"], api_key="sk-pipeline-SECRET") as stub:
        stub.state.responder = scripted_model
        yield stub


def make_models(server, embedder, cache_dir: Path, with_captioner=False) -> StageModels:
    chat = OpenAICompatChat(OpenAIEndpoint(base_url=server.base_url, model="scripted", api_key="sk-pipeline-SECRET",
                                           structured_output="json_schema", max_retries=1, backoff_initial_s=0.01))
    cached = CachedChatModel(chat, RequestCache(cache_dir))
    return StageModels(captioner=cached if with_captioner else None, retriever=cached, embedder=embedder)


def run(models, settings, rows):
    annotator = VideoAnnotator(models, settings, run_id="t", created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    return asyncio.run(annotate_rows(annotator, rows, videos_in_flight=2)), annotator


def test_oracle_captions_and_scripted_retrieval_give_ground_truth_clips(synthetic_set, server, embedder, tmp_path):
    rows = read_manifest(synthetic_set)
    settings = load_settings(None, ["annotate.oracle_captions=true"])
    records, annotator = run(make_models(server, embedder, tmp_path / "cache"), settings, rows)
    assert len(records) == sum(len(r.qa) for r in rows) and all(r.ok for r in records), [r.error for r in records if not r.ok]
    truth = {(row.video_id, qa.qa_id): qa.ground_truth for row in rows for qa in row.qa}
    checked = 0
    for record in records:
        gt = truth[(record.video_id, record.qa_id)]
        assert record.provenance.caption_model.startswith("oracle")
        assert record.retrieval.trace.model == "scripted" and record.retrieval.trace.prompt_hash
        if record.instruction_type == "semantic_motion":
            # all frames of the retrieved clips are kept
            assert record.localization.frame_ids == record.localization.candidate_frame_ids
        if record.instruction_type in ("motion_only", "no_clues"):
            assert record.localization.policy.endswith("uniform@0.97")
        if record.instruction_type == "semantic_only":
            assert set(record.frame_num) <= {f for c in record.clip_num for f in range(5 * c, 5 * c + 5)}
            assert set(record.frame_num) | set(record.localization.duplicate_frame_ids) == set(record.localization.candidate_frame_ids)
        if gt.instruction_type == record.instruction_type == "semantic_motion" and record.clip_num:
            assert set(record.clip_num) & set(gt.clip_ids)
            checked += 1
    assert checked >= 1
    # every request reached the server valid, and the retrieval prompt never contains an answer
    for request in server.requests:
        assert request["authorization"] == "Bearer sk-pipeline-SECRET"
    summary = summarise("t", records, 1.0, dict(annotator.clock.seconds))
    assert summary.stages["retrieve"].calls == len(records) and summary.errors == 0
    assert "SECRET" not in json.dumps([r.model_dump(mode="json") for r in records])


def test_a_rerun_pays_for_no_call_twice(synthetic_set, server, embedder, tmp_path):
    rows = read_manifest(synthetic_set)[:1]
    settings = load_settings(None, ["annotate.oracle_captions=true"])
    first, _ = run(make_models(server, embedder, tmp_path / "cache"), settings, rows)
    calls = server.count
    second, _ = run(make_models(server, embedder, tmp_path / "cache"), settings, rows)
    assert server.count == calls
    assert [r.frame_num for r in first] == [r.frame_num for r in second]
    assert all(r.retrieval.trace.usage.calls == 0 for r in second)


def test_shared_captioning_makes_one_call_per_clip(synthetic_set, server, embedder, tmp_path):
    rows = read_manifest(synthetic_set)[:1]
    settings = load_settings(None, ["annotate.caption_mode=shared", "annotate.frames_per_clip=2"])
    records, annotator = run(make_models(server, embedder, tmp_path / "cache", with_captioner=True), settings, rows)
    clips = len({c.clip_id for c in records[0].captions})
    caption_requests = [r for r in server.requests if r["body"]["response_format"]["json_schema"]["name"] == "clip_captions"]
    assert len(caption_requests) == clips
    # frames go as JPEG image parts before the question text
    parts = caption_requests[0]["body"]["messages"][1]["content"]
    assert [p["type"] for p in parts] == ["image_url", "image_url", "text"]
    assert all(r.ok for r in records)
    assert {c.caption for c in records[0].captions} == {f"caption for {records[0].qa_id}"}
    summary = summarise("t", records, 1.0, {})
    assert summary.stages["caption"].calls == clips


def test_one_broken_video_and_one_malformed_reply_become_error_records(synthetic_set, server, embedder, tmp_path):
    rows = read_manifest(synthetic_set)[:2]
    broken = tmp_path / "broken.mp4"
    data = Path(rows[1].video).read_bytes()
    broken.write_bytes(data[: len(data) // 3])
    rows[1] = rows[1].model_copy(update={"video": str(broken)})
    missing = rows[0].model_copy(update={"video_id": "gone", "video": str(tmp_path / "gone.mp4")})
    target = rows[0].qa[0].question

    def malformed_for_one_question(body):
        # this question always gets prose instead of JSON: the call and its repair retry both fail
        if body["response_format"]["json_schema"]["name"] == "clip_retrieval" and target in _user_text(body):
            return "Sure! The clips are one and two."
        return scripted_model(body)

    server.state.responder = malformed_for_one_question
    settings = load_settings(None, ["annotate.oracle_captions=true", "annotate.videos_in_flight=1"])
    records, _ = run(make_models(server, embedder, tmp_path / "cache"), settings, [rows[0], rows[1], missing])
    by_video = {}
    for record in records:
        by_video.setdefault(record.video_id, []).append(record)
    assert {r.error_stage for r in by_video[rows[1].video_id]} in ({"probe"}, {"decode"})
    assert all(r.error and r.frame_num == [] for r in by_video[rows[1].video_id])
    assert {r.error_stage for r in by_video["gone"]} == {"probe"}
    assert all("VideoNotFound" in r.error for r in by_video["gone"])
    good = by_video[rows[0].video_id]
    failed = [r for r in good if not r.ok]
    assert len(failed) == 1 and failed[0].qa_id == rows[0].qa[0].qa_id
    assert failed[0].error_stage == "retrieve" and "ModelReplyError" in failed[0].error
    assert failed[0].frame_num == [] and "Sure!" in failed[0].retrieval.trace.raw_output
    assert sum(r.ok for r in good) == len(good) - 1


def test_clips_can_go_as_one_video_part(synthetic_set, embedder, tmp_path):
    import av, base64, io

    rows = read_manifest(synthetic_set)[:1]
    settings = load_settings(None, ["annotate.caption_mode=shared", "annotate.clip_as_video=true"])
    with StubServer(models=["scripted"], api_key="sk-pipeline-SECRET", allow_video=True) as server:
        server.state.responder = scripted_model
        records, _ = run(make_models(server, embedder, tmp_path / "cache", with_captioner=True), settings, rows)
        requests = [r["body"] for r in server.requests if r["body"]["response_format"]["json_schema"]["name"] == "clip_captions"]
    assert all(r.ok for r in records) and requests
    # One request per clip, in arrival order; each carries the clip's 1-fps frames as one H.264 video.
    from vidthinker.video import grid_size, probe

    counts = []
    for body in requests:
        parts = body["messages"][1]["content"]
        assert [p["type"] for p in parts] == ["video_url", "text"]
        url = parts[0]["video_url"]["url"]
        assert url.startswith("data:video/mp4;base64,")
        with av.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as video:
            counts.append(sum(1 for _ in video.decode(video=0)))
    assert max(counts) == 5 and all(1 <= c <= 5 for c in counts)
    assert sum(counts) == grid_size(probe(rows[0].video))  # every grid frame, each in exactly one clip
