"""Reading what the server answered: the text of an error answer, the shape of a good body, the
messages vLLM answers when a request does not fit, the choice's text and ``finish_reason``, and the
structured reply (code fences stripped, JSON parsed, checked against the schema).

vLLM behaviour read here (vllm-project/vllm, ``vllm/entrypoints/openai/protocol.py``): a request
whose prompt plus ``max_tokens`` exceeds ``max_model_len`` is a 400 ("This model's maximum context
length is ..."); ``--limit-mm-per-prompt`` is enforced per request in ``vllm/multimodal`` (a 400 "At
most N image(s) may be provided in one prompt."); a completion cut by ``max_tokens`` ends with
``finish_reason: "length"``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from ..base import Usage
from .endpoint import OpenAIEndpoint, redact_for

# vLLM's media limit message (vllm/multimodal processing context, `validate_num_items`):
# "At most {limit} {modality}(s) may be provided in one prompt." [+ " Set `--limit-mm-per-prompt` ..."]
MEDIA_LIMIT_RE = re.compile(r"at most \d+ \w+\(s\) may be provided|limit-mm-per-prompt", re.IGNORECASE)
# vLLM's context-length 400 (vllm/entrypoints/openai/serving_engine.py, input validation)
CONTEXT_RE = re.compile(
    r"maximum context length is (\d+) tokens.*?(?:request has|prompt contains(?: at least)?) (\d+) input tokens",
    re.IGNORECASE | re.DOTALL,
)
# a rejection that names the response format: a definite "this dialect is not supported" answer
FORMAT_RE = re.compile(r"response_format|json_schema|json_object|structured", re.IGNORECASE)


def error_text(endpoint: OpenAIEndpoint, resp: httpx.Response) -> str:
    """The server's message of an error answer (OpenAI's ``{"error": {"message": ...}}`` or the
    body), redacted and cut to 500 characters."""
    try:
        body = resp.json()
        err = body.get("error", body) if isinstance(body, dict) else body
        msg = err.get("message") if isinstance(err, dict) else None
        text = str(msg if msg else err)
    except (ValueError, AttributeError):
        text = resp.text
    return redact_for(endpoint, text.strip(), 500)


def check_shape(data: Any, *, models_list: bool) -> None:
    """Raise ValueError/KeyError/IndexError/TypeError unless ``data`` is a model list (GET /models)
    or a chat completion with a first choice that has a message."""
    if models_list:
        [str(m["id"]) for m in data["data"]]
    else:
        data["choices"][0]["message"]


def context_overflow(message: str) -> tuple[int, int] | None:
    """(context limit, prompt tokens) from vLLM's context-length 400, None for any other message."""
    m = CONTEXT_RE.search(message)
    return (int(m.group(1)), int(m.group(2))) if m else None


def reply_usage(data: dict[str, Any]) -> Usage:
    """The token usage of one completion (a missing ``usage`` counts zero tokens, one call)."""
    u = data.get("usage") or {}
    return Usage(int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0), 1)


def first_choice(data: dict[str, Any]) -> tuple[str, str | None, Any]:
    """(text, finish_reason, refusal) of the first choice."""
    choice = data["choices"][0]
    msg = choice.get("message") or {}
    return msg.get("content") or "", choice.get("finish_reason"), msg.get("refusal")


def is_refusal(finish: str | None, refusal: Any) -> bool:
    """The model declined: an OpenAI ``refusal`` or ``finish_reason == "content_filter"``."""
    return bool(refusal) or finish == "content_filter"


def larger_budget(max_tokens: int, max_model_len: int | None, prompt_tokens: int) -> int:
    """The budget to ask again with after a truncated reply: twice as much, as far as the context allows."""
    larger = max_tokens * 2
    if max_model_len is not None and prompt_tokens:
        larger = min(larger, max_model_len - prompt_tokens)
    return larger


def _strip_fences(text: str) -> str:
    t = text.strip()
    m = re.match(r"^```(?:json|JSON)?\s*\n?(.*?)\n?```$", t, re.DOTALL)
    return m.group(1).strip() if m else t


def parse_structured(text: str, validator: Any) -> dict[str, Any]:
    """The JSON object in ``text`` (code fences stripped) that ``validator`` accepts; raises
    ValueError (bad JSON, a schema violation) or TypeError (not an object)."""
    # strict=False: small models put raw newlines/tabs inside strings; the content is fine.
    parsed = json.loads(_strip_fences(text), strict=False)
    errors = sorted(validator.iter_errors(parsed), key=lambda e: list(e.path))
    if errors:
        where = "/".join(map(str, errors[0].absolute_path)) or "<root>"
        raise ValueError(f"schema violation at {where}: {errors[0].message[:200]}")
    if not isinstance(parsed, dict):
        raise TypeError("top-level value is not a JSON object")
    return parsed
