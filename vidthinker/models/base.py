"""The model seam: small protocols for chat models and image embedders.

Stages depend on this module only. Backends (``openai_compat``, caches, offline models) implement
the protocols; nothing here imports an HTTP client.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "ChatModel",
    "ChatReply",
    "ChatRequest",
    "ContentPart",
    "EndpointDown",
    "EndpointMismatch",
    "ImageEmbedder",
    "ImagePart",
    "Message",
    "ModelError",
    "ModelHTTPError",
    "ModelReplyError",
    "ModelTimeout",
    "ModelUnavailable",
    "TextPart",
    "Usage",
    "VideoPart",
    "http_status_transient",
    "l2_normalise",
]

Role = Literal["system", "user", "assistant"]
Detail = Literal["auto", "low", "high"]


# --------------------------------------------------------------------------- content parts
@dataclass(frozen=True, slots=True)
class TextPart:
    text: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    """One image, as a data URL (``data:image/jpeg;base64,...``) or an http(s) URL."""

    url: str
    detail: Detail | None = None

    @classmethod
    def from_jpeg(cls, jpeg: bytes, detail: Detail | None = None) -> ImagePart:
        return cls(url=jpeg_data_url(jpeg), detail=detail)


@dataclass(frozen=True, slots=True)
class VideoPart:
    """A video, for models that take one: either a list of frame data URLs or one video URL.

    On the OpenAI wire a frame list becomes consecutive ``image_url`` parts and a URL becomes a
    ``video_url`` part (the vLLM extension).
    """

    frames: tuple[str, ...] = ()
    url: str | None = None
    detail: Detail | None = None

    def __post_init__(self) -> None:
        if bool(self.frames) == (self.url is not None):
            raise ValueError("VideoPart needs exactly one of frames or url")
        object.__setattr__(self, "frames", tuple(self.frames))


ContentPart = TextPart | ImagePart | VideoPart


def jpeg_data_url(jpeg: bytes) -> str:
    if not jpeg.startswith(b"\xff\xd8"):
        raise ValueError("not JPEG bytes (missing SOI marker)")
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str | tuple[ContentPart, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.content, str):
            object.__setattr__(self, "content", tuple(self.content))

    @classmethod
    def system(cls, text: str) -> Message:
        return cls("system", text)

    @classmethod
    def user(cls, *parts: str | ContentPart) -> Message:
        if len(parts) == 1 and isinstance(parts[0], str):
            return cls("user", parts[0])
        return cls("user", tuple(TextPart(p) if isinstance(p, str) else p for p in parts))

    @classmethod
    def assistant(cls, text: str) -> Message:
        return cls("assistant", text)


# --------------------------------------------------------------------------- request / reply
@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat completion. ``prompt_hash`` (the prompt template's content hash) is not sent;
    it goes into the cache key and the caller's provenance."""

    messages: tuple[Message, ...]
    json_schema: dict[str, Any] | None = None
    schema_name: str = "output"
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int | None = None
    prompt_hash: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "messages", tuple(self.messages))
        if not self.messages:
            raise ValueError("ChatRequest needs at least one message")
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")

    def sampling(self) -> dict[str, Any]:
        return {
            "temperature": float(self.temperature),
            "top_p": float(self.top_p),
            "max_tokens": int(self.max_tokens),
            "seed": self.seed,
        }


