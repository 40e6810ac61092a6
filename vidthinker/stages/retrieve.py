"""Stage 2: reasoning-based clip retrieval over the chronological `Clip-i: caption` list.

The LLM sees the question (never the answer) and the clips in time order, follows the paper's rules
(time words follow clip order; whole-video questions take all clips; no clue takes none; of several
similar clips only the first two) and explains itself. It also names the instruction type, which
decides how stage 3 samples frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from vidthinker.models import ChatModel, ChatRequest, Message, ModelError
from vidthinker.prompts import PromptTemplate
from vidthinker.schema import ClipRetrieval, InstructionType, QAPair
from vidthinker.stages.common import trace_from_error, trace_from_reply

RETRIEVAL_SCHEMA = {
    "type": "object",
    "properties": {
        "explanation": {"type": "string", "maxLength": 600},
        "instruction_type": {"type": "string", "enum": [t.value for t in InstructionType]},
        "clips": {"type": "array", "items": {"type": "integer", "minimum": 0}},
    },
    "required": ["explanation", "instruction_type", "clips"],
    "additionalProperties": False,
}

MISSING_CAPTION = "(no description available)"


@dataclass(frozen=True)
class RetrievalSettings:
    clip_seconds: float = 5.0
    # The paper's settings for gpt-4o-mini: deterministic, narrow nucleus.
    temperature: float = 0.0
    top_p: float = 0.1
    max_tokens: int = 384


async def retrieve_clips(
    model: ChatModel,
    template: PromptTemplate,
    video_id: str,
    question: QAPair,
    captions: Mapping[int, str],
    settings: RetrievalSettings,
) -> ClipRetrieval:
    """The clips (ascending ids) that answer `question`; errors are kept on the result, not raised."""
    clip_ids = sorted(captions)
    system, user = template.render(
        clip_seconds=settings.clip_seconds,
        clips=[{"clip_id": i, "caption": captions[i] or MISSING_CAPTION} for i in clip_ids],
        question=question.question,
    )
    request = ChatRequest(
        messages=(Message.system(system), Message.user(user)),
        json_schema=RETRIEVAL_SCHEMA,
        schema_name="clip_retrieval",
        temperature=settings.temperature,
        top_p=settings.top_p,
        max_tokens=settings.max_tokens,
        prompt_hash=template.hash,
    )
    try:
        reply = await model.chat(request)
    except ModelError as error:
        return ClipRetrieval(video_id=video_id, qa_id=question.qa_id, trace=trace_from_error(error, model.model_id, template.hash))
    parsed = reply.parsed or {}
    trace = trace_from_reply(reply, template.hash)
    valid = set(clip_ids)
    asked = [int(c) for c in parsed.get("clips", []) if isinstance(c, int | float)]
    chosen = sorted({c for c in asked if c in valid})
    unknown = sorted({c for c in asked if c not in valid})
    kind = parsed.get("instruction_type")
    explanation = str(parsed.get("explanation", "")).strip()
    if unknown:
        # Out-of-range ids are dropped but kept visible: they are a sign of a confused model.
        explanation += f" [dropped clip ids not in the video: {unknown}]"
    return ClipRetrieval(
        video_id=video_id,
        qa_id=question.qa_id,
        clip_ids=chosen,
        explanation=explanation,
        instruction_type=InstructionType(kind) if kind in InstructionType._value2member_map_ else None,
        trace=trace,
    )
