"""Settings of the annotate DAG: schedule, defaults of its params, pool and retry policy.

They are meant to be the `airflow` section of `vidthinker.config.Settings` (file key `[airflow]`,
environment `VIDTHINKER_AIRFLOW__<KEY>`). Until that section exists, `airflow_settings()` reads the
same environment variables itself, so deployments configure it the same way either way.
This module imports only pydantic: `vidthinker.config` may import `AirflowSettings` from here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ENV_PREFIX = "VIDTHINKER_AIRFLOW__"
_NONE_WORDS = {"", "none", "null"}


class AirflowSettings(BaseModel):
    """The annotate DAG's schedule, the defaults of its params, and its pool/retry policy."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    schedule: str | None = Field("@daily", description="cron or preset for scheduled runs; none: trigger only")
    manifest: Path | None = Field(None, description="manifest a scheduled run annotates (param `manifest`)")
    out_dir: Path = Field(Path("/data/vidthinker"), description="shards, ledger and run files (param `out_dir`)")
    engine: Literal["ray", "local"] = Field("ray", description="where a shard runs (param `engine`; the CLI's is engine.name)")
    pool: str = Field("vidthinker_models", min_length=1, description="Airflow pool = model-serving slots")
    pool_slots: int = Field(1, ge=1, description="pool slots one shard task takes")
    retries: int = Field(3, ge=0, le=20, description="retries of a shard task")
    retry_delay_s: float = Field(60.0, gt=0, description="first retry delay; doubles each retry")
    max_retry_delay_s: float = Field(1800.0, gt=0, description="cap of the exponential backoff")
    shard_timeout_s: float | None = Field(6 * 3600.0, gt=0, description="a shard task running longer fails")
    conn_id: str = Field("vidthinker_model_endpoint", min_length=1, description="Airflow connection of the model endpoint")

    @field_validator("schedule", "manifest", "shard_timeout_s", mode="before")
    @classmethod
    def _none_words(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in _NONE_WORDS:
            return None
        return value


def _from_environment() -> AirflowSettings:
    values = {}
    for name in AirflowSettings.model_fields:
        raw = os.environ.get(ENV_PREFIX + name.upper())
        if raw is not None:
            values[name] = raw
    try:
        return AirflowSettings.model_validate(values)
    except ValidationError as error:
        bad = "; ".join(f"{ENV_PREFIX}{'.'.join(map(str, e['loc'])).upper()}={e.get('input')!r}: {e['msg']}" for e in error.errors())
        raise ValueError(f"invalid Airflow settings: {bad}") from None


def _settings() -> Any | None:
    try:
        from vidthinker.config import load_settings

        return load_settings()
    except Exception:  # noqa: BLE001 - a bad config must not hide the DAG; its tasks report the error
        return None


def airflow_settings(settings: Any | None = None) -> AirflowSettings:
    """The `airflow` section of the settings when config.py has one, else the environment's values."""
    settings = settings if settings is not None else _settings()
    section = getattr(settings, "airflow", None)
    if section is None:
        return _from_environment()
    return AirflowSettings.model_validate(section.model_dump() if hasattr(section, "model_dump") else section)


class DagDefaults(BaseModel):
    """What the DAG file needs at parse time: its own section and the defaults of its params."""

    airflow: AirflowSettings
    shard_size: int = 64
    ray_address: str | None = None


def dag_defaults() -> DagDefaults:
    """One settings load (file + environment) for the DAG file: `airflow` section, engine defaults."""
    settings = _settings()
    engine = getattr(settings, "engine", None)
    return DagDefaults(airflow=airflow_settings(settings),
                       shard_size=getattr(engine, "shard_size", 64),
                       ray_address=getattr(engine, "ray_address", None))
