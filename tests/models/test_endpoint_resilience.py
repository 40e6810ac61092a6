"""The client at the vLLM boundary, against the stub with vLLM's rules: error classes, the start-up
probe, the circuit breaker, truncated replies, media limits and the served context length."""

from __future__ import annotations

import asyncio

import httpx
import jsonschema
import pytest

from vidthinker.models import (
    ChatRequest,
    EndpointDown,
    EndpointMismatch,
    ImagePart,
    Message,
    ModelError,
    ModelHTTPError,
    ModelReplyError,
    ModelTimeout,
    ModelUnavailable,
    TextPart,
    VideoPart,
)
from vidthinker.models.openai_compat import OpenAICompatChat, OpenAIEndpoint

from .helpers import make_jpeg
from .test_openai_compat import KEY, SCHEMA, endpoint, run, schema_request


# --------------------------------------------------------------------------- error classes
def test_transient_versus_permanent():
    assert ModelUnavailable("x").transient and ModelTimeout("x").transient and EndpointDown("x").transient
    assert isinstance(EndpointDown("x"), ModelUnavailable)
    assert not EndpointMismatch("x").transient and isinstance(EndpointMismatch("x"), ModelUnavailable)
    assert not ModelError("x").transient and not ModelReplyError("x", raw_text="").transient
    for status in (401, 403, 408, 429, 500, 502, 503, 504):
        assert ModelHTTPError("x", status_code=status).transient, status
    for status in (400, 404, 413, 422):
        assert not ModelHTTPError("x", status_code=status).transient, status


# --------------------------------------------------------------------------- start-up probe
@pytest.mark.parametrize("dialect", ["json_schema", "json_object"])
def test_probe_503_once_then_the_right_dialect(stub, dialect):
    stub.state.dialect = dialect
    stub.fail_next("503", 1)

    async def go(m):
        await m.check()
        return m.dialect

    assert run(go, endpoint(stub)) == dialect
    kinds = [r["body"]["response_format"]["type"] for r in stub.requests]
    # the 503 is retried, never read as "format not supported"
    assert kinds == (["json_schema"] * 2 if dialect == "json_schema" else ["json_schema", "json_object", "json_object"])


@pytest.mark.parametrize("kind,kw", [("stall", {"stall_s": 1.5}), ("drop", {}), ("429", {"retry_after": 0})])
def test_probe_stall_drop_or_429_is_retried(stub, kind, kw):
    stub.fail_next(kind, 1, **kw)

    async def go(m):
        await m.check()
        return m.dialect

    assert run(go, endpoint(stub, timeout_s=0.4)) == "json_schema"


@pytest.mark.parametrize("kind,kw", [("503", {}), ("stall", {"stall_s": 1.0})])
def test_persistent_outage_on_probe_is_one_unavailable_line(stub, kind, kw):
    stub.fail_next(kind, -1, **kw)

    async def go(m):
        with pytest.raises(ModelUnavailable) as ei:
            await m.check()
        return m, ei.value

    m, error = run(go, endpoint(stub, max_retries=2, timeout_s=0.3))
    text = str(error)
    assert "\n" not in text and "structured-output probe" in text and "3 attempt" in text
    assert KEY not in text and error.transient
    assert m.dialect is None  # never decided from a transient failure
    assert stub.count == 3


def test_pinned_dialect_skips_the_probe(stub):
    stub.fail_next("503", -1)  # would fail any chat request
    run(lambda m: m.check(), endpoint(stub, structured_output="json_object"))
    assert stub.count == 0


def test_get_models_503_is_retried(stub):
    calls = {"n": 0}
    # a transport that answers 503 to the first GET /models, then passes through to the stub
    real = httpx.AsyncHTTPTransport()

    class Flaky(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request):
            if request.url.path.endswith("/models") and calls["n"] == 0:
                calls["n"] += 1
                return httpx.Response(503, json={"error": {"message": "loading"}})
            return await real.handle_async_request(request)

    async def main():
        async with OpenAICompatChat(endpoint(stub), transport=Flaky()) as m:
            await m.check()
            return m

    m = asyncio.run(main())
    assert calls["n"] == 1 and m.dialect == "json_schema"


# --------------------------------------------------------------------------- circuit breaker
def test_circuit_opens_after_n_failures_and_ends_in_endpoint_down(stub):
    stub.fail_next("stall", -1, stall_s=3.0)
    ep = endpoint(stub, structured_output="json_schema", timeout_s=0.1, max_retries=50, circuit_failures=2,
                  circuit_open_s=0.6, backoff_initial_s=0.01, backoff_max_s=0.05)

    async def go(m):
        first = asyncio.create_task(m.chat(schema_request()))
        while not m.circuit_open:  # two timeouts open it; the request then waits instead of retrying
            await asyncio.sleep(0.01)
        m.peak_in_flight = 0
        later = [asyncio.create_task(m.chat(schema_request(seed=i))) for i in range(4)]
        return m, await asyncio.gather(first, *later, return_exceptions=True)

    m, results = run(go, ep)
    assert all(isinstance(r, EndpointDown) for r in results), results
    assert m.circuit_opened == 1 and m.peak_in_flight == 1  # one half-open probe at a time
    text = str(results[0])
    assert "\n" not in text and "circuit open after 2 consecutive failures" in text and KEY not in text
    assert m.http_attempts < 50  # waiting on the circuit did not spend the retries


