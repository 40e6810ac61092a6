"""The HTTP side of one client: plain ``httpx`` (no SDK retry layer), one client and pool per event
loop, bounded in-flight requests, a total timeout per HTTP attempt, the classification of each answer
(a reply, a definite error, a transient failure), retries, the circuit breaker, attempt accounting.

The API key lives only in the HTTP client's headers: never logged, never in a repr, and redacted from
any server text that ends up in an exception.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx

from vidthinker.redact import redact

from ..base import EndpointMismatch, ModelError, ModelHTTPError, ModelUnavailable
from .endpoint import OpenAIEndpoint, endpoint_error, redact_for
from .replies import FORMAT_RE, MEDIA_LIMIT_RE, check_shape, error_text
from .resilience import (
    RETRYABLE_STATUS,
    CircuitBreaker,
    FormatRejected,
    Retryable,
    backoff,
    give_up,
    parse_retry_after,
)

log = logging.getLogger(__name__)


class Connection:
    """Posts requests to one endpoint with retries and the circuit breaker; counts attempts."""

    def __init__(self, endpoint: OpenAIEndpoint, transport: httpx.AsyncBaseTransport | None = None):
        self.endpoint = endpoint
        self.breaker = CircuitBreaker(endpoint)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._sem: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # serialises the start-up dialect probe; per event loop like the rest of the plumbing
        self.dialect_lock: asyncio.Lock | None = None
        # accounting (read by pipelines and benchmarks)
        self.http_attempts = 0
        self.retries = 0
        self.in_flight = 0
        self.peak_in_flight = 0

    def ensure_client(self) -> httpx.AsyncClient:
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
            self.dialect_lock = asyncio.Lock()
            self.breaker.new_loop()
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and not client.is_closed:
            try:
                await client.aclose()
            except RuntimeError:  # its loop is gone
                pass

    def _err(self, cls: type[ModelError], message: str, **kw: Any) -> ModelError:
        return endpoint_error(self.endpoint, cls, message, **kw)

    async def attempt(
        self, body: dict[str, Any] | None, *, path: str = "chat/completions", format_probe: bool = False
    ) -> dict[str, Any]:
        """One HTTP request (POST body to path, or GET path when body is None); raises Retryable
        for a transient failure, FormatRejected for a probe's definite format rejection, and
        ModelError for a definite error answer."""
        client = self.ensure_client()
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
                raise Retryable(f"no reply within {limit:g}s", kind="timeout") from e
            except httpx.ConnectError as e:
                raise Retryable(f"cannot connect ({type(e).__name__})", kind="connect") from e
            except httpx.TransportError as e:
                raise Retryable(f"connection dropped ({type(e).__name__}: {e})", kind="transport") from e
            finally:
                self.in_flight -= 1
        if resp.status_code >= 400:
            text = error_text(self.endpoint, resp)
            if format_probe and resp.status_code not in (401, 403, 404, 408, 429) and FORMAT_RE.search(text):
                # A definite rejection that names the format. llama-cpp-python's server answers a
                # request it cannot validate with a 500 naming the field (its RouteErrorHandler in
                # llama_cpp/server/errors.py wraps route errors into 500s), so a 5xx counts here
                # when, and only when, it names the format; any other 5xx is a transient failure.
                raise FormatRejected(resp.status_code, text)
            if resp.status_code in RETRYABLE_STATUS:
                raise Retryable(
                    f"HTTP {resp.status_code}: {text}",
                    kind="status",
                    status=resp.status_code,
                    retry_after=parse_retry_after(resp.headers.get("retry-after")),
                )
            if resp.status_code in (401, 403):
                raise self._err(
                    ModelUnavailable, f"authentication refused (HTTP {resp.status_code}) by {path}: {text}"
                )
            if resp.status_code == 404:
                raise self._err(ModelUnavailable, f"HTTP 404 from {path}: {text}")
            if resp.status_code == 400 and MEDIA_LIMIT_RE.search(text):
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
            check_shape(data, models_list=body is None)
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise Retryable(
                f"malformed response body ({redact_for(self.endpoint, resp.text, 200)!r})", kind="body"
            ) from e
        return data

    async def post_with_retries(
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
        self.ensure_client()
        breaker = self.breaker
        attempts = 0
        failed = 0  # transient failures while the circuit was closed: these spend max_retries
        since: float | None = None
        while True:
            probe = False
            if wait_on_circuit and breaker.is_open:
                if since is None:
                    since = time.monotonic()
                probe = await breaker.admit(since)
            attempts += 1
            try:
                data = await self.attempt(body, path=path, format_probe=format_probe)
            except Retryable as e:
                breaker.note_failure(e.reason, probe)
                if wait_on_circuit and breaker.is_open:
                    continue  # wait for the endpoint (or EndpointDown) instead of spending retries
                failed += 1
                if failed > self.endpoint.max_retries:
                    raise give_up(self.endpoint, attempts, e) from e
                delay = backoff(self.endpoint, failed - 1, e.retry_after)
                self.retries += 1
                log.warning(
                    "model %s at %s: attempt %d failed (%s); retrying in %.2fs",
                    self.endpoint.model,
                    redact(self.endpoint.base_url),
                    attempts,
                    redact_for(self.endpoint, e.reason),
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            except FormatRejected:
                breaker.note_answer(probe)
                raise
            except ModelError as e:
                if e.transient:
                    breaker.note_failure(str(e), probe)
                else:
                    breaker.note_answer(probe)
                raise
            except BaseException:
                breaker.release_probe(probe)
                raise
            breaker.note_answer(probe)
            return data, attempts
