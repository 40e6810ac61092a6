"""Stage 2 (vidthinker.stages.retrieve) with a scripted model: the prompt, and the clips it keeps."""

from __future__ import annotations

import asyncio

import pytest

from vidthinker.models import EndpointDown, ModelReplyError, Usage
from vidthinker.prompts import load_prompt
from vidthinker.schema import QAPair
from vidthinker.stages.retrieve import MISSING_CAPTION, RETRIEVAL_SCHEMA, RetrievalSettings, retrieve_clips

from .fake_chat import FakeChat, user_text

TEMPLATE = load_prompt("retrieve_clips")
QUESTION = QAPair(
    qa_id="q1", question="When does the red circle appear?", answer="at the very start, in clip 0"
)
CAPTIONS = {2: "a blue square slides right", 0: "a red circle appears", 1: ""}


def retrieve(model, captions=CAPTIONS, **settings):
    return asyncio.run(
        retrieve_clips(model, TEMPLATE, "vid-1", QUESTION, captions, RetrievalSettings(**settings))
    )


def reply(clips, kind="semantic_only", explanation="The red circle is in clip 0."):
    return {"explanation": explanation, "instruction_type": kind, "clips": clips}


def test_the_prompt_lists_the_clips_in_order_and_the_question_never_the_answer():
    model = FakeChat(reply([0]))
    retrieve(model, clip_seconds=4.0)
    (request,) = model.requests
    system, user = request.messages
    text = user_text(user)
    lines = [line for line in text.splitlines() if line.startswith("Clip-")]
    assert lines == [
        "Clip-0: a red circle appears",
        f"Clip-1: {MISSING_CAPTION}",
        "Clip-2: a blue square slides right",
    ]
    assert text.endswith("Question: When does the red circle appear?")
    assert "at the very start" not in text and "at the very start" not in system.content
    assert "clips of 4.0 seconds" in system.content


def test_the_request_is_structured_with_the_retrieval_settings():
    model = FakeChat(reply([0]))
    retrieve(model, temperature=0.2, top_p=0.5, max_tokens=77)
    request = model.requests[0]
    assert request.json_schema == RETRIEVAL_SCHEMA and request.schema_name == "clip_retrieval"
    assert (request.temperature, request.top_p, request.max_tokens) == (0.2, 0.5, 77)
    assert request.prompt_hash == TEMPLATE.hash


def test_one_clip():
    result = retrieve(FakeChat(reply([0])))
    assert (result.video_id, result.qa_id) == ("vid-1", "q1")
    assert result.clip_ids == [0] and result.instruction_type == "semantic_only"
    assert result.explanation == "The red circle is in clip 0."
    assert result.trace.model == "fake-llm" and result.trace.error is None and result.trace.usage.calls == 1


def test_several_clips_come_back_ascending_without_repeats():
    result = retrieve(FakeChat(reply([2, 0, 2], kind="no_clues", explanation="  all of it  ")))
    assert result.clip_ids == [0, 2] and result.instruction_type == "no_clues"
    assert result.explanation == "all of it"


def test_no_clip_is_a_valid_answer():
    result = retrieve(FakeChat(reply([], kind="motion_only")))
    assert result.clip_ids == [] and result.trace.error is None
    assert result.instruction_type == "motion_only"


def test_out_of_range_clip_ids_are_dropped_and_named_in_the_explanation():
    result = retrieve(FakeChat(reply([1, 7, 3, 7])))
    assert result.clip_ids == [1]
    assert result.explanation == "The red circle is in clip 0. [dropped clip ids not in the video: [3, 7]]"
    assert result.trace.error is None


def test_only_clips_that_were_offered_count():
    # a clip without a caption is not in the list the model saw, so its id is out of range
    result = retrieve(FakeChat(reply([0, 1])), captions={0: "a red circle appears"})
    assert result.clip_ids == [0] and result.explanation.endswith("[dropped clip ids not in the video: [1]]")


def test_an_unknown_instruction_type_is_left_empty():
    result = retrieve(FakeChat(reply([0], kind="something_else")))
    assert result.clip_ids == [0] and result.instruction_type is None


@pytest.mark.parametrize(
    "error, transient",
    [
        (
            ModelReplyError(
                "reply truncated: cut off at max_tokens=384", raw_text='{"clips": [0', usage=Usage(90, 384, 2)
            ),
            False,
        ),
        (EndpointDown("endpoint down: circuit open after 5 consecutive failures"), True),
    ],
)
def test_a_failed_call_is_kept_on_the_result_not_raised(error, transient):
    result = retrieve(FakeChat(error))
    assert result.clip_ids == [] and result.instruction_type is None and result.explanation == ""
    assert result.trace.error.startswith(f"{type(error).__name__}: {str(error).split(' [')[0]}")
    assert result.trace.transient is transient and result.trace.model == "fake-llm"
    assert result.trace.prompt_hash == TEMPLATE.hash
    if transient:
        assert result.trace.raw_output is None and result.trace.usage.calls == 0
    else:
        assert result.trace.raw_output == '{"clips": [0' and result.trace.usage.completion_tokens == 384
