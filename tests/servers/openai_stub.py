"""A small, strict OpenAI-compatible chat-completions server for tests and benchmarks.

It validates every request the way the real API does (400/401/404 with OpenAI-style error bodies),
answers schema-constrained requests with a minimal instance of the schema, and can be told to fail on
purpose. Knobs: fixed ``latency_s`` per request, ``capacity`` (requests processed at once; the rest
queue, as on a GPU server), ``dialect`` ("json_schema" like vLLM, "json_object" like llama-cpp-python,
which answers json_schema with HTTP 500), served ``models``, required ``api_key``.

It follows vLLM's acceptance rules both ways (vllm-project/vllm, ``vllm/entrypoints/openai/protocol.py``
and ``vllm/multimodal``):

* lenient where vLLM is: its request models allow extra fields (``extra="allow"``; unknown keys are
  logged as "present in the request but ignored"), so unknown top-level keys are accepted, ignored and
  listed in ``state.ignored_keys``; ``max_tokens`` and ``max_completion_tokens`` are both read;
  ``response_format`` ``json_object`` with a ``schema`` is accepted and the schema ignored (vLLM turns
  it into plain JSON mode); ``structured_outputs: {"json": schema}`` constrains the reply to the schema.
* strict like ``vllm serve`` with flags: ``limit_mm_per_prompt`` (``--limit-mm-per-prompt``, e.g.
  ``{"image": 8, "video": 0}``) answers a request with more media a 400 "At most N image(s) may be
  provided in one prompt."; ``max_model_len`` (``--max-model-len``) answers a 400 when the prompt
  (a rough count: 4 characters a token, ``image_tokens`` per image, ``video_tokens`` per video) plus
  ``max_tokens`` exceeds it, and is reported in ``/v1/models``; a reply of the stub's own longer than
  ``max_tokens`` (same rough count) is cut and ends with ``finish_reason: "length"`` (a scripted
  ``responder``'s reply is sent as given; the ``truncate`` and ``length`` faults cut any reply).

In-process (tests)::

    with StubServer(models=["m"], api_key="k") as s:
        s.fail_next("429", 2, retry_after=0.1)
        ... s.base_url ... s.peak_concurrency ... s.requests

Standalone (benchmarks): ``python tests/servers/openai_stub.py --port 8011 --latency 0.2 --capacity 8``;
control it with ``POST /_stub/faults`` ``{"kind": "500", "n": 3}`` and read ``GET /_stub/stats``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import collections
import io
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

FAULT_KINDS = (
    "429",
    "500",
    "503",
    "stall",
    "drop",
    "malformed",
    "garbage",
    "always_malformed",
    "off_schema",
    "refusal",
    "truncate",
    "length",
)
ROLES = {"system", "developer", "user", "assistant", "tool"}
TOP_LEVEL_KEYS = {
    "model",
    "messages",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "seed",
    "n",
    "stream",
    "stop",
    "response_format",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "user",
    "logit_bias",
    "stream_options",
    "metadata",
    "store",
    "structured_outputs",
}
SCHEMA_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class BadRequest(Exception):
    def __init__(
        self,
        message: str,
        param: str | None = None,
        status: int = 400,
        type_: str = "invalid_request_error",
        code: str | None = None,
    ):
        super().__init__(message)
        self.message, self.param, self.status, self.type, self.code = message, param, status, type_, code


def error_response(
    status: int,
    message: str,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return web.json_response(body, status=status, headers=headers)


def minimal_instance(schema: dict[str, Any]) -> Any:
    """A small value that validates against common JSON schemas."""
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return minimal_instance(schema[key][0])
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for s in schema["allOf"]:
            merged.update(s)
        return minimal_instance(merged)
    t = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "null")
    if t == "object":
        props = schema.get("properties", {})
        return {k: minimal_instance(props.get(k, {})) for k in schema.get("required", list(props))}
    if t == "array":
        n = max(int(schema.get("minItems", 1)), 1 if "items" in schema else 0)
        return [minimal_instance(schema.get("items", {})) for _ in range(n)]
    if t == "integer":
        return int(schema.get("minimum", 0))
    if t == "number":
        return float(schema.get("minimum", 0.0))
    if t == "boolean":
        return True
    if t == "null":
        return None
    return "x" * max(int(schema.get("minLength", 4)), 0) if "minLength" in schema else "stub"


def _rough_tokens(text: str) -> int:
    """The stub's token count: about 4 characters a token (at least 1)."""
    return max(1, len(text) // 4)


def _check_jpeg_data_url(url: str, param: str) -> int:
    prefix = "data:image/jpeg;base64,"
    if not url.startswith(prefix):
        raise BadRequest(
            f"Invalid image URL: expected a '{prefix}...' data URL, got {url[:40]!r}",
            param,
            code="invalid_image_url",
        )
    try:
        raw = base64.b64decode(url[len(prefix) :], validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("Invalid base64 image data.", param, code="invalid_image_format") from None
    try:
        from PIL import Image

        with Image.open(io.BytesIO(raw)) as im:
            if im.format != "JPEG":
                raise ValueError(im.format)
            im.verify()
    except Exception:  # noqa: BLE001 - any decoder failure is a bad image
        raise BadRequest(
            "You uploaded an unsupported image. Please make sure your image is a valid JPEG.",
            param,
            code="invalid_image_format",
        ) from None
    return len(raw)


@dataclass
class Fault:
    kind: str
    remaining: int  # -1 = forever
    retry_after: float | None = None
    stall_s: float = 5.0


@dataclass
class StubState:
    models: list[str]
    api_key: str | None = None
    dialect: str = "json_schema"
    latency_s: float = 0.0
    capacity: int = 64
    allow_video: bool = False
    echo_key_in_errors: bool = True  # like the real API's 401 text, to test client-side redaction
    reply_text: str = "stub reply"
    # vllm serve flags: --limit-mm-per-prompt ({"image": n, "video": n}; None: no limit) and
    # --max-model-len (None: no limit, reported as null)
    limit_mm_per_prompt: dict[str, int] | None = None
    max_model_len: int | None = None
    image_tokens: int = 85
    video_tokens: int = 1000
    ignored_keys: set[str] = field(default_factory=set)
    # Tests that need content-aware answers (a scripted "model") set this: body -> reply content
    # (a dict is sent as JSON); returning None falls back to the schema's minimal instance.
    responder: Any = None
    faults: collections.deque[Fault] = field(default_factory=collections.deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    concurrency: int = 0
    peak_concurrency: int = 0
    processing: int = 0
    peak_processing: int = 0
    count: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class StubApp:
    def __init__(self, state: StubState):
        self.state = state
        self._capacity_sem: asyncio.Semaphore | None = None

    def build(self) -> web.Application:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/_stub/faults", self.ctl_faults)
        app.router.add_post("/_stub/config", self.ctl_config)
        app.router.add_get("/_stub/stats", self.ctl_stats)
        app.router.add_post("/_stub/reset", self.ctl_reset)
        return app

    # ------------------------------------------------------------------ helpers
    def _auth_error(self, request: web.Request) -> web.Response | None:
        key = self.state.api_key
        if key is None:
            return None
        header = request.headers.get("Authorization", "")
        if header == f"Bearer {key}":
            return None
        given = header.removeprefix("Bearer ").strip()
        shown = given if self.state.echo_key_in_errors else "***"
        return error_response(401, f"Incorrect API key provided: {shown}.", code="invalid_api_key")

    def _take_fault(self) -> Fault | None:
        with self.state.lock:
            if not self.state.faults:
                return None
            f = self.state.faults[0]
            if f.remaining > 0:
                f.remaining -= 1
                if f.remaining == 0:
                    self.state.faults.popleft()
            return Fault(f.kind, 1, f.retry_after, f.stall_s)

    # ------------------------------------------------------------------ endpoints
    async def models(self, request: web.Request) -> web.Response:
        if (err := self._auth_error(request)) is not None:
            return err
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "stub", "max_model_len": self.state.max_model_len}
            for m in self.state.models
        ]
        return web.json_response({"object": "list", "data": data})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        st = self.state
        with st.lock:
            st.concurrency += 1
            st.peak_concurrency = max(st.peak_concurrency, st.concurrency)
            st.count += 1
        try:
            return await self._chat(request)
        finally:
            with st.lock:
                st.concurrency -= 1

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        st = self.state
        if (err := self._auth_error(request)) is not None:
            return err
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return error_response(400, "We could not parse the JSON body of your request.")
        with st.lock:
            st.requests.append({"body": body, "authorization": request.headers.get("Authorization")})
        try:
            info = self.validate(body)
        except BadRequest as e:
            return error_response(e.status, e.message, e.type, e.param, e.code)

        fault = self._take_fault()
        if fault is not None:
            if fault.kind == "429":
                headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
                return error_response(
                    429,
                    "Rate limit reached. Please try again later.",
                    "rate_limit_error",
                    code="rate_limit_exceeded",
                    headers=headers,
                )
            if fault.kind in ("500", "503"):
                return error_response(
                    int(fault.kind), "The server had an error while processing your request.", "server_error"
                )
            if fault.kind == "stall":
                await asyncio.sleep(fault.stall_s)
            if fault.kind == "drop":
                assert request.transport is not None
                request.transport.abort()
                raise asyncio.CancelledError  # nothing is sent; the client sees the connection die
            if fault.kind == "garbage":
                return web.Response(
                    status=200, text="<html>upstream gateway says hi</html>", content_type="text/html"
                )

        if self._capacity_sem is None:
            self._capacity_sem = asyncio.Semaphore(st.capacity)
        async with self._capacity_sem:
            with st.lock:
                st.processing += 1
                st.peak_processing = max(st.peak_processing, st.processing)
            try:
                if st.latency_s > 0:
                    await asyncio.sleep(st.latency_s)
            finally:
                with st.lock:
                    st.processing -= 1

        refusal = None
        finish_reason = "stop"
        scripted_reply = False  # a scripted responder's reply is sent as given (never cut)
        if fault is not None and fault.kind in ("malformed", "always_malformed"):
            content = "Sure! Here is the answer you asked for: clips 1 and 2."
        elif fault is not None and fault.kind == "off_schema":
            content = json.dumps({"unexpected": "valid JSON, wrong shape"})
        elif fault is not None and fault.kind == "refusal":
            content, refusal = None, "I'm sorry, I cannot help with that."
        elif st.responder is not None and (scripted := st.responder(body)) is not None:
            content = scripted if isinstance(scripted, str) else json.dumps(scripted)
            scripted_reply = True
        elif info["schema"] is not None:
            content = json.dumps(minimal_instance(info["schema"]))
        elif info["json_mode"]:
            content = "{}"
        else:
            content = st.reply_text
        if fault is not None and fault.kind == "truncate" and content:
            content, finish_reason = content[: max(1, len(content) // 2)], "length"
        elif fault is not None and fault.kind == "length":  # cut exactly at the end: parses, still cut
            finish_reason = "length"
        budget = info["max_tokens"]
        if content and not scripted_reply and budget is not None and _rough_tokens(content) > budget:
            content, finish_reason = content[: budget * 4], "length"  # cut by max_tokens, as vLLM does
        completion_tokens = max(1, _rough_tokens(content or ""))
        with st.lock:
            n = st.count
        return web.json_response(
            {
                "id": f"chatcmpl-stub-{n}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content, "refusal": refusal},
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                ],
                "usage": {
                    "prompt_tokens": info["prompt_tokens"],
                    "completion_tokens": completion_tokens,
                    "total_tokens": info["prompt_tokens"] + completion_tokens,
                },
            }
        )

    # ------------------------------------------------------------------ validation
    def validate(self, body: Any) -> dict[str, Any]:
        st = self.state
        if not isinstance(body, dict):
            raise BadRequest("Request body must be a JSON object.")
        unknown = set(body) - TOP_LEVEL_KEYS
        if unknown:  # vLLM: extra fields are allowed and ignored (with a warning in its log)
            with st.lock:
                st.ignored_keys.update(unknown)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("you must provide a model parameter", "model")
        if model not in st.models:
            raise BadRequest(
                f"The model `{model}` does not exist or you do not have access to it.",
                "model",
                status=404,
                code="model_not_found",
            )
        if body.get("stream"):
            raise BadRequest("stream is not supported by this stub", "stream")
        if body.get("n", 1) != 1:
            raise BadRequest("n must be 1", "n")
        for name, lo, hi in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0)):
            if name in body:
                v = body[name]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                    raise BadRequest(f"Invalid '{name}': must be a number between {lo:g} and {hi:g}.", name)
        for name in ("max_tokens", "max_completion_tokens", "seed"):
            if name in body and body[name] is not None:
                v = body[name]
                if isinstance(v, bool) or not isinstance(v, int):
                    raise BadRequest(f"Invalid type for '{name}': expected an integer.", name)
                if name != "seed" and v < 1:
                    raise BadRequest(f"Invalid '{name}': integer below minimum value 1.", name)
        prompt_tokens, media = self._validate_messages(body.get("messages"))
        limits = st.limit_mm_per_prompt
        if limits is not None:
            for modality, count in media.items():
                limit = int(limits.get(modality, 1))  # vLLM's default limit is 1 per modality
                if count > limit:
                    raise BadRequest(
                        f"At most {limit} {modality}(s) may be provided in one prompt. "
                        "Set `--limit-mm-per-prompt` to increase this limit.",
                        type_="BadRequestError",
                    )
        schema, json_mode = self._validate_response_format(body.get("response_format"))
        so = body.get("structured_outputs")
        if so is not None:
            if not isinstance(so, dict):
                raise BadRequest("Invalid 'structured_outputs': expected an object.", "structured_outputs")
            if "json" in so:
                js = so["json"]
                if isinstance(js, str):
                    try:
                        js = json.loads(js)
                    except json.JSONDecodeError:
                        raise BadRequest("Invalid 'structured_outputs.json'.", "structured_outputs.json") from None
                self._check_schema(js, "structured_outputs.json")
                schema, json_mode = js, True
            elif so.get("json_object"):
                json_mode = True
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        if st.max_model_len is not None:
            limit = st.max_model_len
            if prompt_tokens > limit or (max_tokens is None and prompt_tokens >= limit):
                raise BadRequest(
                    f"This model's maximum context length is {limit} tokens. However, your request has "
                    f"{prompt_tokens} input tokens. Please reduce the length of the input messages.",
                    type_="BadRequestError",
                )
            if max_tokens is None:
                max_tokens = limit - prompt_tokens
            elif prompt_tokens + max_tokens > limit:
                raise BadRequest(
                    f"'max_tokens' or 'max_completion_tokens' is too large: {max_tokens}. This model's "
                    f"maximum context length is {limit} tokens and your request has {prompt_tokens} "
                    f"input tokens ({max_tokens} > {limit} - {prompt_tokens}).",
                    type_="BadRequestError",
                )
        return {"schema": schema, "json_mode": json_mode, "prompt_tokens": prompt_tokens, "max_tokens": max_tokens}

    def _validate_messages(self, messages: Any) -> tuple[int, dict[str, int]]:
        if not isinstance(messages, list) or not messages:
            raise BadRequest("Invalid 'messages': expected a non-empty array.", "messages")
        tokens = 0
        media = {"image": 0, "video": 0}
        for i, m in enumerate(messages):
            p = f"messages[{i}]"
            if not isinstance(m, dict):
                raise BadRequest(f"Invalid type for '{p}': expected an object.", p)
            role = m.get("role")
            if role not in ROLES:
                raise BadRequest(f"Invalid value for '{p}.role': {role!r}.", f"{p}.role")
            extra = set(m) - {"role", "content", "name", "tool_calls", "tool_call_id", "refusal"}
            if extra:
                raise BadRequest(f"Unrecognized argument in '{p}': {min(extra)}", p)
            content = m.get("content")
            if isinstance(content, str):
                tokens += _rough_tokens(content)
                continue
            if not isinstance(content, list) or not content:
                raise BadRequest(
                    f"Invalid '{p}.content': expected a string or a non-empty array of parts.", f"{p}.content"
                )
            for j, part in enumerate(content):
                pp = f"{p}.content[{j}]"
                if not isinstance(part, dict):
                    raise BadRequest(f"Invalid type for '{pp}': expected an object.", pp)
                kind = part.get("type")
                if kind == "text":
                    if not isinstance(part.get("text"), str) or set(part) != {"type", "text"}:
                        raise BadRequest(f"Invalid '{pp}': a text part is {{type, text: string}}.", pp)
                    tokens += _rough_tokens(part["text"])
                elif kind in ("image_url", "video_url"):
                    if role != "user":
                        raise BadRequest(
                            f"Invalid '{pp}': {kind} parts are only allowed in user messages.", pp
                        )
                    if kind == "video_url" and not self.state.allow_video:
                        raise BadRequest(f"Invalid '{pp}.type': this model does not accept video.", pp)
                    obj = part.get(kind)
                    if (
                        set(part) != {"type", kind}
                        or not isinstance(obj, dict)
                        or not isinstance(obj.get("url"), str)
                    ):
                        raise BadRequest(f"Invalid '{pp}': expected {{type, {kind}: {{url}}}}.", pp)
                    if set(obj) - {"url", "detail"}:
                        raise BadRequest(f"Unrecognized argument in '{pp}.{kind}'.", pp)
                    if "detail" in obj and obj["detail"] not in ("auto", "low", "high"):
                        raise BadRequest(f"Invalid value for '{pp}.{kind}.detail'.", pp)
                    if kind == "image_url":
                        _check_jpeg_data_url(obj["url"], f"{pp}.image_url.url")
                        tokens += self.state.image_tokens
                        media["image"] += 1
                    else:
                        tokens += self.state.video_tokens
                        media["video"] += 1
                else:
                    raise BadRequest(
                        f"Invalid value for '{pp}.type': {kind!r}. Supported values are: "
                        "'text' and 'image_url'.",
                        f"{pp}.type",
                    )
        return tokens, media

    def _validate_response_format(self, rf: Any) -> tuple[dict[str, Any] | None, bool]:
        if rf is None:
            return None, False
        if not isinstance(rf, dict) or rf.get("type") not in ("text", "json_object", "json_schema"):
            raise BadRequest("Invalid 'response_format.type'.", "response_format.type")
        kind = rf["type"]
        if kind == "text":
            if set(rf) != {"type"}:
                raise BadRequest("Unrecognized argument in 'response_format'.", "response_format")
            return None, False
        if kind == "json_object":
            if self.state.dialect == "json_object":  # llama-cpp-python: optional schema enforced by grammar
                if set(rf) - {"type", "schema"}:
                    raise BadRequest("Unrecognized argument in 'response_format'.", "response_format")
                schema = rf.get("schema")
                if schema is not None:
                    self._check_schema(schema, "response_format.schema")
                return schema, True
            # vLLM: ResponseFormat allows extra fields; json_object is plain JSON mode, a schema is ignored
            return None, True
        # json_schema
        if self.state.dialect == "json_object":
            raise BadRequest(
                "Internal Server Error: unsupported response_format json_schema",
                status=500,
                type_="server_error",
            )
        if set(rf) != {"type", "json_schema"} or not isinstance(rf["json_schema"], dict):
            raise BadRequest("Invalid 'response_format': expected {type, json_schema}.", "response_format")
        js = rf["json_schema"]
        if set(js) - {"name", "schema", "strict", "description"}:
            raise BadRequest(
                "Unrecognized argument in 'response_format.json_schema'.", "response_format.json_schema"
            )
        if not isinstance(js.get("name"), str) or not SCHEMA_NAME_RE.match(js["name"]):
            raise BadRequest(
                "Invalid 'response_format.json_schema.name'.", "response_format.json_schema.name"
            )
        if "strict" in js and not isinstance(js["strict"], bool):
            raise BadRequest(
                "Invalid type for 'response_format.json_schema.strict'.", "response_format.json_schema.strict"
            )
        schema = js.get("schema")
        self._check_schema(schema, "response_format.json_schema.schema")
        return schema, True

    @staticmethod
    def _check_schema(schema: Any, param: str) -> None:
        import jsonschema

        if not isinstance(schema, dict):
            raise BadRequest(f"Invalid '{param}': expected an object.", param)
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as e:
            raise BadRequest(f"Invalid schema for '{param}': {e.message}", param) from None

    # ------------------------------------------------------------------ control endpoints
    async def ctl_faults(self, request: web.Request) -> web.Response:
        d = await request.json()
        self.state.faults.append(
            Fault(d["kind"], int(d.get("n", 1)), d.get("retry_after"), float(d.get("stall_s", 5)))
        )
        return web.json_response({"ok": True})

    async def ctl_config(self, request: web.Request) -> web.Response:
        d = await request.json()
        for k in ("latency_s", "capacity", "dialect", "allow_video", "reply_text", "limit_mm_per_prompt", "max_model_len"):
            if k in d:
                setattr(self.state, k, d[k])
        if "capacity" in d:
            self._capacity_sem = None
        return web.json_response({"ok": True})

    async def ctl_stats(self, request: web.Request) -> web.Response:
        st = self.state
        with st.lock:
            return web.json_response(
                {
                    "count": st.count,
                    "peak_concurrency": st.peak_concurrency,
                    "peak_processing": st.peak_processing,
                    "concurrency": st.concurrency,
                }
            )

    async def ctl_reset(self, request: web.Request) -> web.Response:
        st = self.state
        with st.lock:
            st.faults.clear()
            st.requests.clear()
            st.count = st.peak_concurrency = st.peak_processing = 0
        return web.json_response({"ok": True})