@dataclass(frozen=True, slots=True)
class Usage:
    """Token and call accounting. ``calls`` counts requests paid for in this run (a cached reply
    has ``calls == 0`` and ``cached_calls == 1`` but keeps the tokens of the reply it replays)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    cached_calls: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.calls + other.calls,
            self.cached_calls + other.cached_calls,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "calls": self.calls,
            "cached_calls": self.cached_calls,
        }


@dataclass(frozen=True, slots=True)
class ChatReply:
    text: str
    parsed: dict[str, Any] | None
    usage: Usage
    latency_s: float
    model: str
    attempts: int = 1
    cached: bool = False
    finish_reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "parsed": self.parsed,
            "usage": self.usage.as_dict(),
            "latency_s": self.latency_s,
            "model": self.model,
            "attempts": self.attempts,
            "cached": self.cached,
            "finish_reason": self.finish_reason,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChatReply:
        return cls(
            text=d["text"],
            parsed=d.get("parsed"),
            usage=Usage(**d.get("usage", {})),
            latency_s=float(d.get("latency_s", 0.0)),
            model=d.get("model", ""),
            attempts=int(d.get("attempts", 1)),
            cached=bool(d.get("cached", False)),
            finish_reason=d.get("finish_reason"),
        )


# --------------------------------------------------------------------------- protocols
@runtime_checkable
class ChatModel(Protocol):
    model_id: str

    async def chat(self, request: ChatRequest) -> ChatReply: ...

    async def check(self) -> None:
        """Start-up check; raises ModelUnavailable if the model cannot be used."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class ImageEmbedder(Protocol):
    model_id: str

    def embed(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB frames -> (N, D) float32 rows with unit L2 norm."""
        ...


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, eps)).astype(np.float32, copy=False)


# --------------------------------------------------------------------------- errors
class ModelError(Exception):
    """Base of all model errors. Messages name the endpoint and model, never credentials.

    ``transient`` says whether the failure belongs to the endpoint/infrastructure (a rerun may
    succeed: timeouts, 429/5xx after retries, connection errors, auth refusals, an open circuit)
    rather than to the input or the model's reply (permanent)."""

    transient: bool = False

    def __init__(self, message: str, *, endpoint: str | None = None, model: str | None = None):
        from vidthinker.redact import redact

        self.endpoint = redact(endpoint)  # http://user:pass@host/v1 → http://***@host/v1
        self.model = model
        where = []
        if model:
            where.append(f"model={model!r}")
        if endpoint:
            where.append(f"endpoint={self.endpoint}")
        super().__init__(redact(f"{message} [{', '.join(where)}]" if where else message))


class ModelUnavailable(ModelError):
    """Endpoint unreachable, model not served, or authentication refused."""

    transient = True


class EndpointDown(ModelUnavailable):
    """The client's circuit breaker opened after consecutive transient failures and stayed open
    past its wait (``models.circuit_open_s``): the endpoint is down, stop dispatching work."""


class EndpointMismatch(ModelUnavailable):
    """The endpoint serves the model but cannot take the requests these settings produce (its
    context length or its media-per-prompt limit is too small): a deployment or configuration
    mismatch that a rerun will not fix, so not transient."""

    transient = False


class ModelTimeout(ModelError):
    """The request did not complete within the timeout, after all retries."""

    transient = True


class ModelHTTPError(ModelError):
    """The server answered with an error status (non-retryable 4xx, or 429/5xx after retries)."""

    def __init__(
        self, message: str, *, status_code: int, endpoint: str | None = None, model: str | None = None
    ):
        self.status_code = status_code
        super().__init__(message, endpoint=endpoint, model=model)

    @property
    def transient(self) -> bool:  # type: ignore[override]
        """408/429/5xx (the server or its load) and 401/403 (credentials are infrastructure, not
        input) are transient; other 4xx reject the request itself and are permanent."""
        return http_status_transient(self.status_code)


def http_status_transient(status: int) -> bool:
    """Whether an HTTP error status is an endpoint/infrastructure failure (see ModelHTTPError)."""
    return status in (401, 403, 408, 429) or status >= 500


class ModelReplyError(ModelError):
    """The reply could not be used: not JSON / not matching the schema after the repair retry,
    cut off by max_tokens (``finish_reason == "length"``), or a refusal. Permanent
    (``transient`` is False). ``raw_text`` holds the last reply text, ``raw_texts`` every
    attempt's."""

    transient = False

    def __init__(
        self,
        message: str,
        *,
        raw_text: str,
        raw_texts: Sequence[str] = (),
        usage: Usage | None = None,
        endpoint: str | None = None,
        model: str | None = None,
    ):
        self.raw_text = raw_text
        self.raw_texts = tuple(raw_texts) or (raw_text,)
        self.usage = usage or Usage()
        super().__init__(message, endpoint=endpoint, model=model)