def test_circuit_closes_on_success(stub):
    stub.fail_next("503", 3)
    ep = endpoint(stub, structured_output="json_schema", max_retries=1, circuit_failures=2, circuit_open_s=30)

    async def go(m):
        reply = await m.chat(schema_request())
        return m, reply

    m, reply = run(go, ep)
    jsonschema.validate(reply.parsed, SCHEMA)
    # 2 failures open the circuit, a failed probe keeps it open, the next probe closes it: with
    # max_retries=1 the request alone would have given up after its second attempt
    assert reply.attempts == 4 and m.circuit_opened == 1 and not m.circuit_open


def test_a_definite_error_answer_resets_the_count(stub):
    ep = endpoint(stub, structured_output="json_schema", max_retries=0, circuit_failures=2)

    async def go(m):
        stub.fail_next("503", 1)
        with pytest.raises(ModelHTTPError):
            await m.chat(schema_request())
        with pytest.raises(ModelHTTPError) as ei:  # a 400: the endpoint is up
            await m.chat(ChatRequest(messages=(Message.user("hi"),), temperature=3.0))
        assert not ei.value.transient
        stub.fail_next("503", 1)
        with pytest.raises(ModelHTTPError) as ei:
            await m.chat(schema_request())
        assert ei.value.transient
        return m

    m = run(go, ep)
    assert m.circuit_opened == 0


# --------------------------------------------------------------------------- truncated replies
def test_length_finish_is_never_parsed_as_valid(stub):
    stub.fail_next("length", 1)  # the reply parses, but the server says it was cut
    reply = run(lambda m: m.chat(schema_request(max_tokens=100)), endpoint(stub, structured_output="json_schema"))
    jsonschema.validate(reply.parsed, SCHEMA)
    assert reply.usage.calls == 2 and reply.finish_reason == "stop"
    first, second = (r["body"] for r in stub.requests)
    assert second["max_tokens"] == 200 and second["messages"] == first["messages"]  # same prompt, more room


def test_truncated_twice_is_a_reply_error_naming_truncation(stub):
    stub.fail_next("truncate", 2)
    with pytest.raises(ModelReplyError) as ei:
        run(lambda m: m.chat(schema_request()), endpoint(stub, structured_output="json_schema"))
    assert "truncated" in str(ei.value) and "finish_reason 'length'" in str(ei.value)
    assert not ei.value.transient and ei.value.usage.calls == 2 and stub.count == 2


def test_stub_cuts_at_max_tokens_and_the_client_asks_again(stub):
    # the schema's smallest reply is ~9 stub tokens: 5 cut it, 10 fit
    reply = run(lambda m: m.chat(schema_request(max_tokens=5)), endpoint(stub, structured_output="json_schema"))
    jsonschema.validate(reply.parsed, SCHEMA)
    assert [r["body"]["max_tokens"] for r in stub.requests] == [5, 10]


# --------------------------------------------------------------------------- media limit, context length
def _images(n: int) -> ChatRequest:
    parts = [ImagePart.from_jpeg(make_jpeg(i)) for i in range(n)]
    return ChatRequest(messages=(Message.user(*parts, TextPart("Describe.")),), max_tokens=16)


def test_media_limit_is_a_permanent_mismatch_not_retried():
    from openai_stub import StubServer

    with StubServer(models=["m"], limit_mm_per_prompt={"image": 2, "video": 0}, allow_video=True) as s:
        ep = OpenAIEndpoint(base_url=s.base_url, model="m", api_key=None, backoff_initial_s=0.01)
        assert run(lambda m: m.chat(_images(2)), ep).text == "stub reply"
        with pytest.raises(EndpointMismatch) as ei:
            run(lambda m: m.chat(_images(3)), ep)
        assert s.count == 2 and not ei.value.transient
        assert "At most 2 image(s) may be provided in one prompt" in str(ei.value)
        assert "--limit-mm-per-prompt" in str(ei.value)
        video = ChatRequest(messages=(Message.user(VideoPart(url="https://example.invalid/v.mp4"), TextPart("?")),))
        with pytest.raises(EndpointMismatch, match="At most 0 video"):
            run(lambda m: m.chat(video), ep)


def test_served_context_too_small_stops_at_start_up():
    from openai_stub import StubServer

    with StubServer(models=["m"], max_model_len=4096) as s:
        small = OpenAIEndpoint(base_url=s.base_url, model="m", api_key=None, needed_context=4000)

        async def check(m):
            await m.check()
            return m.max_model_len

        assert run(check, small) == 4096
        probes = s.count  # the structured-output probe of the first check
        big = small.model_copy(update={"needed_context": 9000, "needed_context_why": "stage 1 caption: 4 image(s)"})
        with pytest.raises(EndpointMismatch) as ei:
            run(lambda m: m.check(), big)
        text = str(ei.value)
        assert "\n" not in text and "max_model_len=4096" in text and "9000" in text and "stage 1 caption" in text
        assert "--max-model-len" in text and not ei.value.transient
        assert s.count == probes  # stopped before any chat request