class StubServer:
    """Runs a StubApp on 127.0.0.1 in a background thread with its own event loop."""

    def __init__(
        self,
        models: list[str] | tuple[str, ...] = ("stub-model",),
        *,
        api_key: str | None = None,
        dialect: str = "json_schema",
        latency_s: float = 0.0,
        capacity: int = 64,
        allow_video: bool = False,
        limit_mm_per_prompt: dict[str, int] | None = None,
        max_model_len: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.state = StubState(
            models=list(models),
            api_key=api_key,
            dialect=dialect,
            latency_s=latency_s,
            capacity=capacity,
            allow_video=allow_video,
            limit_mm_per_prompt=limit_mm_per_prompt,
            max_model_len=max_model_len,
        )
        self.app = StubApp(self.state)
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> StubServer:
        self._thread = threading.Thread(target=self._run, name="openai-stub", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("stub server did not start")
        if self._error is not None:
            raise RuntimeError("stub server failed to start") from self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start())
        except BaseException as e:  # noqa: BLE001
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup() if self._runner else asyncio.sleep(0))
        loop.close()

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.app.build(), access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ knobs and records
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def fail_next(
        self, kind: str, n: int = 1, *, retry_after: float | None = None, stall_s: float = 5.0
    ) -> None:
        """Queue a fault for the next n chat requests (n=-1: forever). Faults queue in order."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {FAULT_KINDS}")
        if kind == "always_malformed":
            n = -1
        with self.state.lock:
            self.state.faults.append(Fault(kind, n, retry_after, stall_s))

    def reset(self) -> None:
        st = self.state
        with st.lock:
            st.faults.clear()
            st.requests.clear()
            st.count = st.peak_concurrency = st.peak_processing = 0

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return list(self.state.requests)

    @property
    def count(self) -> int:
        return self.state.count

    @property
    def peak_concurrency(self) -> int:
        return self.state.peak_concurrency


class StubProcess:
    """This stub as a separate process on a free loopback port, for benchmarks: a server in the
    benchmark's own process would share its GIL with decoding and understate the pipeline (vLLM runs
    elsewhere too)."""

    def __init__(self, latency: float, capacity: int, model: str = "scripted"):
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.args = ["--port", str(self.port), "--model", model, "--latency", str(latency), "--capacity", str(capacity)]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def stats(self) -> dict[str, Any]:
        import httpx

        return httpx.get(f"http://127.0.0.1:{self.port}/_stub/stats").json()

    def reset(self) -> None:
        import httpx

        httpx.post(f"http://127.0.0.1:{self.port}/_stub/reset").raise_for_status()

    def __enter__(self) -> StubProcess:
        import subprocess
        import sys

        import httpx

        self.process = subprocess.Popen([sys.executable, __file__, *self.args])
        for _ in range(600):
            try:
                httpx.get(f"{self.base_url}/models", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        self.process.kill()
        raise RuntimeError("stub server did not start")

    def __exit__(self, *exc: Any) -> None:
        self.process.terminate()
        self.process.wait(10)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8011)
    ap.add_argument("--model", action="append", default=None)
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--dialect", choices=("json_schema", "json_object"), default="json_schema")
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--capacity", type=int, default=64)
    ap.add_argument("--allow-video", action="store_true")
    ap.add_argument("--limit-mm-per-prompt", type=json.loads, default=None, help='like vllm serve: {"image": 8, "video": 0}')
    ap.add_argument("--max-model-len", type=int, default=None)
    a = ap.parse_args(argv)
    if a.host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("the stub only listens on loopback")
    state = StubState(
        models=a.model or ["stub-model"],
        api_key=a.api_key,
        dialect=a.dialect,
        latency_s=a.latency,
        capacity=a.capacity,
        allow_video=a.allow_video,
        limit_mm_per_prompt=a.limit_mm_per_prompt,
        max_model_len=a.max_model_len,
    )
    web.run_app(StubApp(state).build(), host=a.host, port=a.port, access_log=None)


if __name__ == "__main__":
    main()
