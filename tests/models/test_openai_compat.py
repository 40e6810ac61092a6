"""OpenAICompatChat against the strict stub server (a real HTTP server on loopback)."""

from __future__ import annotations

import asyncio
import logging
import time

import jsonschema
import pytest
from pydantic import SecretStr

from vidthinker.models import (
    ChatModel,
    ChatRequest,
    ImagePart,
    Message,
    ModelError,
    ModelHTTPError,
    ModelReplyError,
    ModelTimeout,
    ModelUnavailable,
    TextPart,
    Usage,
    VideoPart,
)
from vidthinker.models.openai_compat import OpenAICompatChat, OpenAIEndpoint

from .helpers import free_port, make_jpeg

KEY = "sk-test-SECRET-0123456789"
SCHEMA = {
    "type": "object",
    "properties": {
        "clips": {"type": "array", "items": {"type": "integer"}},
        "explanation": {"type": "string"},
    },
    "required": ["clips", "explanation"],
    "additionalProperties": False,
}


def endpoint(stub, **kw) -> OpenAIEndpoint:
    args: dict = {
        "base_url": stub.base_url,
        "model": "stub-model",
        "api_key": KEY,
        "timeout_s": 2.0,
        "max_retries": 3,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
    }
    args.update(kw)
    return OpenAIEndpoint(**args)


def schema_request(**kw) -> ChatRequest:
    return ChatRequest(
        messages=(Message.system("You pick clips."), Message.user("Which clips show a dog?")),
        json_schema=SCHEMA,
        schema_name="clip_retrieval",
        **kw,
    )


def run(coro_fn, ep: OpenAIEndpoint):
    async def main():
        async with OpenAICompatChat(ep) as model:
            return await coro_fn(model)

    return asyncio.run(main())


# --------------------------------------------------------------------------- start-up check
def test_is_a_chat_model(stub):
    assert isinstance(OpenAICompatChat(endpoint(stub)), ChatModel)


@pytest.mark.parametrize("dialect", ["json_schema", "json_object"])
def test_check_passes_and_detects_dialect(stub, dialect):
    stub.state.dialect = dialect

    async def go(m):
        await m.check()
        return m.dialect

    assert run(go, endpoint(stub)) == dialect


def test_check_unknown_model_lists_served(stub):
    with pytest.raises(ModelUnavailable) as ei:
        run(lambda m: m.check(), endpoint(stub, model="nope"))
    msg = str(ei.value)
    assert "'nope'" in msg and "stub-model" in msg and "other-model" in msg and stub.base_url in msg


def test_check_wrong_key_is_unavailable_and_redacted(stub):
    wrong = "sk-wrong-key-ABCDEFG"
    with pytest.raises(ModelUnavailable) as ei:
        run(lambda m: m.check(), endpoint(stub, api_key=wrong))
    assert "authentication" in str(ei.value) and wrong not in str(ei.value)


def test_check_closed_port_is_retried_then_unavailable():
    ep = OpenAIEndpoint(base_url=f"http://127.0.0.1:{free_port()}/v1", model="m", api_key=KEY,
                        max_retries=2, backoff_initial_s=0.01, backoff_max_s=0.02)

    async def go(m):
        with pytest.raises(ModelUnavailable, match="unreachable: gave up after 3 attempt") as ei:
            await m.check()
        return m, ei.value

    m, error = run(go, ep)
    assert m.http_attempts == 3 and "\n" not in str(error)


# --------------------------------------------------------------------------- happy path
def test_schema_request_parsed_and_counted(stub):
    async def go(m):
        r1 = await m.chat(schema_request(seed=7))
        r2 = await m.chat(ChatRequest(messages=(Message.user("hi"),), max_tokens=16))
        return m, r1, r2

    m, r1, r2 = run(go, endpoint(stub, structured_output="json_schema"))
    jsonschema.validate(r1.parsed, SCHEMA)
    assert r1.usage.calls == 1 and r1.usage.prompt_tokens > 0 and r1.usage.completion_tokens > 0
    assert r1.attempts == 1 and r1.model == "stub-model" and r1.latency_s > 0
    assert r2.parsed is None and r2.text == "stub reply"
    assert m.usage == r1.usage + r2.usage and m.usage.calls == 2
    body = stub.requests[0]["body"]
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "clip_retrieval", "schema": SCHEMA, "strict": True},
    }
    assert body["seed"] == 7 and body["temperature"] == 0.0 and body["max_tokens"] == 512
    assert "response_format" not in stub.requests[1]["body"]


def test_json_object_dialect_body(stub):
    stub.state.dialect = "json_object"
    reply = run(lambda m: m.chat(schema_request()), endpoint(stub, structured_output="json_object"))
    jsonschema.validate(reply.parsed, SCHEMA)
    assert stub.requests[0]["body"]["response_format"] == {"type": "json_object", "schema": SCHEMA}


