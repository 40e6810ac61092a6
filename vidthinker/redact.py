"""One redactor for everything that leaves the process: logs, record errors, summaries, shard
manifests, CLI output, Airflow XComs and model-client exceptions.

What it hides (replaced by ``***``, keeping a prefix that says what was there):

* the values of the secrets in the environment: ``VIDTHINKER_API_KEY``, ``OPENAI_API_KEY``,
  ``HF_TOKEN``, ``HUGGING_FACE_HUB_TOKEN`` and any variable named ``*_API_KEY``, ``*_TOKEN``,
  ``*_SECRET``, ``*_PASSWORD`` (values of 8 characters or more), and values handed to
  :func:`register_secret` (e.g. a key passed to a Ray actor as an argument);
* credentials in URLs: ``http://user:pass@host/v1`` → ``http://***@host/v1``;
* bearer tokens and ``Authorization:`` header values;
* OpenAI-style keys (``sk-…``) and Hugging Face tokens (``hf_…``);
* ``api_key=…``, ``password: …``, ``token=…`` style assignments.

Always redact *before* cutting a text to length (:func:`redact_then_truncate`): cut first, and a key
straddling the cut is no longer recognisable, so its first characters would leak.

Logging: :func:`install_log_redaction` wraps the log-record factory, so every record of every logger is
redacted when it is made, whatever handlers the CLI, Ray or Airflow attach later (a filter on a logger
does not see its children's records, and one on a handler misses handlers added afterwards).
:class:`RedactingFilter` does the same as a ``logging.Filter`` for logging configs that want one.
"""

from __future__ import annotations

import base64
import functools
import logging
import os
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

__all__ = [
    "MASK",
    "RedactingFilter",
    "install_log_redaction",
    "redact",
    "redact_data",
    "redact_exception",
    "redact_then_truncate",
    "redacted_io",
    "register_secret",
    "register_url_credentials",
]

MASK = "***"
MIN_SECRET_LEN = 8
KNOWN_SECRET_VARS = ("VIDTHINKER_API_KEY", "OPENAI_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
_SECRET_VAR_NAME = re.compile(r"(?:API_KEY|APIKEY|TOKEN|SECRET|SECRET_KEY|PASSWORD|PASSWD)$", re.IGNORECASE)

# (pattern, replacement); applied in order after the known secret values are replaced.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # userinfo of a URL: scheme://user:pass@host → scheme://***@host (greedy to the last @ of the authority)
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/?#@]*(?:@[^\s/?#@]*)*@"), r"\1" + MASK + "@"),
    # an Authorization header value, whatever its scheme
    (re.compile(r"""(?i)(\bauthorization["']?\s*[:=]\s*["']?)(?:(?:bearer|basic|token)\s+)?[^\s"',;}]+"""),
     r"\1" + MASK),
    # a bearer token anywhere else ("Bearer sk-...")
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=\-]{6,}"), r"\1" + MASK),
    # basic-auth credentials ("Basic dXNlcjpwYXNz"): base64 with a capital or digit after its first
    # character and a small letter, so prose ("Basic statistics") is left alone
    (re.compile(r"\b(Basic\s+)(?=[A-Za-z0-9+/]+?[A-Z0-9+/])(?=[A-Za-z0-9+/]*[a-z])[A-Za-z0-9+/]{8,}={0,2}"),
     r"\1" + MASK),
    # OpenAI-style and Hugging Face keys
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"), "sk-" + MASK),
    (re.compile(r"\bhf_[A-Za-z0-9]{16,}"), "hf_" + MASK),
    # key = value / "key": "value" / ?key=value
    (re.compile(
        r"""(?i)(\b(?:api[_-]?key|apikey|access[_-]?token|auth[_-]?token|hf[_-]?token|client[_-]?secret|"""
        r"""password|passwd|secret)["']?\s*[:=]\s*["']?)[^\s"'&,;}]+"""),
     r"\1" + MASK),
    (re.compile(r"(?i)([?&;]token=)[^\s&#]+"), r"\1" + MASK),
)