def test_prompt_plus_max_tokens_over_the_context_asks_with_the_room_left():
    from openai_stub import StubServer

    with StubServer(models=["m"], max_model_len=64) as s:
        ep = OpenAIEndpoint(base_url=s.base_url, model="m", api_key=None)
        # 25 prompt tokens + 60 > 64: vLLM's 400 names both numbers; the client asks again with 39
        reply = run(lambda m: m.chat(ChatRequest(messages=(Message.user("x" * 100),), max_tokens=60)), ep)
        assert reply.text == "stub reply" and [r["body"]["max_tokens"] for r in s.requests] == [60, 39]
        s.reset()
        with pytest.raises(ModelHTTPError) as ei:  # the prompt alone does not fit: permanent
            run(lambda m: m.chat(ChatRequest(messages=(Message.user("x" * 400),), max_tokens=8)), ep)
        assert ei.value.status_code == 400 and not ei.value.transient and s.count == 1
        assert "maximum context length is 64 tokens" in str(ei.value)
        models = httpx.get(s.base_url + "/models").json()["data"]
        assert models[0]["max_model_len"] == 64


@pytest.mark.parametrize("images,videos,ok", [(2, 0, True), (3, 0, False), (2, 1, False)])
def test_start_up_media_check(images, videos, ok):
    from openai_stub import StubServer

    with StubServer(models=["m"], limit_mm_per_prompt={"image": 2, "video": 0}, allow_video=True) as s:
        ep = OpenAIEndpoint(base_url=s.base_url, model="m", api_key=None, structured_output="json_schema",
                            needed_images=images, needed_videos=videos)
        if ok:
            run(lambda m: m.check(), ep)
        else:
            with pytest.raises(EndpointMismatch) as ei:
                run(lambda m: m.check(), ep)
            text = str(ei.value)
            assert "\n" not in text and f"{images} image(s)" in text and "--limit-mm-per-prompt" in text
        (probe,) = s.requests  # one request, before anything is paid
        parts = probe["body"]["messages"][0]["content"]
        assert [p["type"] for p in parts] == ["image_url"] * images + ["video_url"] * videos + ["text"]
        assert probe["body"]["max_tokens"] == 1


# --------------------------------------------------------------------------- the stub is lenient where vLLM is
def test_stub_accepts_what_vllm_accepts(stub):
    headers = {"Authorization": f"Bearer {KEY}"}
    base = {"model": "stub-model", "messages": [{"role": "user", "content": "hi"}]}
    cases = [
        {"some_future_key": 1, "max_completion_tokens": 32},  # unknown keys: ignored
        {"response_format": {"type": "json_object", "schema": SCHEMA}},  # schema ignored: plain JSON mode
        {"structured_outputs": {"json": SCHEMA}},  # vLLM's own structured-output field
    ]
    replies = [httpx.post(stub.base_url + "/chat/completions", json={**base, **extra}, headers=headers)
               for extra in cases]
    assert [r.status_code for r in replies] == [200, 200, 200]
    assert stub.state.ignored_keys == {"some_future_key"}
    assert replies[1].json()["choices"][0]["message"]["content"] == "{}"
    import json

    jsonschema.validate(json.loads(replies[2].json()["choices"][0]["message"]["content"]), SCHEMA)


@pytest.mark.parametrize("json_object_ok", [True, False])
def test_bare_500_to_json_schema_decides_only_with_a_json_object_answer(json_object_ok):
    """llama-cpp-python with an older FastAPI answers json_schema with a 500 whose message is empty:
    json_object is chosen only when a json_object probe gets a 2xx; otherwise it is an outage."""
    import json

    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "m"}]})
        kind = json.loads(request.content)["response_format"]["type"]
        seen.append(kind)
        if kind == "json_object" and json_object_ok:
            reply = {"choices": [{"message": {"content": '{"ok": true}'}, "finish_reason": "stop"}]}
            return httpx.Response(200, json=reply)
        return httpx.Response(500, json={"error": {"message": "", "type": "internal_server_error"}})

    ep = OpenAIEndpoint(base_url="http://llama.invalid/v1", model="m", api_key=None, max_retries=1,
                        backoff_initial_s=0.01, backoff_max_s=0.02)

    async def main():
        async with OpenAICompatChat(ep, transport=httpx.MockTransport(handler)) as m:
            await m.check()
            return m.dialect

    if json_object_ok:
        assert asyncio.run(main()) == "json_object"
        assert seen == ["json_schema", "json_schema", "json_object"]
    else:
        with pytest.raises(ModelUnavailable, match="no definite answer"):
            asyncio.run(main())
