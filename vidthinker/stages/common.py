"""What the stages share: turning a model reply or failure into a `StageTrace`."""

from __future__ import annotations

from vidthinker.models import ChatReply, ModelError, ModelReplyError
from vidthinker.redact import redact
from vidthinker.schema import StageTrace, Usage


def trace_from_reply(reply: ChatReply, prompt_hash: str) -> StageTrace:
    return StageTrace(
        model=reply.model,
        prompt_hash=prompt_hash,
        raw_output=reply.text,
        latency_s=reply.latency_s,
        usage=Usage(
            prompt_tokens=reply.usage.prompt_tokens,
            completion_tokens=reply.usage.completion_tokens,
            calls=reply.usage.calls,
        ),
    )


def trace_from_error(error: ModelError, model_id: str, prompt_hash: str) -> StageTrace:
    raw = error.raw_text if isinstance(error, ModelReplyError) else None
    usage = error.usage if isinstance(error, ModelReplyError) else None
    return StageTrace(
        model=model_id,
        prompt_hash=prompt_hash,
        raw_output=raw,
        usage=Usage(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens, calls=usage.calls)
        if usage
        else Usage(),
        error=redact(f"{type(error).__name__}: {error}"),
    ).with_transient(getattr(error, "transient", False))  # the record's error_class (vidthinker.pipeline)