_registered: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Redact ``value`` from everything this process lets out (no-op for empty or short values)."""
    if value and len(value) >= MIN_SECRET_LEN:
        with _lock:
            _registered.add(value)


def register_url_credentials(url: str | None) -> None:
    """Redact the credentials of ``url`` (``http://user:pass@host``) wherever they could show up on
    their own: the password, and the ``user:pass`` pair base64-encoded as an HTTP client sends it in a
    ``Basic`` header (a gateway may echo it without the scheme word)."""
    if not url or "@" not in url:
        return
    try:
        parts = urllib.parse.urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return
    if password:
        user, password = urllib.parse.unquote(user or ""), urllib.parse.unquote(password)
        register_secret(password)
        register_secret(base64.b64encode(f"{user}:{password}".encode()).decode())
    elif user:
        register_secret(urllib.parse.unquote(user))  # a token passed as the user name


def _secret_values(extra: Iterable[str | None] = ()) -> list[str]:
    values = set(_registered)
    for name, value in os.environ.items():
        if value and len(value) >= MIN_SECRET_LEN and (name in KNOWN_SECRET_VARS or _SECRET_VAR_NAME.search(name)):
            values.add(value)
    values.update(v for v in extra if v and len(v) >= MIN_SECRET_LEN)
    return sorted(values, key=len, reverse=True)  # longest first: a secret containing another goes whole


def redact(text: Any, *, secrets: Iterable[str | None] = ()) -> Any:
    """``text`` with every secret replaced by ``***`` (see the module doc). ``None`` stays ``None``;
    ``secrets`` adds values to hide besides the environment's and the registered ones."""
    if text is None:
        return None
    if not isinstance(text, str):
        text = str(text)
    if not text:
        return text
    for value in _secret_values(secrets):
        if value in text:
            text = text.replace(value, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_then_truncate(text: Any, n: int, *, secrets: Iterable[str | None] = ()) -> Any:
    """Redact, then keep at most ``n`` characters (in that order: see the module doc)."""
    text = redact(text, secrets=secrets)
    return text if text is None or len(text) <= n else text[:n]


def redact_data(value: Any) -> Any:
    """A copy of JSON-like data (dicts, lists, tuples, strings) with every string redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(k) if isinstance(k, str) else k: redact_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_data(v) for v in value]
    if isinstance(value, tuple):
        return tuple(redact_data(v) for v in value)
    return value


def redact_exception(error: BaseException) -> BaseException:
    """Redact an exception's message in place (its string arguments) and return it, so it can be
    re-raised with its type and traceback (`str(error)` reads ``args``)."""
    try:
        error.args = tuple(redact(a) if isinstance(a, str) else a for a in error.args)
    except (AttributeError, TypeError):  # pragma: no cover - exotic exceptions
        pass
    return error


# --------------------------------------------------------------------------- logging


def _redact_record(record: logging.LogRecord) -> None:
    if getattr(record, "_vidthinker_redacted", False):
        return
    if isinstance(record.msg, str):
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: let the handler report it as usual
            return
        record.msg, record.args = redact(message), None
    elif isinstance(record.msg, dict):  # structlog passes event dicts through stdlib logging
        record.msg = redact_data(record.msg)
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    record._vidthinker_redacted = True


class RedactingFilter(logging.Filter):
    """A ``logging.Filter`` (for handlers or logging configs) that redacts each record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True


def install_log_redaction() -> None:
    """Redact every log record of this process when it is made (idempotent). Called by the CLI and by
    the Airflow tasks; also adds :class:`RedactingFilter` to the root logger's handlers present now
    and to ``logging.lastResort`` (which prints records when no handler is configured)."""
    with _lock:
        factory = logging.getLogRecordFactory()
        if not getattr(factory, "_vidthinker_redacting", False):
            def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
                record = factory(*args, **kwargs)
                _redact_record(record)
                return record

            redacting_factory._vidthinker_redacting = True  # type: ignore[attr-defined]
            logging.setLogRecordFactory(redacting_factory)
        handlers = list(logging.getLogger().handlers)
        if logging.lastResort is not None:
            handlers.append(logging.lastResort)
        for handler in handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())


F = TypeVar("F", bound=Callable[..., Any])


def redacted_io(fn: F) -> F:
    """Decorate a function whose result or error leaves the process (an Airflow task's XCom): installs
    log redaction, redacts the returned data, and re-raises an exception with its message redacted."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        install_log_redaction()
        try:
            result = fn(*args, **kwargs)
        except BaseException as error:
            raise redact_exception(error)
        return redact_data(result)

    return wrapper  # type: ignore[return-value]
