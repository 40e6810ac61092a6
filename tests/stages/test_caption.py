"""Stage 1 (vidthinker.stages.caption) with a scripted model: what it asks, and what it makes of the answer."""

from __future__ import annotations

import asyncio

import pytest

from vidthinker.models import ImagePart, ModelReplyError, ModelTimeout, TextPart, Usage, VideoPart
from vidthinker.prompts import load_prompt
from vidthinker.schema import QAPair
from vidthinker.stages.caption import (
    ORACLE_MODEL,
    CaptionSettings,
    ClipEvidence,
    caption_clip,
    oracle_captions,
    shared_schema,
    single_schema,
)

from .fake_chat import FakeChat, user_text

TEMPLATE = load_prompt("caption_clip")
DOG = QAPair(qa_id="q-dog", question="What colour is the dog?", answer="brown")
CAR = QAPair(qa_id="q-car", question="Which way does the car drive?", answer="left")
FRAMES = ClipEvidence(
    clip_id=2, start_s=10.0, end_s=15.0, images=("data:image/jpeg;base64,AAA", "data:image/jpeg;base64,BBB")
)
REPORT = ClipEvidence(clip_id=1, start_s=5.0, end_s=10.0, description="a brown dog on grass")


def caption(model, evidence, questions, **settings):
    return asyncio.run(
        caption_clip(model, TEMPLATE, "vid-1", evidence, questions, CaptionSettings(**settings))
    )


def test_the_prompt_carries_the_question_and_the_answer_as_a_hint():
    model = FakeChat({"caption": "A brown dog runs.", "keywords": ["dog"]})
    caption(model, REPORT, [DOG])
    (request,) = model.requests
    system, user = request.messages
    assert system.role == "system" and user.role == "user"
    text = user_text(user)
    assert "Question q-dog: What colour is the dog?" in text
    assert 'The answer is "brown"' in text
    assert "a brown dog on grass" in text and "Clip 1 (5.0-10.0 s)" in text  # the text-only report


def test_without_use_answer_the_answer_stays_out_of_the_prompt():
    model = FakeChat({"caption": "A dog.", "keywords": []})
    caption(model, REPORT, [DOG], use_answer=False)
    text = user_text(model.requests[0].messages[1])
    assert "What colour is the dog?" in text and 'brown"' not in text and "The answer is" not in text


def test_the_request_asks_for_the_single_caption_schema_with_the_settings():
    model = FakeChat({"caption": "x", "keywords": []})
    caption(model, REPORT, [DOG], max_tokens=99, max_chars=120, temperature=0.3)
    request = model.requests[0]
    assert request.json_schema == single_schema(120) and request.schema_name == "clip_caption"
    assert request.json_schema["properties"]["caption"]["maxLength"] == 120
    assert request.max_tokens == 99 and request.temperature == 0.3 and request.prompt_hash == TEMPLATE.hash


def test_frames_come_first_then_the_text_and_a_text_only_clip_is_plain_text():
    model = FakeChat({"caption": "x", "keywords": []})
    caption(model, FRAMES, [DOG], image_detail="low")
    content = model.requests[0].messages[1].content
    assert content[:2] == (
        ImagePart("data:image/jpeg;base64,AAA", "low"),
        ImagePart("data:image/jpeg;base64,BBB", "low"),
    )
    assert isinstance(content[2], TextPart) and len(content) == 3
    caption(model, REPORT, [DOG])
    assert isinstance(model.requests[1].messages[1].content, str)  # text-only servers reject part lists


def test_a_clip_video_is_sent_as_one_video_part():
    model = FakeChat({"caption": "x", "keywords": []})
    evidence = ClipEvidence(clip_id=0, start_s=0.0, end_s=5.0, video="data:video/mp4;base64,VVV")
    caption(model, evidence, [DOG])
    content = model.requests[0].messages[1].content
    assert content[0] == VideoPart(url="data:video/mp4;base64,VVV") and isinstance(content[1], TextPart)


def test_the_reply_becomes_one_caption_per_question_with_its_trace():
    model = FakeChat(
        {"caption": "  A brown dog runs.  ", "keywords": ["dog", "grass"]},
        {"caption": "A red car drives left.", "keywords": ["car", "a", "b", "c", "d", "e"]},
    )
    dog, car = caption(model, FRAMES, [DOG, CAR])
    assert len(model.requests) == 2  # not shared: one call per question
    assert (dog.video_id, dog.qa_id, dog.clip_id) == ("vid-1", "q-dog", 2)
    assert dog.caption == "A brown dog runs." and dog.keywords == ["dog", "grass"]
    assert car.qa_id == "q-car" and car.keywords == ["car", "a", "b", "c", "d"]  # at most five
    assert (
        dog.trace.model == "fake-llm" and dog.trace.prompt_hash == TEMPLATE.hash and dog.trace.error is None
    )
    assert (
        dog.trace.raw_output == '{"caption": "  A brown dog runs.  ", "keywords": ["dog", "grass"]}'
    )  # verbatim
    assert (dog.trace.usage.prompt_tokens, dog.trace.usage.completion_tokens, dog.trace.usage.calls) == (
        120,
        30,
        1,
    )


