"""Chat backend for any OpenAI-compatible server (``vllm serve`` first, llama-cpp-python's server too).

Plain ``httpx`` (no SDK retry layer): bounded in-flight requests, a total timeout per HTTP attempt,
retries with exponential backoff + jitter on 429 / 5xx / timeouts / dropped connections (Retry-After
honoured), a circuit breaker shared by all requests of one client, JSON-schema structured output in
two dialects (decided by a retried start-up probe), jsonschema validation with exactly one repair
retry, truncated replies (``finish_reason == "length"``) never parsed as valid, usage accounting.
The API key lives only in the HTTP client's headers: it is never logged, never in a repr, and
redacted from any server text that ends up in an exception.

Circuit breaker: after ``circuit_failures`` consecutive transient failures (timeouts, dropped
connections, 408/429/5xx, auth refusals, garbage bodies; any definite answer, even a 400, resets the
count) the circuit opens. A request that finds it open waits instead of burning its retries: one
half-open probe request at a time goes out after the same exponential backoff as retries; a success
closes the circuit for everyone; a request that has waited ``circuit_open_s`` raises
:class:`EndpointDown`.

vLLM behaviour this client relies on (vllm-project/vllm, ``vllm/entrypoints/openai/protocol.py``):
``GET /v1/models`` answers ``ModelCard`` objects with ``max_model_len`` (the served context length);
``ChatCompletionRequest`` accepts ``max_tokens`` and ``max_completion_tokens``; a request whose
prompt plus ``max_tokens`` exceeds ``max_model_len`` is a 400 ("This model's maximum context length
is ..."); ``--limit-mm-per-prompt`` is enforced per request in ``vllm/multimodal`` (a 400 "At most N
image(s) may be provided in one prompt."); a completion cut by ``max_tokens`` ends with
``finish_reason: "length"``.
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

from vidthinker.redact import redact, redact_then_truncate, register_secret, register_url_credentials

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
    EndpointDown,
    EndpointMismatch,
    http_status_transient,
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
    circuit_failures: int = Field(5, ge=1)
    circuit_open_s: float = Field(120.0, ge=0)
    # the largest request (prompt estimate + max_tokens) the caller will send; checked at start-up
    # against the served model's max_model_len when the server reports one (vLLM does)
    needed_context: int | None = Field(None, ge=1)
    needed_context_why: str = ""
    # the most media one request will carry; when more than one image or any video, check() sends
    # one tiny request with that many parts (vLLM's --limit-mm-per-prompt is not reported anywhere)
    needed_images: int = Field(0, ge=0)
    needed_videos: int = Field(0, ge=0)
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
    """Internal: one attempt failed in a way worth retrying (a transient failure)."""

    def __init__(
        self, reason: str, *, kind: str, status: int | None = None, retry_after: float | None = None
    ):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind  # "status" | "timeout" | "connect" | "transport" | "body"
        self.status = status
        self.retry_after = retry_after


class _Always500(Exception):
    """Internal: every attempt of a probe answered HTTP 500 without naming the format."""

    def __init__(self, error: ModelError):
        super().__init__(str(error))
        self.error = error


class _FormatRejected(Exception):
    """Internal: a definite answer that the structured-output format of a probe is not supported."""

    def __init__(self, status: int, text: str):
        super().__init__(f"HTTP {status}: {text}")
        self.status = status


# vLLM's media limit message (vllm/multimodal processing context, `validate_num_items`):
# "At most {limit} {modality}(s) may be provided in one prompt." [+ " Set `--limit-mm-per-prompt` ..."]
_MEDIA_LIMIT_RE = re.compile(r"at most \d+ \w+\(s\) may be provided|limit-mm-per-prompt", re.IGNORECASE)
# vLLM's context-length 400 (vllm/entrypoints/openai/serving_engine.py, input validation)
_CONTEXT_RE = re.compile(
    r"maximum context length is (\d+) tokens.*?(?:request has|prompt contains(?: at least)?) (\d+) input tokens",
    re.IGNORECASE | re.DOTALL,
)
# a rejection that names the response format: a definite "this dialect is not supported" answer
_FORMAT_RE = re.compile(r"response_format|json_schema|json_object|structured", re.IGNORECASE)


class OpenAICompatChat:
    """``ChatModel`` over the OpenAI chat-completions API."""

    def __init__(self, endpoint: OpenAIEndpoint, *, transport: httpx.AsyncBaseTransport | None = None):
        self.endpoint = endpoint
        register_secret(endpoint.api_key.get_secret_value() if endpoint.api_key else None)  # vidthinker.redact
        register_url_credentials(endpoint.base_url)  # http://user:pass@host: the password and its Basic token
        self.model_id = endpoint.model
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._sem: asyncio.Semaphore | None = None
        self._dialect_lock: asyncio.Lock | None = None
        self._gate: asyncio.Lock | None = None  # one half-open probe at a time
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dialect: Dialect | None = (
            None if endpoint.structured_output == "auto" else endpoint.structured_output
        )
        # circuit breaker (shared by every request of this client)
        self._failures = 0  # consecutive transient failures
        self._opened_at: float | None = None  # monotonic time the circuit opened
        self._probes_failed = 0
        self._last_failure = ""
        self.circuit_opened = 0  # how many times the circuit opened
        # what the server reports about the model (GET /models), after check()
        self.max_model_len: int | None = None
        # accounting (read by pipelines and benchmarks)
        self.usage = Usage()
        self.http_attempts = 0
        self.retries = 0
        self.in_flight = 0
        self.peak_in_flight = 0

    # ------------------------------------------------------------------ plumbing
    def __repr__(self) -> str:
        return f"OpenAICompatChat(model={self.model_id!r}, base_url={redact(self.endpoint.base_url)!r})"

    @property
    def dialect(self) -> Dialect | None:
        """The structured-output dialect in use (None until detected in ``auto`` mode)."""
        return self._dialect

    @property
    def circuit_open(self) -> bool:
        return self._opened_at is not None

    def _err(self, cls: type[ModelError], message: str, **kw: Any) -> ModelError:
        return cls(self._redact(message), endpoint=self.endpoint.base_url, model=self.model_id, **kw)

    def _redact(self, text: str, limit: int | None = None) -> str:
        """vidthinker.redact (this client's key too, even when it is not in the environment), then cut."""
        key = self.endpoint.api_key.get_secret_value() if self.endpoint.api_key else None
        return redact(text, secrets=(key,)) if limit is None else redact_then_truncate(text, limit, secrets=(key,))

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
            self._gate = asyncio.Lock()
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
        return self._redact(text.strip(), 500)

    async def _attempt(
        self, body: dict[str, Any] | None, *, path: str = "chat/completions", format_probe: bool = False
    ) -> dict[str, Any]:
        """One HTTP request (POST body to path, or GET path when body is None); raises _Retryable
        for a transient failure, _FormatRejected for a probe's definite format rejection, and
        ModelError for a definite error answer."""
        client = self._ensure_client()
        assert self._sem is not None
        async with self._sem:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            self.http_attempts += 1
            # GET /models is instant on a live server: a short limit, as a start-up check should have
            limit = self.endpoint.timeout_s
            if body is None:
                limit = min(limit, max(self.endpoint.connect_timeout_s, 5.0))
            try:
                async with asyncio.timeout(limit):
                    if body is None:
                        resp = await client.get(path)
                    else:
                        resp = await client.post(path, json=body)
            except (TimeoutError, httpx.TimeoutException) as e:
                raise _Retryable(f"no reply within {limit:g}s", kind="timeout") from e
            except httpx.ConnectError as e:
                raise _Retryable(f"cannot connect ({type(e).__name__})", kind="connect") from e
            except httpx.TransportError as e:
                raise _Retryable(f"connection dropped ({type(e).__name__}: {e})", kind="transport") from e
            finally:
                self.in_flight -= 1
        if resp.status_code >= 400:
            text = self._error_text(resp)
            if (
                format_probe
                and resp.status_code not in (401, 403, 404, 408, 429)
                and _FORMAT_RE.search(text)
            ):
                # A definite rejection that names the format. llama-cpp-python's server answers a
                # request it cannot validate with a 500 naming the field (its RouteErrorHandler in
                # llama_cpp/server/errors.py wraps route errors into 500s), so a 5xx counts here
                # when, and only when, it names the format; any other 5xx is a transient failure.
                raise _FormatRejected(resp.status_code, text)
            if resp.status_code in RETRYABLE_STATUS:
                raise _Retryable(
                    f"HTTP {resp.status_code}: {text}",
                    kind="status",
                    status=resp.status_code,
                    retry_after=_parse_retry_after(resp.headers.get("retry-after")),
                )
            if resp.status_code in (401, 403):
                raise self._err(
                    ModelUnavailable, f"authentication refused (HTTP {resp.status_code}) by {path}: {text}"
                )
            if resp.status_code == 404:
                raise self._err(ModelUnavailable, f"HTTP 404 from {path}: {text}")
            if resp.status_code == 400 and _MEDIA_LIMIT_RE.search(text):
                raise self._err(
                    EndpointMismatch,
                    f"the server refuses the media of a request (HTTP 400: {text}); serve with a larger "
                    "--limit-mm-per-prompt (`vidthinker serve-args` prints what the settings need)",
                )
            raise self._err(
                ModelHTTPError, f"HTTP {resp.status_code} from {path}: {text}", status_code=resp.status_code
            )
        try:
            data = resp.json()
            if body is None:
                [str(m["id"]) for m in data["data"]]
            else:
                data["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise _Retryable(
                f"malformed response body ({self._redact(resp.text, 200)!r})", kind="body"
            ) from e
        return data

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        ep = self.endpoint
        delay = min(ep.backoff_max_s, ep.backoff_initial_s * (2**attempt)) * random.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay * 0.1, min(retry_after, ep.max_retry_after_s))
        return delay

    # ------------------------------------------------------------------ circuit breaker
    def _note_failure(self, reason: str, probe: bool) -> None:
        self._failures += 1
        self._last_failure = reason
        if self._opened_at is None:
            if self._failures >= self.endpoint.circuit_failures:
                self._opened_at = time.monotonic()
                self._probes_failed = 0
                self.circuit_opened += 1
                log.warning(
                    "model %s at %s: %d consecutive failures (last: %s); circuit open: requests wait up "
                    "to %gs for the endpoint, one probe at a time",
                    self.model_id,
                    redact(self.endpoint.base_url),
                    self._failures,
                    self._redact(reason),
                    self.endpoint.circuit_open_s,
                )
        elif probe:
            self._probes_failed += 1
        if probe and self._gate is not None:
            self._gate.release()

    def _note_answer(self, probe: bool) -> None:
        """The endpoint answered (a reply, or a definite error such as a 400): it is up."""
        if self._opened_at is not None:
            log.warning(
                "model %s at %s: endpoint answers again; circuit closed after %.1fs",
                self.model_id,
                redact(self.endpoint.base_url),
                time.monotonic() - self._opened_at,
            )
        self._failures = 0
        self._opened_at = None
        self._probes_failed = 0
        if probe and self._gate is not None:
            self._gate.release()

    def _down(self) -> ModelError:
        return self._err(
            EndpointDown,
            f"endpoint down: circuit open after {self.endpoint.circuit_failures} consecutive failures and "
            f"no answer within {self.endpoint.circuit_open_s:g}s of waiting "
            f"(last failure: {self._redact(self._last_failure, 200)})",
        )

    async def _admit(self, since: float) -> bool:
        """Wait while the circuit is open. Returns True when this request goes out as the half-open
        probe (it then holds the gate until _note_failure/_note_answer), False when the circuit
        closed meanwhile. Raises EndpointDown once this request has waited circuit_open_s."""
        gate = self._gate
        assert gate is not None
        remaining = since + self.endpoint.circuit_open_s - time.monotonic()
        try:
            async with asyncio.timeout(max(remaining, 0.0)):
                await gate.acquire()
        except TimeoutError:
            raise self._down() from None
        try:
            if self._opened_at is None:
                gate.release()
                return False
            remaining = since + self.endpoint.circuit_open_s - time.monotonic()
            if remaining <= 0:
                gate.release()
                raise self._down()
            await asyncio.sleep(min(self._backoff(self._probes_failed, None), remaining))
            if self._opened_at is None:  # a request already in flight got an answer meanwhile
                gate.release()
                return False
            return True
        except asyncio.CancelledError:
            if gate.locked():
                gate.release()
            raise

    async def _post_with_retries(
        self,
        body: dict[str, Any] | None,
        *,
        path: str = "chat/completions",
        format_probe: bool = False,
        wait_on_circuit: bool = True,
    ) -> tuple[dict[str, Any], int]:
        """One request with retries (transient failures, while the circuit is closed) and the
        circuit breaker (while it is open). Returns (response JSON, HTTP attempts). Start-up
        requests pass wait_on_circuit=False: they count towards the breaker but only retry, so a
        check against a dead endpoint ends after max_retries, not after circuit_open_s."""
        self._ensure_client()
        attempts = 0
        failed = 0  # transient failures while the circuit was closed: these spend max_retries
        since: float | None = None
        while True:
            probe = False
            if wait_on_circuit and self._opened_at is not None:
                if since is None:
                    since = time.monotonic()
                probe = await self._admit(since)
            attempts += 1
            try:
                data = await self._attempt(body, path=path, format_probe=format_probe)
            except _Retryable as e:
                self._note_failure(e.reason, probe)
                if wait_on_circuit and self._opened_at is not None:
                    continue  # wait for the endpoint (or EndpointDown) instead of spending retries
                failed += 1
                if failed > self.endpoint.max_retries:
                    raise self._give_up(attempts, e) from e
                delay = self._backoff(failed - 1, e.retry_after)
                self.retries += 1
                log.warning(
                    "model %s at %s: attempt %d failed (%s); retrying in %.2fs",
                    self.model_id,
                    redact(self.endpoint.base_url),
                    attempts,
                    self._redact(e.reason),
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            except _FormatRejected:
                self._note_answer(probe)
                raise
            except ModelError as e:
                if e.transient:
                    self._note_failure(str(e), probe)
                else:
                    self._note_answer(probe)
                raise
            except BaseException:
                if probe and self._gate is not None and self._gate.locked():
                    self._gate.release()
                raise
            self._note_answer(probe)
            return data, attempts

    def _give_up(self, attempts: int, e: _Retryable) -> ModelError:
        msg = f"gave up after {attempts} attempt(s): {e.reason}"
        if e.kind == "timeout":
            return self._err(ModelTimeout, msg)
        if e.kind == "connect":
            return self._err(ModelUnavailable, "endpoint unreachable: " + msg)
        if e.kind == "status":
            return self._err(ModelHTTPError, msg, status_code=e.status or 0)
        return self._err(ModelUnavailable, msg)  # dropped connections, garbage bodies: infrastructure

    # ------------------------------------------------------------------ request body
    def _body(
        self,
        request: ChatRequest,
        messages: list[dict[str, Any]],
        dialect: Dialect | None,
        max_tokens: int | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": messages,
            "temperature": float(request.temperature),
            "top_p": float(request.top_p),
            "max_tokens": int(max_tokens or request.max_tokens),
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
        """A tiny structured request, retried like any request; returns None when the server
        accepts the format, the HTTP status of a definite rejection otherwise. A probe that only
        ever meets transient failures raises ModelUnavailable: the dialect is never decided from
        a transient failure."""
        body = {
            "model": self.model_id,
            "messages": [{"role": "user", "content": 'Reply with {"ok": true}.'}],
            "max_tokens": 8,
            "temperature": 0.0,
            "response_format": self._response_format(_PROBE_SCHEMA, "probe", dialect),
        }
        body.update(self.endpoint.extra_body)
        try:
            await self._post_with_retries(body, format_probe=True, wait_on_circuit=False)
        except _FormatRejected as e:
            return e.status
        except EndpointDown:
            raise
        except ModelError as e:
            if isinstance(e, ModelUnavailable):
                raise
            error = self._err(
                ModelUnavailable,
                f"structured-output probe ({dialect}) got no definite answer: {str(e).split(' [')[0]}",
            )
            if isinstance(e, ModelHTTPError) and e.status_code == 500:
                raise _Always500(error) from None
            raise error from None
        return None

    async def detect_dialect(self) -> Dialect:
        if self._dialect is not None:
            return self._dialect
        self._ensure_client()
        assert self._dialect_lock is not None
        async with self._dialect_lock:
            if self._dialect is not None:
                return self._dialect
            decided: Dialect | None = None
            status: int | None = None
            try:
                status = await self._probe("json_schema")
            except _Always500 as e:
                # Every attempt answered a bare 500. llama-cpp-python does that for json_schema when
                # its FastAPI prints validation errors as "" (older FastAPI versions). Decide for
                # json_object only on a definite 2xx for it (the server is up and answers that
                # format); if json_object fails too, this is an outage.
                try:
                    answered = await self._probe("json_object") is None
                except _Always500:
                    answered = False
                if not answered:
                    raise e.error from None
                decided = "json_object"
            if decided is not None:
                self._dialect = decided
            elif status is None:
                self._dialect = "json_schema"
            else:
                try:
                    status2 = await self._probe("json_object")
                except _Always500 as e:
                    raise e.error from None
                if status2 is None:
                    self._dialect = "json_object"
                else:
                    log.warning(
                        "model %s at %s: neither structured-output dialect accepted (HTTP %s / %s); "
                        "using json_schema",
                        self.model_id,
                        redact(self.endpoint.base_url),
                        status,
                        status2,
                    )
                    self._dialect = "json_schema"
            log.info(
                "model %s at %s: structured output dialect %s",
                self.model_id,
                redact(self.endpoint.base_url),
                self._dialect,
            )
            return self._dialect

    # ------------------------------------------------------------------ protocol
    async def model_cards(self) -> list[dict[str, Any]]:
        """``GET /models``, retried like any request: the served models' cards (vLLM's ModelCard
        carries ``max_model_len``)."""
        try:
            data, _ = await self._post_with_retries(None, path="models", wait_on_circuit=False)
        except (ModelHTTPError, ModelTimeout) as e:
            raise self._err(ModelUnavailable, f"GET /models failed: {str(e).split(' [')[0]}") from None
        return [dict(m) for m in data["data"] if isinstance(m, dict)]

    async def list_models(self) -> list[str]:
        return [str(card["id"]) for card in await self.model_cards()]

    async def check(self) -> None:
        """Start-up check: the model is served, its context fits the largest request the settings
        produce, and the structured-output dialect is decided (unless pinned)."""
        cards = await self.model_cards()
        served = [str(c.get("id")) for c in cards]
        if self.model_id not in served:
            raise self._err(ModelUnavailable, f"model {self.model_id!r} is not served here; served: {served}")
        card = next(c for c in cards if str(c.get("id")) == self.model_id)
        reported = card.get("max_model_len")
        self.max_model_len = int(reported) if isinstance(reported, int) and reported > 0 else None
        need = self.endpoint.needed_context
        if need is not None and self.max_model_len is not None and need > self.max_model_len:
            why = f" ({self.endpoint.needed_context_why})" if self.endpoint.needed_context_why else ""
            raise self._err(
                EndpointMismatch,
                f"the served context (max_model_len={self.max_model_len} tokens) is smaller than the "
                f"largest request these settings produce, about {need} tokens{why}; serve with "
                f"--max-model-len >= {need} (`vidthinker serve-args` prints the vllm serve flags the "
                "settings need) or lower the settings",
            )
        if self.endpoint.needed_images > 1 or self.endpoint.needed_videos > 0:
            await self._check_media()
        if self._dialect is None:
            await self.detect_dialect()

    async def _check_media(self) -> None:
        """One tiny request with as many images and videos as the largest request will carry
        (max_tokens 1): a server that refuses them stops the run here, before anything is paid."""
        images, videos = self.endpoint.needed_images, self.endpoint.needed_videos
        parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": _probe_jpeg()}}] * images
        if videos:
            parts += [{"type": "video_url", "video_url": {"url": _probe_video()}}] * videos
        parts.append({"type": "text", "text": "Reply with OK."})
        body = {"model": self.model_id, "messages": [{"role": "user", "content": parts}], "max_tokens": 1,
                "temperature": 0.0}
        body.update(self.endpoint.extra_body)
        what = f"{images} image(s)" + (f" and {videos} video(s)" if videos else "")
        try:
            await self._post_with_retries(body, wait_on_circuit=False)
        except EndpointMismatch as e:
            raise self._err(
                EndpointMismatch,
                f"the server refuses {what} in one request, which these settings send: "
                f"{str(e).split(' [')[0]}",
            ) from None
        except ModelHTTPError as e:
            if e.transient:
                raise self._err(ModelUnavailable, f"media check got no answer: {str(e).split(' [')[0]}") from None
            raise self._err(
                EndpointMismatch, f"the model does not take {what} in one request: {str(e).split(' [')[0]}"
            ) from None
        except ModelTimeout as e:
            raise self._err(ModelUnavailable, f"media check got no answer: {str(e).split(' [')[0]}") from None

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
        max_tokens = request.max_tokens
        for round_ in range(2):  # the first answer, then at most one repair
            data, n, max_tokens = await self._post_fitting(request, messages, dialect, max_tokens)
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
                    f"model refused: {self._redact(str(msg.get('refusal') or finish), 200)}",
                    raw_text=text or str(msg.get("refusal")),
                    raw_texts=texts,
                    usage=usage,
                )
            if request.json_schema is None:
                return self._reply(text, None, usage, t0, data, attempts, finish)
            if finish == "length":
                # Cut off by max_tokens: even text that happens to parse is not the whole reply. Ask
                # again with a larger budget (the same messages), as far as the context allows.
                problem = f"reply truncated: cut off at max_tokens={max_tokens} (finish_reason 'length')"
                larger = max_tokens * 2
                if self.max_model_len is not None and call_usage.prompt_tokens:
                    larger = min(larger, self.max_model_len - call_usage.prompt_tokens)
                if round_ == 0 and larger > max_tokens:
                    log.warning(
                        "model %s at %s: %s; asking again with max_tokens=%d",
                        self.model_id,
                        redact(self.endpoint.base_url),
                        problem,
                        larger,
                    )
                    max_tokens = larger
                    continue
                raise self._err(
                    ModelReplyError,
                    f"{problem} for schema {request.schema_name!r}"
                    + (" after one retry with a larger budget" if round_ else ""),
                    raw_text=text,
                    raw_texts=texts,
                    usage=usage,
                )
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
                problem = self._redact(str(e), 300)
                if round_ == 0:
                    log.warning(
                        "model %s at %s: invalid structured reply (%s); one repair retry",
                        self.model_id,
                        redact(self.endpoint.base_url),
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

    async def _post_fitting(
        self, request: ChatRequest, messages: list[dict[str, Any]], dialect: Dialect | None, max_tokens: int
    ) -> tuple[dict[str, Any], int, int]:
        """Post; when the server refuses because prompt + max_tokens exceed its context but the
        prompt alone fits, ask once more with max_tokens = the room left (a reply that then runs
        out of room ends with finish_reason 'length' and is handled as truncated)."""
        try:
            data, n = await self._post_with_retries(self._body(request, messages, dialect, max_tokens))
            return data, n, max_tokens
        except ModelHTTPError as e:
            m = _CONTEXT_RE.search(str(e)) if e.status_code == 400 else None
            if m is None:
                raise
            limit, prompt = int(m.group(1)), int(m.group(2))
            room = limit - prompt
            if room < 1 or room >= max_tokens:
                raise
            log.warning(
                "model %s at %s: prompt (%d tokens) + max_tokens=%d exceed the context (%d); asking with "
                "max_tokens=%d",
                self.model_id,
                self.endpoint.base_url,
                prompt,
                max_tokens,
                limit,
                room,
            )
            self.max_model_len = self.max_model_len or limit
            data, n = await self._post_with_retries(self._body(request, messages, dialect, room))
            return data, n + 1, room

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


_PROBE_MEDIA: dict[str, str] = {}


def _probe_jpeg() -> str:
    """A small grey JPEG data URL for the media check."""
    if "jpeg" not in _PROBE_MEDIA:
        import base64
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.new("RGB", (56, 56), (128, 128, 128)).save(buf, format="JPEG", quality=50)
        _PROBE_MEDIA["jpeg"] = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return _PROBE_MEDIA["jpeg"]


def _probe_video() -> str:
    """A two-frame grey H.264 clip data URL for the media check."""
    if "video" not in _PROBE_MEDIA:
        import numpy as np

        from vidthinker.video import mp4_data_url

        _PROBE_MEDIA["video"] = mp4_data_url(np.full((2, 56, 56, 3), 128, np.uint8), 1.0)
    return _PROBE_MEDIA["video"]
