"""``OpenAICompatChat``: the ``ChatModel`` over the OpenAI chat-completions API.

One chat call: the structured-output dialect is decided first (a start-up probe, see :mod:`.startup`),
the request is posted with retries and the circuit breaker (:mod:`.connection`), a prompt that leaves
too little room for ``max_tokens`` is asked again with the room left, a truncated reply
(``finish_reason == "length"``) is never parsed as valid but asked again once with a larger budget,
an invalid structured reply gets exactly one repair retry, and usage is accounted.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Self

import httpx
import jsonschema

from vidthinker.redact import redact, register_secret, register_url_credentials

from ..base import ChatReply, ChatRequest, ModelError, ModelHTTPError, ModelReplyError, Usage
from . import startup
from .connection import Connection
from .endpoint import Dialect, OpenAIEndpoint, endpoint_error, redact_for
from .replies import context_overflow, first_choice, is_refusal, larger_budget, parse_structured, reply_usage
from .request_body import chat_body, to_wire_messages, with_repair_turn

log = logging.getLogger(__name__)


class OpenAICompatChat:
    """``ChatModel`` over the OpenAI chat-completions API."""

    def __init__(self, endpoint: OpenAIEndpoint, *, transport: httpx.AsyncBaseTransport | None = None):
        self.endpoint = endpoint
        register_secret(
            endpoint.api_key.get_secret_value() if endpoint.api_key else None
        )  # vidthinker.redact
        register_url_credentials(endpoint.base_url)  # http://user:pass@host: the password and its Basic token
        self.model_id = endpoint.model
        self._conn = Connection(endpoint, transport)
        self._dialect: Dialect | None = (
            None if endpoint.structured_output == "auto" else endpoint.structured_output
        )
        # what the server reports about the model (GET /models), after check()
        self.max_model_len: int | None = None
        # accounting (read by pipelines and benchmarks)
        self.usage = Usage()

    # ------------------------------------------------------------------ plumbing
    def __repr__(self) -> str:
        return f"OpenAICompatChat(model={self.model_id!r}, base_url={redact(self.endpoint.base_url)!r})"

    @property
    def dialect(self) -> Dialect | None:
        """The structured-output dialect in use (None until detected in ``auto`` mode)."""
        return self._dialect

    @property
    def circuit_open(self) -> bool:
        return self._conn.breaker.is_open

    @property
    def circuit_opened(self) -> int:
        """How many times the circuit opened."""
        return self._conn.breaker.opened

    @property
    def http_attempts(self) -> int:
        return self._conn.http_attempts

    @property
    def retries(self) -> int:
        return self._conn.retries

    @property
    def in_flight(self) -> int:
        return self._conn.in_flight

    @property
    def peak_in_flight(self) -> int:
        return self._conn.peak_in_flight

    @peak_in_flight.setter
    def peak_in_flight(self, value: int) -> None:
        self._conn.peak_in_flight = value

    def _err(self, cls: type[ModelError], message: str, **kw: Any) -> ModelError:
        return endpoint_error(self.endpoint, cls, message, **kw)

    async def aclose(self) -> None:
        await self._conn.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ start-up
    async def model_cards(self) -> list[dict[str, Any]]:
        """``GET /models``, retried like any request: the served models' cards (vLLM's ModelCard
        carries ``max_model_len``)."""
        return await startup.model_cards(self._conn)

    async def list_models(self) -> list[str]:
        return [str(card["id"]) for card in await self.model_cards()]

    async def detect_dialect(self) -> Dialect:
        if self._dialect is not None:
            return self._dialect
        self._conn.ensure_client()
        assert self._conn.dialect_lock is not None
        async with self._conn.dialect_lock:
            if self._dialect is None:
                self._dialect = await startup.choose_dialect(self._conn)
            return self._dialect

    async def check(self) -> None:
        """Start-up check: the model is served, its context fits the largest request the settings
        produce, and the structured-output dialect is decided (unless pinned)."""
        self.max_model_len = await startup.served_context(self._conn)
        startup.require_context(self.endpoint, self.max_model_len)
        if self.endpoint.needed_images > 1 or self.endpoint.needed_videos > 0:
            await startup.check_media(self._conn)
        if self._dialect is None:
            await self.detect_dialect()

    # ------------------------------------------------------------------ protocol
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
            call_usage = reply_usage(data)
            usage = usage + call_usage
            self.usage = self.usage + call_usage
            text, finish, refusal = first_choice(data)
            texts.append(text)
            if is_refusal(finish, refusal):
                raise self._err(
                    ModelReplyError,
                    f"model refused: {redact_for(self.endpoint, str(refusal or finish), 200)}",
                    raw_text=text or str(refusal),
                    raw_texts=texts,
                    usage=usage,
                )
            if request.json_schema is None:
                return self._reply(text, None, usage, t0, data, attempts, finish)
            if finish == "length":
                # Cut off by max_tokens: even text that happens to parse is not the whole reply. Ask
                # again with a larger budget (the same messages), as far as the context allows.
                problem = f"reply truncated: cut off at max_tokens={max_tokens} (finish_reason 'length')"
                larger = larger_budget(max_tokens, self.max_model_len, call_usage.prompt_tokens)
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
                parsed = parse_structured(text, validator)
            except (ValueError, TypeError) as e:  # JSONDecodeError is a ValueError
                problem = redact_for(self.endpoint, str(e), 300)
                if round_ == 0:
                    log.warning(
                        "model %s at %s: invalid structured reply (%s); one repair retry",
                        self.model_id,
                        redact(self.endpoint.base_url),
                        problem,
                    )
                    messages = with_repair_turn(messages, text, problem)
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
            data, n = await self._conn.post_with_retries(
                chat_body(self.endpoint, request, messages, dialect, max_tokens)
            )
            return data, n, max_tokens
        except ModelHTTPError as e:
            overflow = context_overflow(str(e)) if e.status_code == 400 else None
            if overflow is None:
                raise
            limit, prompt = overflow
            room = limit - prompt
            if room < 1 or room >= max_tokens:
                raise
            log.warning(
                "model %s at %s: prompt (%d tokens) + max_tokens=%d exceed the context (%d); asking with "
                "max_tokens=%d",
                self.model_id,
                redact(self.endpoint.base_url),  # a URL may carry credentials (https://user:key@host)
                prompt,
                max_tokens,
                limit,
                room,
            )
            self.max_model_len = self.max_model_len or limit
            data, n = await self._conn.post_with_retries(
                chat_body(self.endpoint, request, messages, dialect, room)
            )
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
