"""The retry policy and the circuit breaker of one client.

Retries: exponential backoff with jitter on 408/409/429/5xx, timeouts, dropped connections and
garbage bodies, ``Retry-After`` honoured up to ``max_retry_after_s``.

Circuit breaker: after ``circuit_failures`` consecutive transient failures (timeouts, dropped
connections, 408/429/5xx, auth refusals, garbage bodies; any definite answer, even a 400, resets the
count) the circuit opens. A request that finds it open waits instead of burning its retries: one
half-open probe request at a time goes out after the same exponential backoff as retries; a success
closes the circuit for everyone; a request that has waited ``circuit_open_s`` raises
:class:`EndpointDown`.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time

from vidthinker.redact import redact

from ..base import EndpointDown, ModelError, ModelHTTPError, ModelTimeout, ModelUnavailable
from .endpoint import OpenAIEndpoint, endpoint_error, redact_for

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class Retryable(Exception):
    """One attempt failed in a way worth retrying (a transient failure)."""

    def __init__(
        self, reason: str, *, kind: str, status: int | None = None, retry_after: float | None = None
    ):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind  # "status" | "timeout" | "connect" | "transport" | "body"
        self.status = status
        self.retry_after = retry_after


class FormatRejected(Exception):
    """A definite answer that the structured-output format of a probe is not supported."""

    def __init__(self, status: int, text: str):
        super().__init__(f"HTTP {status}: {text}")
        self.status = status


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), None if absent or bad."""
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


def backoff(endpoint: OpenAIEndpoint, attempt: int, retry_after: float | None) -> float:
    """Seconds before retry number ``attempt`` (0-based): exponential with jitter, or the server's
    ``Retry-After`` (capped at ``max_retry_after_s``) when it named one."""
    delay = min(endpoint.backoff_max_s, endpoint.backoff_initial_s * (2**attempt)) * random.uniform(0.5, 1.0)
    if retry_after is not None:
        delay = max(delay * 0.1, min(retry_after, endpoint.max_retry_after_s))
    return delay


def give_up(endpoint: OpenAIEndpoint, attempts: int, e: Retryable) -> ModelError:
    """The error a request raises when its retries are spent, by the kind of the last failure."""
    msg = f"gave up after {attempts} attempt(s): {e.reason}"
    if e.kind == "timeout":
        return endpoint_error(endpoint, ModelTimeout, msg)
    if e.kind == "connect":
        return endpoint_error(endpoint, ModelUnavailable, "endpoint unreachable: " + msg)
    if e.kind == "status":
        return endpoint_error(endpoint, ModelHTTPError, msg, status_code=e.status or 0)
    return endpoint_error(
        endpoint, ModelUnavailable, msg
    )  # dropped connections, garbage bodies: infrastructure


class CircuitBreaker:
    """Shared by every request of one client. ``gate`` (one half-open probe at a time) belongs to one
    event loop: :meth:`new_loop` makes a new one when the client's HTTP plumbing is rebuilt."""

    def __init__(self, endpoint: OpenAIEndpoint):
        self.endpoint = endpoint
        self.gate: asyncio.Lock | None = None
        self.failures = 0  # consecutive transient failures
        self.opened_at: float | None = None  # monotonic time the circuit opened
        self.probes_failed = 0
        self.last_failure = ""
        self.opened = 0  # how many times the circuit opened

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    def new_loop(self) -> None:
        self.gate = asyncio.Lock()

    def note_failure(self, reason: str, probe: bool) -> None:
        self.failures += 1
        self.last_failure = reason
        if self.opened_at is None:
            if self.failures >= self.endpoint.circuit_failures:
                self.opened_at = time.monotonic()
                self.probes_failed = 0
                self.opened += 1
                log.warning(
                    "model %s at %s: %d consecutive failures (last: %s); circuit open: requests wait up "
                    "to %gs for the endpoint, one probe at a time",
                    self.endpoint.model,
                    redact(self.endpoint.base_url),
                    self.failures,
                    redact_for(self.endpoint, reason),
                    self.endpoint.circuit_open_s,
                )
        elif probe:
            self.probes_failed += 1
        if probe and self.gate is not None:
            self.gate.release()

    def note_answer(self, probe: bool) -> None:
        """The endpoint answered (a reply, or a definite error such as a 400): it is up."""
        if self.opened_at is not None:
            log.warning(
                "model %s at %s: endpoint answers again; circuit closed after %.1fs",
                self.endpoint.model,
                redact(self.endpoint.base_url),
                time.monotonic() - self.opened_at,
            )
        self.failures = 0
        self.opened_at = None
        self.probes_failed = 0
        if probe and self.gate is not None:
            self.gate.release()

    def release_probe(self, probe: bool) -> None:
        """An attempt ended by neither an answer nor a failure (cancelled): free the probe's gate."""
        if probe and self.gate is not None and self.gate.locked():
            self.gate.release()

    def down(self) -> ModelError:
        return endpoint_error(
            self.endpoint,
            EndpointDown,
            f"endpoint down: circuit open after {self.endpoint.circuit_failures} consecutive failures and "
            f"no answer within {self.endpoint.circuit_open_s:g}s of waiting "
            f"(last failure: {redact_for(self.endpoint, self.last_failure, 200)})",
        )

    async def admit(self, since: float) -> bool:
        """Wait while the circuit is open. Returns True when this request goes out as the half-open
        probe (it then holds the gate until note_failure/note_answer), False when the circuit
        closed meanwhile. Raises EndpointDown once this request has waited circuit_open_s."""
        gate = self.gate
        assert gate is not None
        remaining = since + self.endpoint.circuit_open_s - time.monotonic()
        try:
            async with asyncio.timeout(max(remaining, 0.0)):
                await gate.acquire()
        except TimeoutError:
            raise self.down() from None
        try:
            if self.opened_at is None:
                gate.release()
                return False
            remaining = since + self.endpoint.circuit_open_s - time.monotonic()
            if remaining <= 0:
                gate.release()
                raise self.down()
            await asyncio.sleep(min(backoff(self.endpoint, self.probes_failed, None), remaining))
            if self.opened_at is None:  # a request already in flight got an answer meanwhile
                gate.release()
                return False
            return True
        except asyncio.CancelledError:
            if gate.locked():
                gate.release()
            raise
