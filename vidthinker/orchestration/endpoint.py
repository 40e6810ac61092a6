"""The model endpoint from an Airflow connection (`vidthinker_model_endpoint`, type http or openai).

    host      → models.base_url  (a full URL, or a host name with `schema` http/https and `port`)
    password  → the API key      (exported to the task as VIDTHINKER_API_KEY, never in settings,
                                  XCom, files or logs; Airflow's secrets masker also redacts it)
    extra     → model names      {"caption_model": ..., "retrieval_model": ..., "verify_model": ...,
                                  "structured_output": "auto|json_schema|json_object", "timeout_s": ...}

Without the connection the settings in force (file/environment, offline defaults) are used unchanged.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from vidthinker.config import API_KEY_ENV_VARS
from vidthinker.redact import register_secret, register_url_credentials

EXTRA_KEYS = {"caption_model", "retrieval_model", "verify_model", "embedder", "structured_output", "timeout_s",
              "max_in_flight", "max_retries"}
EXTRA_ALIASES = {"model": "caption_model", "models": None}


@dataclass(repr=False)
class Endpoint:
    """Model settings overrides from a connection, and the key (kept out of repr and of the overrides)."""

    overrides: dict[str, Any] = field(default_factory=dict)
    _api_key: str | None = None
    source: str = "settings"

    def __repr__(self) -> str:
        return f"Endpoint(source={self.source!r}, overrides={self.overrides!r}, api_key={'***' if self._api_key else None})"

    @property
    def has_key(self) -> bool:
        return bool(self._api_key)

    @contextlib.contextmanager
    def api_key_in_environment(self) -> Iterator[None]:
        """Expose the key to the model client (and to an embedded Ray's workers) for the block only."""
        if not self._api_key:
            yield
            return
        saved = {var: os.environ.get(var) for var in API_KEY_ENV_VARS}
        os.environ[API_KEY_ENV_VARS[0]] = self._api_key
        try:
            yield
        finally:
            for var, value in saved.items():
                if value is None:
                    os.environ.pop(var, None)
                else:
                    os.environ[var] = value


def base_url_of(host: str, schema: str | None = None, port: int | None = None) -> str:
    host = host.strip().rstrip("/")
    if "://" in host:
        if port and not _has_port(host):
            scheme, rest = host.split("://", 1)
            name, slash, path = rest.partition("/")
            return f"{scheme}://{name}:{port}{slash}{path}"
        return host
    scheme = schema if schema in ("http", "https") else ("https" if port == 443 else "http")
    name, slash, path = host.partition("/")
    return f"{scheme}://{name}{f':{port}' if port else ''}{slash}{path}"


def _has_port(url: str) -> bool:
    netloc = url.split("://", 1)[1].split("/", 1)[0]
    return ":" in netloc.rsplit("]", 1)[-1]


def endpoint_from_connection(conn: Any) -> Endpoint:
    """Build the overrides from an Airflow Connection-like object (host, schema, port, password, extra)."""
    if not conn.host:
        raise ValueError(f"connection {conn.conn_id!r} has no host (the model server's base URL)")
    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else dict(conn.extra or {})
    if isinstance(extra.get("models"), dict):
        extra = {**{k: v for k, v in extra.items() if k != "models"}, **extra["models"]}
    if "model" in extra:
        extra.setdefault("caption_model", extra.pop("model"))
    unknown = sorted(set(extra) - EXTRA_KEYS)
    if unknown:
        raise ValueError(f"connection {conn.conn_id!r}: unknown extra key(s) {unknown}; known: {sorted(EXTRA_KEYS)}")
    overrides = {"backend": "openai", "base_url": base_url_of(conn.host, conn.schema, conn.port), **extra}
    register_secret(conn.password)  # redacted from this process's logs, errors and XComs (vidthinker.redact)
    register_url_credentials(overrides["base_url"])
    return Endpoint(overrides=overrides, _api_key=conn.password or None, source=f"connection {conn.conn_id}")


def resolve_endpoint(conn_id: str) -> Endpoint:
    """Read the connection inside a running task; absent → the settings' own models (offline defaults)."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException:
        return Endpoint()
    endpoint = endpoint_from_connection(conn)
    if endpoint.has_key:
        from airflow.sdk.log import mask_secret

        mask_secret(endpoint._api_key)
    return endpoint