def test_a_malformed_reply_becomes_a_caption_with_the_reply_error():
    error = ModelReplyError(
        "reply is not valid JSON for schema 'clip_caption' after one repair retry: Expecting value",
        raw_text="not json",
        usage=Usage(50, 7, 2),
        model="fake-llm",
    )
    (result,) = caption(FakeChat(error), FRAMES, [DOG])
    assert result.caption == "" and result.keywords == []
    assert result.trace.error.startswith("ModelReplyError: reply is not valid JSON for schema 'clip_caption'")
    assert result.trace.raw_output == "not json" and result.trace.usage.calls == 2
    assert result.trace.transient is False  # the reply's fault: a rerun gives the same


def test_an_endpoint_timeout_becomes_a_transient_caption_error():
    (result,) = caption(
        FakeChat(ModelTimeout("gave up after 5 attempt(s): no reply within 120s")), FRAMES, [DOG]
    )
    assert result.caption == "" and result.trace.error.startswith("ModelTimeout: gave up after 5 attempt(s)")
    assert (
        result.trace.transient is True
        and result.trace.raw_output is None
        and result.trace.model == "fake-llm"
    )


def test_shared_captions_all_questions_in_one_call_keyed_by_question_id():
    model = FakeChat(
        {"q-dog": {"caption": "A dog.", "keywords": ["dog"]}, "q-car": {"caption": "A car.", "keywords": []}}
    )
    dog, car = caption(model, FRAMES, [DOG, CAR], shared=True, max_tokens=100)
    (request,) = model.requests
    assert request.schema_name == "clip_captions" and request.json_schema == shared_schema([DOG, CAR], 240)
    assert request.json_schema["required"] == ["q-dog", "q-car"]
    assert request.max_tokens == 200
    text = user_text(request.messages[1])
    assert (
        "Question q-dog: What colour is the dog?" in text
        and "Question q-car: Which way does the car drive?" in text
    )
    assert (dog.caption, car.caption) == ("A dog.", "A car.")
    # the one call is booked once, on the first question
    assert dog.trace.usage.calls == 1 and dog.trace.usage.prompt_tokens == 120
    assert (
        car.trace.usage.calls == 0
        and car.trace.usage.prompt_tokens == 0
        and car.trace.usage.completion_tokens == 0
    )


def test_shared_reply_without_a_question_is_that_questions_error():
    model = FakeChat({"q-dog": {"caption": "A dog.", "keywords": []}, "q-car": "not an object"})
    dog, car = caption(model, FRAMES, [DOG, CAR], shared=True)
    assert dog.trace.error is None and dog.caption == "A dog."
    assert car.caption == "" and car.trace.error == "ModelReplyError: reply has no caption for qa_id 'q-car'"


def test_shared_call_failure_gives_every_question_the_error():
    dog, car = caption(FakeChat(ModelTimeout("no reply")), FRAMES, [DOG, CAR], shared=True)
    assert dog.trace.error == car.trace.error and dog.trace.error.startswith("ModelTimeout: no reply")


def test_shared_with_one_question_is_a_single_call():
    model = FakeChat({"caption": "A dog.", "keywords": []})
    (dog,) = caption(model, FRAMES, [DOG], shared=True)
    assert model.requests[0].schema_name == "clip_caption" and dog.caption == "A dog."


@pytest.mark.parametrize("descriptions", [["a red circle", "a blue square"], ["only the first clip"]])
def test_oracle_captions_use_the_known_descriptions(descriptions):
    captions = oracle_captions("vid-1", descriptions, [0, 1], [DOG, CAR])
    assert [(c.clip_id, c.qa_id) for c in captions] == [
        (0, "q-dog"),
        (0, "q-car"),
        (1, "q-dog"),
        (1, "q-car"),
    ]
    assert all(c.trace.model == ORACLE_MODEL for c in captions)
    assert captions[0].caption == descriptions[0] and captions[0].trace.error is None
    if len(descriptions) == 1:
        assert captions[2].caption == "" and captions[2].trace.error == "no oracle description for clip 1"
    else:
        assert captions[3].caption == "a blue square" and captions[3].trace.error is None
