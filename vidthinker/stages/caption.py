"""Stage 1: an instruction-conditioned caption (and keywords) of every clip, for every question.

The clip's evidence (frames as JPEG data URLs, or offline a factual report of what an image network
saw) is put first in the prompt and is identical for all questions of a video, so vLLM's prefix
cache reuses it. `shared=True` captions a clip for all questions of a video in one call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from vidthinker.models import ChatModel, ChatRequest, ImagePart, Message, ModelError, TextPart, VideoPart
from vidthinker.prompts import PromptTemplate
from vidthinker.schema import ClipCaption, QAPair, StageTrace
from vidthinker.stages.common import trace_from_error, trace_from_reply

ORACLE_MODEL = "oracle:ground-truth-descriptions"

# Length caps are part of the schema so grammar-constrained decoders enforce them: small models
# otherwise ramble until max_tokens and the JSON is cut off.
def caption_properties(max_chars: int) -> dict:
    return {
        "caption": {"type": "string", "minLength": 1, "maxLength": max_chars},
        "keywords": {"type": "array", "items": {"type": "string", "maxLength": 24}, "maxItems": 3},
    }


def single_schema(max_chars: int) -> dict:
    return {"type": "object", "properties": caption_properties(max_chars), "required": ["caption", "keywords"], "additionalProperties": False}


def shared_schema(questions: Sequence[QAPair], max_chars: int) -> dict:
    """One required key per question id, in order: grammar-constrained decoders (vLLM, llama.cpp) then
    cannot skip, rename or reorder a question, which weak models otherwise do."""
    return {
        "type": "object",
        "properties": {q.qa_id: single_schema(max_chars) for q in questions},
        "required": [q.qa_id for q in questions],
        "additionalProperties": False,
    }


@dataclass(frozen=True)
class ClipEvidence:
    """What stage 1 may look at for one clip: frames, or a text report when the model is text-only."""

    clip_id: int
    start_s: float
    end_s: float
    images: tuple[str, ...] = ()
    description: str | None = None
    video: str | None = None  # the clip as one video (data URL), for models that take video


@dataclass(frozen=True)
class CaptionSettings:
    use_answer: bool = True
    shared: bool = False
    clip_seconds: float = 5.0
    max_tokens: int = 168
    max_chars: int = 240
    temperature: float = 0.0
    image_detail: str | None = None


def _messages(template: PromptTemplate, evidence: ClipEvidence, questions: Sequence[QAPair], settings: CaptionSettings) -> tuple[Message, ...]:
    system, user = template.render(
        clip_id=evidence.clip_id,
        start_s=evidence.start_s,
        end_s=evidence.end_s,
        clip_seconds=settings.clip_seconds,
        has_images=bool(evidence.images or evidence.video),
        description=evidence.description or "",
        questions=list(questions),
        use_answer=settings.use_answer,
    )
    if evidence.video:
        return (Message.system(system), Message("user", (VideoPart(url=evidence.video), TextPart(user))))
    if not evidence.images:
        # Plain string content: text-only servers (llama.cpp) reject a list of content parts.
        return (Message.system(system), Message.user(user))
    parts = [ImagePart(url, detail=settings.image_detail) for url in evidence.images]
    return (Message.system(system), Message("user", (*parts, TextPart(user))))


def _caption(video_id: str, qa_id: str, clip_id: int, trace: StageTrace, parsed: dict | None = None) -> ClipCaption:
    parsed = parsed or {}
    return ClipCaption(
        video_id=video_id,
        qa_id=qa_id,
        clip_id=clip_id,
        caption=str(parsed.get("caption", "")).strip(),
        keywords=[str(k) for k in parsed.get("keywords", [])][:5],
        trace=trace,
    )


async def caption_clip(
    model: ChatModel,
    template: PromptTemplate,
    video_id: str,
    evidence: ClipEvidence,
    questions: Sequence[QAPair],
    settings: CaptionSettings,
) -> list[ClipCaption]:
    """Captions of one clip for each question; a failed call becomes captions with an error, not an exception."""
    if settings.shared and len(questions) > 1:
        return await _caption_shared(model, template, video_id, evidence, questions, settings)
    return list(
        await asyncio.gather(*(_caption_one(model, template, video_id, evidence, q, settings) for q in questions))
    )


async def _caption_one(model, template, video_id, evidence, question, settings) -> ClipCaption:
    request = ChatRequest(
        messages=_messages(template, evidence, [question], settings),
        json_schema=single_schema(settings.max_chars),
        schema_name="clip_caption",
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        prompt_hash=template.hash,
    )
    try:
        reply = await model.chat(request)
    except ModelError as error:
        return _caption(video_id, question.qa_id, evidence.clip_id, trace_from_error(error, model.model_id, template.hash))
    return _caption(video_id, question.qa_id, evidence.clip_id, trace_from_reply(reply, template.hash), reply.parsed)


async def _caption_shared(model, template, video_id, evidence, questions, settings) -> list[ClipCaption]:
    request = ChatRequest(
        messages=_messages(template, evidence, questions, settings),
        json_schema=shared_schema(questions, settings.max_chars),
        schema_name="clip_captions",
        temperature=settings.temperature,
        max_tokens=settings.max_tokens * len(questions),
        prompt_hash=template.hash,
    )
    try:
        reply = await model.chat(request)
    except ModelError as error:
        trace = trace_from_error(error, model.model_id, template.hash)
        return [_caption(video_id, q.qa_id, evidence.clip_id, trace) for q in questions]
    by_id = reply.parsed or {}
    trace = trace_from_reply(reply, template.hash)
    # The call's cost is booked once, on the first question, so per-stage sums stay true.
    free = trace.model_copy(update={"usage": trace.usage.model_copy(update={"calls": 0, "prompt_tokens": 0, "completion_tokens": 0})})
    captions = []
    for index, question in enumerate(questions):
        item_trace = trace if index == 0 else free
        item = by_id.get(question.qa_id)
        if not isinstance(item, dict):
            item_trace = item_trace.model_copy(update={"error": f"ModelReplyError: reply has no caption for qa_id {question.qa_id!r}"})
            item = None
        captions.append(_caption(video_id, question.qa_id, evidence.clip_id, item_trace, item))
    return captions


def oracle_captions(video_id: str, descriptions: Sequence[str], clip_ids: Sequence[int], questions: Sequence[QAPair]) -> list[ClipCaption]:
    """Stage 1 replaced by known clip descriptions (synthetic sets), to measure stages 2-3 on their own."""
    captions = []
    for clip_id in clip_ids:
        text = descriptions[clip_id] if clip_id < len(descriptions) else ""
        for question in questions:
            trace = StageTrace(model=ORACLE_MODEL, error=None if text else f"no oracle description for clip {clip_id}")
            captions.append(ClipCaption(video_id=video_id, qa_id=question.qa_id, clip_id=clip_id, caption=text, trace=trace))
    return captions
