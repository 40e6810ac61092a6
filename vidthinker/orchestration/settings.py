"""What the DAG files read at parse time: the `airflow` section of `vidthinker.config.Settings` (file key
`[airflow]`, variables `VIDTHINKER_AIRFLOW__<KEY>`) and the engine defaults of the annotate DAG's params.

Each section is loaded alone (`vidthinker.config.load_section`): a bad value in another section must not hide
the DAGs; the task that uses that section reports it.
"""

from __future__ import annotations

from pydantic import BaseModel

from vidthinker.config import AirflowSettings, ConfigError, EngineSettings, load_section


def airflow_settings() -> AirflowSettings:
    """The `airflow` section in force (config file, environment); ConfigError names a bad key and its source."""
    return load_section("airflow")


class DagDefaults(BaseModel):
    """What the DAG file needs at parse time: its own section and the defaults of its params."""

    airflow: AirflowSettings
    shard_size: int = 64
    ray_address: str | None = None


def dag_defaults() -> DagDefaults:
    """The `airflow` section and the engine defaults for the annotate DAG file (a bad `engine` section leaves
    the params at their built-in defaults; the shard tasks then report it)."""
    try:
        engine = load_section("engine")
    except ConfigError:
        engine = EngineSettings()
    return DagDefaults(airflow=airflow_settings(), shard_size=engine.shard_size, ray_address=engine.ray_address)
