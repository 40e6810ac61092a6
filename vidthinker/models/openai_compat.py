"""Chat backend for any OpenAI-compatible server (``vllm serve`` first, llama-cpp-python's server too).

Plain ``httpx`` (no SDK retry layer): bounded in-flight requests, a total timeout per HTTP attempt,
retries with exponential backoff + jitter on 429 / 5xx / timeouts / dropped connections (Retry-After
honoured), JSON-schema structured output in two dialects, jsonschema validation with exactly one
repair retry, usage accounting. The API key lives only in the HTTP client's headers: it is never
logged, never in a repr, and redacted from any server text that ends up in an exception.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import re
import time
from typing import Any, Literal, Self

import httpx
import jsonschema
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from .base import (
    ChatReply,
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

__all__ = ["API_KEY_ENV_VARS", "OpenAICompatChat", "OpenAIEndpoint", "to_wire_messages"]

log = logging.getLogger(__name__)

API_KEY_ENV_VARS = ("VIDTHINKER_API_KEY", "OPENAI_API_KEY")
Dialect = Literal["json_schema", "json_object"]
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
REPAIR_INSTRUCTION = (
    "Your previous reply was not valid JSON matching the required schema ({error}). "
    "Reply again with only the corrected JSON object, no prose and no code fences."
)
_PROBE_SCHEMA = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}},
    "required": ["ok"],
    "additionalProperties": False,
}


def _key_from_env() -> SecretStr | None:
    for var in API_KEY_ENV_VARS:
        value = os.environ.get(var)
        if value:
            return SecretStr(value)
    return None


class OpenAIEndpoint(BaseModel):
    """Where and how to reach one model on an OpenAI-compatible server."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str = "http://127.0.0.1:8000/v1"
    model: str
    api_key: SecretStr | None = Field(default_factory=_key_from_env)
    timeout_s: float = Field(120.0, gt=0)
    connect_timeout_s: float = Field(10.0, gt=0)
    max_in_flight: int = Field(16, ge=1)
    max_retries: int = Field(4, ge=0)
    backoff_initial_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    max_retry_after_s: float = Field(120.0, ge=0)
    structured_output: Literal["auto", "json_schema", "json_object"] = "auto"
    extra_body: dict[str, Any] = Field(default_factory=dict)

    @field_validator("base_url")
    @classmethod
    def _normalise_url(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if not re.match(r"^https?://", v):
            raise ValueError("base_url must start with http:// or https://")
        parsed = httpx.URL(v)
        if parsed.path in ("", "/"):
            v += "/v1"
        return v


def _content_to_wire(content: Any) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            parts.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            image: dict[str, Any] = {"url": part.url}
            if part.detail:
                image["detail"] = part.detail
            parts.append({"type": "image_url", "image_url": image})
        elif isinstance(part, VideoPart):
            if part.url is not None:
                parts.append({"type": "video_url", "video_url": {"url": part.url}})
            else:
                for url in part.frames:
                    image = {"url": url}
                    if part.detail:
                        image["detail"] = part.detail
                    parts.append({"type": "image_url", "image_url": image})
        else:
            raise TypeError(f"unknown content part {type(part).__name__}")
    return parts


def to_wire_messages(messages: tuple[Message, ...] | list[Message]) -> list[dict[str, Any]]:
    return [{"role": m.role, "content": _content_to_wire(m.content)} for m in messages]


def _strip_fences(text: str) -> str:
    t = text.strip()
    m = re.match(r"^```(?:json|JSON)?\s*\n?(.*?)\n?```$", t, re.DOTALL)
    return m.group(1).strip() if m else t


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _Retryable(Exception):
    """Internal: one attempt failed in a way worth retrying."""

    def __init__(
        self, reason: str, *, kind: str, status: int | None = None, retry_after: float | None = None
    ):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind  # "status" | "timeout" | "connect" | "transport" | "body"
        self.status = status
        self.retry_after = retry_after


class OpenAICompatChat:
    """``ChatModel`` over the OpenAI chat-completions API."""

    def __init__(self, endpoint: OpenAIEndpoint, *, transport: httpx.AsyncBaseTransport | None = None):
        self.endpoint = endpoint
        self.model_id = endpoint.model
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._sem: asyncio.Semaphore | None = None
        self._dialect_lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dialect: Dialect | None = (
            None if endpoint.structured_output == "auto" else endpoint.structured_output
        )
        # accounting (read by pipelines and benchmarks)
        self.usage = Usage()
        self.http_attempts = 0
        self.retries = 0
        self.in_flight = 0
        self.peak_in_flight = 0

    # ------------------------------------------------------------------ plumbing
    def __repr__(self) -> str:
        return f"OpenAICompatChat(model={self.model_id!r}, base_url={self.endpoint.base_url!r})"

    @property
    def dialect(self) -> Dialect | None:
        """The structured-output dialect in use (None until detected in ``auto`` mode)."""
        return self._dialect

    def _err(self, cls: type[ModelError], message: str, **kw: Any) -> ModelError:
        return cls(self._redact(message), endpoint=self.endpoint.base_url, model=self.model_id, **kw)

    def _redact(self, text: str) -> str:
        key = self.endpoint.api_key.get_secret_value() if self.endpoint.api_key else ""
        if key and key in text:
            text = text.replace(key, "***")
        return text

    def _ensure_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop or self._client.is_closed:
            # a client (and its pool) belongs to one event loop; a new loop gets new plumbing
            headers = {"Accept": "application/json"}
            if self.endpoint.api_key is not None:
                headers["Authorization"] = "Bearer " + self.endpoint.api_key.get_secret_value()
            limits = httpx.Limits(
                max_connections=self.endpoint.max_in_flight + 2,
                max_keepalive_connections=self.endpoint.max_in_flight,
            )
            self._client = httpx.AsyncClient(
                base_url=self.endpoint.base_url + "/",
                headers=headers,
                timeout=httpx.Timeout(self.endpoint.timeout_s, connect=self.endpoint.connect_timeout_s),
                limits=limits,
                transport=self._transport,
                trust_env=False,
            )
            self._sem = asyncio.Semaphore(self.endpoint.max_in_flight)
            self._dialect_lock = asyncio.Lock()
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and not client.is_closed:
            try:
                await client.aclose()
            except RuntimeError:  # its loop is gone
                pass

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ one HTTP attempt
    def _error_text(self, resp: httpx.Response) -> str:
        try:
            body = resp.json()
            err = body.get("error", body) if isinstance(body, dict) else body
            msg = err.get("message") if isinstance(err, dict) else None
            text = str(msg if msg else err)
        except (ValueError, AttributeError):
            text = resp.text
        return self._redact(text.strip()[:500])

    async def _attempt(self, body: dict[str, Any]) -> dict[str, Any]:
        client = self._ensure_client()
        assert self._sem is not None
        async with self._sem:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            self.http_attempts += 1
            try:
                async with asyncio.timeout(self.endpoint.timeout_s):
                    resp = await client.post("chat/completions", json=body)
            except (TimeoutError, httpx.TimeoutException) as e:
                raise _Retryable(f"no reply within {self.endpoint.timeout_s:g}s", kind="timeout") from e
            except httpx.ConnectError as e:
                raise _Retryable(f"cannot connect ({type(e).__name__})", kind="connect") from e
            except httpx.TransportError as e:
                raise _Retryable(f"connection dropped ({type(e).__name__}: {e})", kind="transport") from e
            finally:
                self.in_flight -= 1
        if resp.status_code >= 400:
            text = self._error_text(resp)
            if resp.status_code in RETRYABLE_STATUS:
                raise _Retryable(
                    f"HTTP {resp.status_code}: {text}",
                    kind="status",
                    status=resp.status_code,
                    retry_after=_parse_retry_after(resp.headers.get("retry-after")),
                )
            cls = ModelUnavailable if resp.status_code in (401, 403, 404) else ModelHTTPError
            kw = {"status_code": resp.status_code} if cls is ModelHTTPError else {}
            raise self._err(cls, f"HTTP {resp.status_code} from chat/completions: {text}", **kw)
        try:
            data = resp.json()
            data["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise _Retryable(
                f"malformed response body ({self._redact(resp.text[:200])!r})", kind="body"
            ) from e
        return data

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        ep = self.endpoint
        delay = min(ep.backoff_max_s, ep.backoff_initial_s * (2**attempt)) * random.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay * 0.1, min(retry_after, ep.max_retry_after_s))
        return delay

    async def _post_with_retries(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        attempts = 0
        while True:
            attempts += 1
            try:
                return await self._attempt(body), attempts
            except _Retryable as e:
                if attempts > self.endpoint.max_retries:
                    msg = f"gave up after {attempts} attempt(s): {e.reason}"
                    if e.kind == "timeout":
                        raise self._err(ModelTimeout, msg) from e
                    if e.kind == "connect":
                        raise self._err(ModelUnavailable, msg) from e
                    if e.kind == "status":
                        raise self._err(ModelHTTPError, msg, status_code=e.status or 0) from e
                    raise self._err(ModelError, msg) from e
                delay = self._backoff(attempts - 1, e.retry_after)
                self.retries += 1
                log.warning(
                    "model %s at %s: attempt %d failed (%s); retrying in %.2fs",
                    self.model_id,
                    self.endpoint.base_url,
                    attempts,
                    self._redact(e.reason),
                    delay,
                )
                await asyncio.sleep(delay)

    # ------------------------------------------------------------------ request body
    def _body(
        self, request: ChatRequest, messages: list[dict[str, Any]], dialect: Dialect | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": messages,
            "temperature": float(request.temperature),
            "top_p": float(request.top_p),
            "max_tokens": int(request.max_tokens),
        }
        if request.seed is not None:
            body["seed"] = int(request.seed)
        if request.json_schema is not None:
            body["response_format"] = self._response_format(request.json_schema, request.schema_name, dialect)
        body.update(self.endpoint.extra_body)
        return body

    @staticmethod
    def _response_format(schema: dict[str, Any], name: str, dialect: Dialect | None) -> dict[str, Any]:
        if dialect == "json_object":
            return {"type": "json_object", "schema": schema}
        safe_name = re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:64] or "output"
        return {"type": "json_schema", "json_schema": {"name": safe_name, "schema": schema, "strict": True}}

    # ------------------------------------------------------------------ dialect detection
    async def _probe(self, dialect: Dialect) -> int | None:
        """One unretried tiny structured request; returns the HTTP status (None on success)."""
        body = {
            "model": self.model_id,
            "messages": [{"role": "user", "content": 'Reply with {"ok": true}.'}],
            "max_tokens": 8,
            "temperature": 0.0,
            "response_format": self._response_format(_PROBE_SCHEMA, "probe", dialect),
        }
        body.update(self.endpoint.extra_body)
        client = self._ensure_client()
        try:
            async with asyncio.timeout(self.endpoint.timeout_s):
                resp = await client.post("chat/completions", json=body)
        except (TimeoutError, httpx.TimeoutException) as e:
            raise self._err(ModelTimeout, f"structured-output probe ({dialect}) timed out") from e
        except httpx.TransportError as e:
            raise self._err(ModelUnavailable, f"structured-output probe failed: {type(e).__name__}") from e
        if resp.status_code in (401, 403):
            raise self._err(ModelUnavailable, f"authentication refused (HTTP {resp.status_code})")
        return None if resp.status_code < 400 else resp.status_code

    async def detect_dialect(self) -> Dialect:
        if self._dialect is not None:
            return self._dialect
        self._ensure_client()
        assert self._dialect_lock is not None
        async with self._dialect_lock:
            if self._dialect is not None:
                return self._dialect
            status = await self._probe("json_schema")
            if status is None:
                self._dialect = "json_schema"
            else:
                status2 = await self._probe("json_object")
                if status2 is None:
                    self._dialect = "json_object"
                else:
                    log.warning(
                        "model %s at %s: neither structured-output dialect accepted (HTTP %s / %s); "
                        "using json_schema",
                        self.model_id,
                        self.endpoint.base_url,
                        status,
                        status2,
                    )
                    self._dialect = "json_schema"
            log.info(
                "model %s at %s: structured output dialect %s",
                self.model_id,
                self.endpoint.base_url,
                self._dialect,
            )
            return self._dialect

    # ------------------------------------------------------------------ protocol
    async def list_models(self) -> list[str]:
        client = self._ensure_client()
        timeout = min(self.endpoint.timeout_s, max(self.endpoint.connect_timeout_s, 5.0))
        try:
            async with asyncio.timeout(timeout):
                resp = await client.get("models")
        except (TimeoutError, httpx.TimeoutException) as e:
            raise self._err(
                ModelUnavailable, f"endpoint did not answer GET /models within {timeout:g}s"
            ) from e
        except httpx.TransportError as e:
            raise self._err(ModelUnavailable, f"endpoint unreachable ({type(e).__name__})") from e
        if resp.status_code in (401, 403):
            raise self._err(
                ModelUnavailable,
                f"authentication refused (HTTP {resp.status_code}): {self._error_text(resp)}",
            )
        if resp.status_code >= 400:
            raise self._err(
                ModelUnavailable, f"GET /models answered HTTP {resp.status_code}: {self._error_text(resp)}"
            )
        try:
            return [str(m["id"]) for m in resp.json()["data"]]
        except (ValueError, KeyError, TypeError) as e:
            raise self._err(
                ModelUnavailable, "GET /models answered something that is not a model list"
            ) from e

    async def check(self) -> None:
        served = await self.list_models()
        if self.model_id not in served:
            raise self._err(ModelUnavailable, f"model {self.model_id!r} is not served here; served: {served}")
        if self._dialect is None:
            await self.detect_dialect()

    async def chat(self, request: ChatRequest) -> ChatReply:
        t0 = time.perf_counter()
        dialect: Dialect | None = None
        if request.json_schema is not None:
            dialect = await self.detect_dialect()
            validator_cls = jsonschema.validators.validator_for(request.json_schema)
            validator = validator_cls(request.json_schema)
        messages = to_wire_messages(request.messages)
        usage = Usage()
        attempts = 0
        texts: list[str] = []
        for round_ in range(2):  # the first answer, then at most one repair
            data, n = await self._post_with_retries(self._body(request, messages, dialect))
            attempts += n
            u = data.get("usage") or {}
            call_usage = Usage(int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0), 1)
            usage = usage + call_usage
            self.usage = self.usage + call_usage
            choice = data["choices"][0]
            msg = choice.get("message") or {}
            text = msg.get("content") or ""
            texts.append(text)
            finish = choice.get("finish_reason")
            if msg.get("refusal") or finish == "content_filter":
                raise self._err(
                    ModelReplyError,
                    f"model refused: {str(msg.get('refusal') or finish)[:200]}",
                    raw_text=text or str(msg.get("refusal")),
                    raw_texts=texts,
                    usage=usage,
                )
            if request.json_schema is None:
                return self._reply(text, None, usage, t0, data, attempts, finish)
            try:
                # strict=False: small models put raw newlines/tabs inside strings; the content is fine.
                parsed = json.loads(_strip_fences(text), strict=False)
                errors = sorted(validator.iter_errors(parsed), key=lambda e: list(e.path))
                if errors:
                    where = "/".join(map(str, errors[0].absolute_path)) or "<root>"
                    raise ValueError(f"schema violation at {where}: {errors[0].message[:200]}")
                if not isinstance(parsed, dict):
                    raise TypeError("top-level value is not a JSON object")
            except (ValueError, TypeError) as e:  # JSONDecodeError is a ValueError
                problem = str(e)[:300]
                if finish == "length":
                    problem += f" (reply cut at max_tokens={request.max_tokens})"
                if round_ == 0:
                    log.warning(
                        "model %s at %s: invalid structured reply (%s); one repair retry",
                        self.model_id,
                        self.endpoint.base_url,
                        problem,
                    )
                    messages = messages + [
                        {"role": "assistant", "content": text},
                        {"role": "user", "content": REPAIR_INSTRUCTION.format(error=problem)},
                    ]
                    continue
                raise self._err(
                    ModelReplyError,
                    f"reply is not valid JSON for schema {request.schema_name!r} "
                    f"after one repair retry: {problem}",
                    raw_text=text,
                    raw_texts=texts,
                    usage=usage,
                ) from None
            return self._reply(text, parsed, usage, t0, data, attempts, finish)
        raise AssertionError("unreachable")

    def _reply(
        self,
        text: str,
        parsed: Any,
        usage: Usage,
        t0: float,
        data: dict[str, Any],
        attempts: int,
        finish: str | None,
    ) -> ChatReply:
        return ChatReply(
            text=text,
            parsed=parsed,
            usage=usage,
            latency_s=time.perf_counter() - t0,
            model=str(data.get("model") or self.model_id),
            attempts=attempts,
            finish_reason=finish,
        )
