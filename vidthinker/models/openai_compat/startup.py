"""The start-up check: the model is served, its context fits the largest request, the server takes
as many images and videos as one request carries, and the structured-output dialect is decided by
a retried probe (never from a transient failure).

vLLM behaviour relied on (vllm-project/vllm, ``vllm/entrypoints/openai/protocol.py``): ``GET
/v1/models`` answers ``ModelCard`` objects with ``max_model_len`` (the served context length);
``--limit-mm-per-prompt`` is not reported anywhere, hence the media check request.
"""

from __future__ import annotations

import logging
from typing import Any

from vidthinker.redact import redact

from ..base import EndpointDown, EndpointMismatch, ModelError, ModelHTTPError, ModelTimeout, ModelUnavailable
from .connection import Connection
from .endpoint import Dialect, OpenAIEndpoint, endpoint_error
from .request_body import media_check_body, probe_body
from .resilience import FormatRejected

log = logging.getLogger(__name__)


class _Always500(Exception):
    """Every attempt of a probe answered HTTP 500 without naming the format."""

    def __init__(self, error: ModelError):
        super().__init__(str(error))
        self.error = error


async def model_cards(conn: Connection) -> list[dict[str, Any]]:
    """``GET /models``, retried like any request: the served models' cards (vLLM's ModelCard
    carries ``max_model_len``)."""
    try:
        data, _ = await conn.post_with_retries(None, path="models", wait_on_circuit=False)
    except (ModelHTTPError, ModelTimeout) as e:
        raise endpoint_error(
            conn.endpoint, ModelUnavailable, f"GET /models failed: {str(e).split(' [')[0]}"
        ) from None
    return [dict(m) for m in data["data"] if isinstance(m, dict)]


async def served_context(conn: Connection) -> int | None:
    """The served context length of the endpoint's model (None when the server does not report it);
    raises ModelUnavailable when the model is not served."""
    ep = conn.endpoint
    cards = await model_cards(conn)
    served = [str(c.get("id")) for c in cards]
    if ep.model not in served:
        raise endpoint_error(ep, ModelUnavailable, f"model {ep.model!r} is not served here; served: {served}")
    card = next(c for c in cards if str(c.get("id")) == ep.model)
    reported = card.get("max_model_len")
    return int(reported) if isinstance(reported, int) and reported > 0 else None


def require_context(ep: OpenAIEndpoint, max_model_len: int | None) -> None:
    """Raise EndpointMismatch when the largest request these settings produce exceeds the served context."""
    need = ep.needed_context
    if need is not None and max_model_len is not None and need > max_model_len:
        why = f" ({ep.needed_context_why})" if ep.needed_context_why else ""
        raise endpoint_error(
            ep,
            EndpointMismatch,
            f"the served context (max_model_len={max_model_len} tokens) is smaller than the "
            f"largest request these settings produce, about {need} tokens{why}; serve with "
            f"--max-model-len >= {need} (`vidthinker serve-args` prints the vllm serve flags the "
            "settings need) or lower the settings",
        )


async def check_media(conn: Connection) -> None:
    """One tiny request with as many images and videos as the largest request will carry
    (max_tokens 1): a server that refuses them stops the run here, before anything is paid."""
    ep = conn.endpoint
    images, videos = ep.needed_images, ep.needed_videos
    body = media_check_body(ep)
    what = f"{images} image(s)" + (f" and {videos} video(s)" if videos else "")
    try:
        await conn.post_with_retries(body, wait_on_circuit=False)
    except EndpointMismatch as e:
        raise endpoint_error(
            ep,
            EndpointMismatch,
            f"the server refuses {what} in one request, which these settings send: {str(e).split(' [')[0]}",
        ) from None
    except ModelHTTPError as e:
        if e.transient:
            raise endpoint_error(
                ep, ModelUnavailable, f"media check got no answer: {str(e).split(' [')[0]}"
            ) from None
        raise endpoint_error(
            ep, EndpointMismatch, f"the model does not take {what} in one request: {str(e).split(' [')[0]}"
        ) from None
    except ModelTimeout as e:
        raise endpoint_error(
            ep, ModelUnavailable, f"media check got no answer: {str(e).split(' [')[0]}"
        ) from None


async def _probe(conn: Connection, dialect: Dialect) -> int | None:
    """A tiny structured request, retried like any request; returns None when the server
    accepts the format, the HTTP status of a definite rejection otherwise. A probe that only
    ever meets transient failures raises ModelUnavailable: the dialect is never decided from
    a transient failure."""
    try:
        await conn.post_with_retries(
            probe_body(conn.endpoint, dialect), format_probe=True, wait_on_circuit=False
        )
    except FormatRejected as e:
        return e.status
    except EndpointDown:
        raise
    except ModelError as e:
        if isinstance(e, ModelUnavailable):
            raise
        error = endpoint_error(
            conn.endpoint,
            ModelUnavailable,
            f"structured-output probe ({dialect}) got no definite answer: {str(e).split(' [')[0]}",
        )
        if isinstance(e, ModelHTTPError) and e.status_code == 500:
            raise _Always500(error) from None
        raise error from None
    return None


async def choose_dialect(conn: Connection) -> Dialect:
    """Probe json_schema, then json_object when needed; the dialect the server takes."""
    ep = conn.endpoint
    dialect: Dialect
    decided: Dialect | None = None
    status: int | None = None
    try:
        status = await _probe(conn, "json_schema")
    except _Always500 as e:
        # Every attempt answered a bare 500. llama-cpp-python does that for json_schema when
        # its FastAPI prints validation errors as "" (older FastAPI versions). Decide for
        # json_object only on a definite 2xx for it (the server is up and answers that
        # format); if json_object fails too, this is an outage.
        try:
            answered = await _probe(conn, "json_object") is None
        except _Always500:
            answered = False
        if not answered:
            raise e.error from None
        decided = "json_object"
    if decided is not None:
        dialect = decided
    elif status is None:
        dialect = "json_schema"
    else:
        try:
            status2 = await _probe(conn, "json_object")
        except _Always500 as e:
            raise e.error from None
        if status2 is None:
            dialect = "json_object"
        else:
            log.warning(
                "model %s at %s: neither structured-output dialect accepted (HTTP %s / %s); "
                "using json_schema",
                ep.model,
                redact(ep.base_url),
                status,
                status2,
            )
            dialect = "json_schema"
    log.info("model %s at %s: structured output dialect %s", ep.model, redact(ep.base_url), dialect)
    return dialect
