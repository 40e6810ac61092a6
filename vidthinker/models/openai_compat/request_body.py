"""What goes over the wire: chat messages with their image and video parts, the chat-completions body,
structured output in either dialect, the repair turn, and the bodies of the start-up probes.

vLLM's ``ChatCompletionRequest`` (vllm-project/vllm, ``vllm/entrypoints/openai/protocol.py``) accepts
both ``max_tokens`` and ``max_completion_tokens``; the bodies here send ``max_tokens``.
"""

from __future__ import annotations

import re
from typing import Any

from ..base import ChatRequest, ImagePart, Message, TextPart, VideoPart
from .endpoint import Dialect, OpenAIEndpoint

REPAIR_INSTRUCTION = (
    "Your previous reply was not valid JSON matching the required schema ({error}). "
    "Reply again with only the corrected JSON object, no prose and no code fences."
)
PROBE_SCHEMA = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}},
    "required": ["ok"],
    "additionalProperties": False,
}


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


def response_format(schema: dict[str, Any], name: str, dialect: Dialect | None) -> dict[str, Any]:
    """The ``response_format`` of a structured request in the server's dialect."""
    if dialect == "json_object":
        return {"type": "json_object", "schema": schema}
    safe_name = re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:64] or "output"
    return {"type": "json_schema", "json_schema": {"name": safe_name, "schema": schema, "strict": True}}


def chat_body(
    endpoint: OpenAIEndpoint,
    request: ChatRequest,
    messages: list[dict[str, Any]],
    dialect: Dialect | None,
    max_tokens: int | None = None,
) -> dict[str, Any]:
    """The chat-completions body of one request (``max_tokens`` overrides the request's budget)."""
    body: dict[str, Any] = {
        "model": endpoint.model,
        "messages": messages,
        "temperature": float(request.temperature),
        "top_p": float(request.top_p),
        "max_tokens": int(max_tokens or request.max_tokens),
    }
    if request.seed is not None:
        body["seed"] = int(request.seed)
    if request.json_schema is not None:
        body["response_format"] = response_format(request.json_schema, request.schema_name, dialect)
    body.update(endpoint.extra_body)
    return body


def with_repair_turn(messages: list[dict[str, Any]], text: str, problem: str) -> list[dict[str, Any]]:
    """The messages of the one repair retry: the invalid reply, then what was wrong with it."""
    return messages + [
        {"role": "assistant", "content": text},
        {"role": "user", "content": REPAIR_INSTRUCTION.format(error=problem)},
    ]


def probe_body(endpoint: OpenAIEndpoint, dialect: Dialect) -> dict[str, Any]:
    """A tiny structured request in ``dialect``: does the server accept that format?"""
    body = {
        "model": endpoint.model,
        "messages": [{"role": "user", "content": 'Reply with {"ok": true}.'}],
        "max_tokens": 8,
        "temperature": 0.0,
        "response_format": response_format(PROBE_SCHEMA, "probe", dialect),
    }
    body.update(endpoint.extra_body)
    return body


def media_check_body(endpoint: OpenAIEndpoint) -> dict[str, Any]:
    """One tiny request (max_tokens 1) with as many images and videos as the largest request carries."""
    images, videos = endpoint.needed_images, endpoint.needed_videos
    parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": _probe_jpeg()}}] * images
    if videos:
        parts += [{"type": "video_url", "video_url": {"url": _probe_video()}}] * videos
    parts.append({"type": "text", "text": "Reply with OK."})
    body = {
        "model": endpoint.model,
        "messages": [{"role": "user", "content": parts}],
        "max_tokens": 1,
        "temperature": 0.0,
    }
    body.update(endpoint.extra_body)
    return body


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
