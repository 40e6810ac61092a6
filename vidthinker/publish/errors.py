"""Why publishing stops: `PublishError` (with whether a retry can help) and the review gate's refusal."""

from __future__ import annotations


class PublishError(RuntimeError):
    """Publishing cannot go on; the message says why and what to do (and never contains the token).
    `retryable`: a transient hub failure (unreachable, conflict, 5xx) rather than bad input or credentials."""

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


class ReviewGateError(PublishError):
    """The run's reviewed frame precision is under publish.min_reviewed_frame_precision (vidthinker/review/publishing.py)."""
