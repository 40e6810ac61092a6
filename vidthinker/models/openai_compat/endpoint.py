"""Where and how to reach one model on an OpenAI-compatible server: the endpoint settings, the API key
from the environment, and the redaction and error helpers every part of the client shares.

The API key lives only in the HTTP client's headers (see :mod:`.connection`): it is never logged,
never in a repr, and :func:`redact_for` removes it from any server text that ends up in an exception.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from vidthinker.config import api_key_from_environment
from vidthinker.redact import redact, redact_then_truncate

from ..base import ModelError

Dialect = Literal["json_schema", "json_object"]


def _key_from_env() -> SecretStr | None:
    value = api_key_from_environment()  # vidthinker.config: the one reader of the key
    return SecretStr(value) if value else None


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


def redact_for(endpoint: OpenAIEndpoint, text: str, limit: int | None = None) -> str:
    """vidthinker.redact (this endpoint's key too, even when it is not in the environment), then cut."""
    key = endpoint.api_key.get_secret_value() if endpoint.api_key else None
    return (
        redact(text, secrets=(key,)) if limit is None else redact_then_truncate(text, limit, secrets=(key,))
    )


def endpoint_error(endpoint: OpenAIEndpoint, cls: type[ModelError], message: str, **kw: Any) -> ModelError:
    """A model error of class ``cls`` that names the endpoint and model, its message redacted."""
    return cls(redact_for(endpoint, message), endpoint=endpoint.base_url, model=endpoint.model, **kw)