def test_auto_dialect_probes_once(stub):
    stub.state.dialect = "json_object"

    async def go(m):
        await asyncio.gather(*(m.chat(schema_request()) for _ in range(4)))
        return m.dialect

    assert run(go, endpoint(stub)) == "json_object"
    kinds = [r["body"].get("response_format", {}).get("type") for r in stub.requests]
    assert kinds.count("json_schema") == 1  # the single failed probe
    assert stub.count == 1 + 1 + 4  # json_schema probe, json_object probe, 4 requests


def test_image_and_video_parts_pass_validation(stub):
    stub.state.allow_video = True
    jpegs = [make_jpeg(i) for i in range(3)]
    req = ChatRequest(
        messages=(
            Message.system("Describe."),
            Message.user(
                TextPart("Clip 0:"),
                ImagePart.from_jpeg(jpegs[0], detail="low"),
                VideoPart(frames=tuple(ImagePart.from_jpeg(j).url for j in jpegs[1:])),
                VideoPart(url="https://example.invalid/v.mp4"),
            ),
        )
    )
    reply = run(lambda m: m.chat(req), endpoint(stub))
    assert reply.text == "stub reply"
    parts = stub.requests[0]["body"]["messages"][1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "image_url", "image_url", "video_url"]
    assert parts[1]["image_url"]["detail"] == "low"
    assert parts[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")


def test_bad_image_is_a_400_not_retried(stub):
    with pytest.raises(ValueError):
        ImagePart.from_jpeg(b"\x89PNG\r\n")
    req = ChatRequest(messages=(Message.user(ImagePart(url="data:image/jpeg;base64,AAAA")),))
    with pytest.raises(ModelHTTPError) as ei:
        run(lambda m: m.chat(req), endpoint(stub))
    assert ei.value.status_code == 400 and "JPEG" in str(ei.value)
    assert stub.count == 1


@pytest.mark.parametrize("change", [{"temperature": 3.0}, {"top_p": 1.5}])
def test_400_not_retried(stub, change):
    req = ChatRequest(messages=(Message.user("hi"),), **change)
    with pytest.raises(ModelHTTPError) as ei:
        run(lambda m: m.chat(req), endpoint(stub))
    assert ei.value.status_code == 400 and stub.count == 1


def test_unknown_model_in_chat_is_unavailable_not_retried(stub):
    with pytest.raises(ModelUnavailable, match="404"):
        run(lambda m: m.chat(ChatRequest(messages=(Message.user("hi"),))), endpoint(stub, model="gone"))
    assert stub.count == 1


# --------------------------------------------------------------------------- retries
@pytest.mark.parametrize(
    "kind,n,kw",
    [
        ("429", 2, {"retry_after": 0.05}),
        ("500", 2, {}),
        ("503", 1, {}),
        ("stall", 1, {"stall_s": 1.5}),
        ("drop", 2, {}),
        ("garbage", 1, {}),
    ],
)
def test_retries_recover(stub, kind, n, kw):
    stub.fail_next(kind, n, **kw)
    reply = run(
        lambda m: m.chat(schema_request()), endpoint(stub, timeout_s=0.5, structured_output="json_schema")
    )
    jsonschema.validate(reply.parsed, SCHEMA)
    assert reply.attempts == n + 1 and reply.usage.calls == 1


def test_retry_after_is_honoured(stub):
    stub.fail_next("429", 1, retry_after=0.4)
    t0 = time.perf_counter()
    reply = run(lambda m: m.chat(schema_request()), endpoint(stub, structured_output="json_schema"))
    assert reply.attempts == 2 and time.perf_counter() - t0 >= 0.4


@pytest.mark.parametrize(
    "kind,exc,kw",
    [
        ("500", ModelHTTPError, {}),
        ("429", ModelHTTPError, {"retry_after": 0}),
        ("stall", ModelTimeout, {"stall_s": 1.0}),
        ("drop", ModelError, {}),
    ],
)
def test_gives_up_after_max_retries(stub, kind, exc, kw):
    stub.fail_next(kind, -1, **kw)
    with pytest.raises(exc) as ei:
        run(
            lambda m: m.chat(schema_request()),
            endpoint(stub, max_retries=2, timeout_s=0.3, structured_output="json_schema"),
        )
    assert "gave up after 3 attempt(s)" in str(ei.value) and "stub-model" in str(ei.value)
    assert stub.count == 3


# --------------------------------------------------------------------------- repair retry
def test_repair_retry_fixes_one_malformed_reply(stub):
    stub.fail_next("malformed", 1)
    reply = run(lambda m: m.chat(schema_request()), endpoint(stub, structured_output="json_schema"))
    jsonschema.validate(reply.parsed, SCHEMA)
    assert reply.usage.calls == 2 and reply.attempts == 2
    msgs = stub.requests[1]["body"]["messages"]
    assert msgs[-2]["role"] == "assistant" and msgs[-2]["content"].startswith("Sure!")
    assert msgs[-1]["role"] == "user" and "not valid JSON" in msgs[-1]["content"]


def test_always_malformed_raises_reply_error_with_raw_text(stub):
    stub.fail_next("always_malformed")
    with pytest.raises(ModelReplyError) as ei:
        run(lambda m: m.chat(schema_request()), endpoint(stub, structured_output="json_schema"))
    e = ei.value
    assert e.raw_text.startswith("Sure!") and len(e.raw_texts) == 2 and e.usage.calls == 2
    assert stub.count == 2  # exactly one repair retry


def test_schema_violation_triggers_repair(stub):
    stub.fail_next("off_schema", 1)
    reply = run(lambda m: m.chat(schema_request()), endpoint(stub, structured_output="json_schema"))
    jsonschema.validate(reply.parsed, SCHEMA)
    assert reply.usage.calls == 2
    assert "schema violation" in stub.requests[1]["body"]["messages"][-1]["content"]


def test_refusal_is_reply_error(stub):
    stub.fail_next("refusal", 1)
    with pytest.raises(ModelReplyError, match="refused"):
        run(lambda m: m.chat(schema_request()), endpoint(stub, structured_output="json_schema"))


# --------------------------------------------------------------------------- concurrency
def test_in_flight_never_exceeds_max(stub):
    stub.state.latency_s = 0.05

    async def go(m):
        await asyncio.gather(*(m.chat(schema_request(seed=i)) for i in range(20)))
        return m

    m = run(go, endpoint(stub, max_in_flight=3, structured_output="json_schema"))
    assert stub.peak_concurrency == 3 and m.peak_in_flight == 3
    assert m.usage.calls == 20


def test_model_survives_two_event_loops(stub):
    model = OpenAICompatChat(endpoint(stub, structured_output="json_schema"))
    for _ in range(2):
        reply = asyncio.run(model.chat(schema_request()))
        assert reply.parsed is not None
    asyncio.run(model.aclose())


# --------------------------------------------------------------------------- secrets
def test_key_sent_as_bearer_and_never_leaked(stub, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("VIDTHINKER_API_KEY", KEY)
    ep = OpenAIEndpoint(
        base_url=stub.base_url, model="stub-model", timeout_s=0.3, max_retries=1, backoff_initial_s=0.01
    )
    assert ep.api_key is not None and ep.api_key.get_secret_value() == KEY
    texts = [repr(ep), str(ep), ep.model_dump_json(), str(ep.model_dump())]

    async def go(m):
        texts.append(repr(m))
        await m.check()
        await m.chat(schema_request())
        for kind, kw in (("500", {}), ("stall", {"stall_s": 0.6}), ("drop", {}), ("always_malformed", {})):
            stub.reset()
            stub.fail_next(kind, -1, **kw)
            with pytest.raises(ModelError) as ei:
                await m.chat(schema_request())
            texts.extend([str(ei.value), repr(ei.value), str(ei.value.__cause__)])
        stub.reset()
        return m

    run(go, ep)
    assert all(r["authorization"] == f"Bearer {KEY}" for r in stub.requests)
    # a wrong key the server echoes back (as the real API does) is redacted too
    bad = "sk-other-SECRET-999"
    with pytest.raises(ModelUnavailable) as ei:
        run(lambda m: m.chat(schema_request()), ep.model_copy(update={"api_key": SecretStr(bad)}))
    texts += [str(ei.value), repr(ei.value)]
    joined = "\n".join(texts) + caplog.text + "\n".join(str(r.__dict__) for r in caplog.records)
    assert caplog.records  # retries were logged
    assert KEY not in joined and bad not in joined


def test_env_key_fallback_order(monkeypatch):
    monkeypatch.delenv("VIDTHINKER_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    assert OpenAIEndpoint(model="m").api_key.get_secret_value() == "sk-openai"
    monkeypatch.setenv("VIDTHINKER_API_KEY", "sk-vt")
    assert OpenAIEndpoint(model="m").api_key.get_secret_value() == "sk-vt"
    assert OpenAIEndpoint(model="m", api_key="explicit").api_key.get_secret_value() == "explicit"
    monkeypatch.delenv("VIDTHINKER_API_KEY")
    monkeypatch.delenv("OPENAI_API_KEY")
    assert OpenAIEndpoint(model="m").api_key is None


def test_no_key_sends_no_auth_header(monkeypatch):
    from openai_stub import StubServer

    monkeypatch.delenv("VIDTHINKER_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with StubServer(models=["m"]) as s:
        run(
            lambda m: m.chat(ChatRequest(messages=(Message.user("hi"),))),
            OpenAIEndpoint(base_url=s.base_url, model="m"),
        )
        assert s.requests[0]["authorization"] is None


def test_usage_adds():
    assert Usage(1, 2, 1) + Usage(3, 4, 0, 1) == Usage(4, 6, 1, 1)
    assert (Usage(1, 2, 1) + Usage(3, 4, 1)).total_tokens == 10


def test_base_url_normalised():
    assert OpenAIEndpoint(model="m", base_url="http://h:8000").base_url == "http://h:8000/v1"
    assert OpenAIEndpoint(model="m", base_url="http://h:8000/v1/").base_url == "http://h:8000/v1"
    assert OpenAIEndpoint(model="m", base_url="https://h/openai/v1").base_url == "https://h/openai/v1"
    with pytest.raises(ValueError):
        OpenAIEndpoint(model="m", base_url="h:8000")
