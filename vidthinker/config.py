"""One typed settings object for every VidThinker command, DAG and worker.

Precedence, highest first: CLI flags (`--set section.key=value` or a command's own flags), environment
variables (`VIDTHINKER_SECTION__KEY`), a config file (`--config FILE` or `VIDTHINKER_CONFIG`, TOML or
YAML), then the defaults below. Everything is validated once at start; a bad value is reported as
`section.key = value: reason (from <source>)` before any video is touched.
"""

from __future__ import annotations

import contextvars
import functools
import json
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

ENV_PREFIX = "VIDTHINKER_"
CONFIG_ENV = "VIDTHINKER_CONFIG"
NONE_WORDS = frozenset({"", "none", "null"})


def none_if_word(value: Any) -> Any:
    """"", "none" and "null" (any case) mean None: how an environment variable or a DAG param says "unset"."""
    return None if isinstance(value, str) and value.strip().lower() in NONE_WORDS else value


def comma_list(value: Any) -> Any:
    """"a, b" → ["a", "b"]: how an environment variable or a DAG param gives a list; None → []."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


# A field that accepts the none words above as None (`Annotated[Path | None, NoneWords]`).
NoneWords = BeforeValidator(none_if_word)
# A list field that also accepts "a,b" (`Annotated[list[str], NoDecode, CommaList]`; NoDecode: pydantic-settings
# would otherwise parse the environment variable as JSON).
CommaList = BeforeValidator(comma_list)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class VideoSettings(Section):
    clip_seconds: float = Field(5.0, gt=0, description="clip length in seconds (paper: 5 s)")
    grid_fps: float = Field(1.0, gt=0, le=60, description="frame grid rate in frames/s (paper: 1 fps)")
    decode_backend: Literal["auto", "decord", "pyav"] = Field(
        "auto", description="decord first, PyAV for what decord cannot open (AV1, some containers)"
    )
    decode_timeout_s: float = Field(120.0, gt=0, description="a decode taking longer is abandoned")
    isolate_decode: bool = Field(
        True, description="decode in a child process so a crashing decoder cannot take the worker down"
    )
    allowed_roots: list[Path] | None = Field(
        None, description="videos must resolve inside one of these folders (None: anywhere)"
    )
    request_max_side: int = Field(448, ge=32, le=4096, description="longest side of frames sent to models")
    jpeg_quality: int = Field(85, ge=10, le=100)

    @model_validator(mode="after")
    def _whole_clips(self) -> "VideoSettings":
        per_clip = self.clip_seconds * self.grid_fps
        if per_clip < 1 or abs(per_clip - round(per_clip)) > 1e-9:
            raise ValueError(
                f"clip_seconds * grid_fps must be a whole number of grid frames >= 1, got "
                f"{self.clip_seconds:g} * {self.grid_fps:g} = {per_clip:g}"
            )
        return self


class SynthSettings(Section):
    videos: int = Field(8, ge=1, le=100_000)
    seed: int = 0
    min_seconds: float = Field(20.0, ge=6)
    max_seconds: float = Field(240.0, ge=6)
    width: int = Field(320, ge=96, le=3840)
    height: int = Field(240, ge=72, le=2160)
    fps: int = Field(10, ge=2, le=60)

    @model_validator(mode="after")
    def _ordered(self) -> "SynthSettings":
        if self.max_seconds < self.min_seconds:
            raise ValueError(f"max_seconds ({self.max_seconds}) < min_seconds ({self.min_seconds})")
        return self


class ModelSettings(Section):
    """Which models the stages use. `offline` runs real small weights from the package registry behind
    a loopback llama.cpp server; `openai` talks to any OpenAI-compatible endpoint (`vllm serve`)."""

    backend: Literal["offline", "openai"] = "offline"
    base_url: str = Field("http://127.0.0.1:8000/v1", description="OpenAI-compatible endpoint (backend=openai)")
    caption_model: str = Field("Qwen/Qwen2.5-VL-7B-Instruct", description="stage-1 MLLM served at base_url")
    retrieval_model: str | None = Field(None, description="stage-2 LLM (default: caption_model)")
    verify_model: str | None = Field(None, description="stage-3 yes/no VLM (default: caption_model)")
    embedder: str = Field(
        "efficientnet-lite0", description="stage-3 image embedder: efficientnet-lite0 (offline) or an HF CLIP/SigLIP name"
    )
    embedder_device: str = Field(
        "auto", pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$",
        description="device of the stage-3 embedder: auto (CUDA when the process sees a GPU), cpu, cuda, cuda:N",
    )
    offline_llm: str = Field("smollm2", description="registry GGUF behind the offline llama.cpp server")
    structured_output: Literal["auto", "json_schema", "json_object"] = "auto"
    timeout_s: float = Field(120.0, gt=0)
    max_in_flight: int = Field(16, ge=1, le=4096)
    max_retries: int = Field(3, ge=0, le=20)
    circuit_failures: int = Field(
        5, ge=1, le=1000,
        description="consecutive transient failures (timeouts, 429/5xx, dropped connections) that open a client's circuit",
    )
    circuit_open_s: float = Field(
        120.0, ge=0, le=86_400,
        description="how long a request waits on an open circuit (one probe at a time, with backoff) before EndpointDown",
    )
    qa_frames: int = Field(
        32, ge=1, le=512, description="frames per downstream QA request the served Video-LLM must take (ITG-K; paper: 32)"
    )
    image_tokens: int | None = Field(
        None, ge=1, le=100_000,
        description="prompt tokens per image (default: Qwen2.5-VL's one per 28x28 px at video.request_max_side)",
    )
    prompt_text_tokens: int = Field(
        8192, ge=256, le=1_000_000, description="token budget of the longest prompt's text (stage 2: every clip's caption)"
    )


class AnnotateSettings(Section):
    caption_mode: Literal["per_question", "shared"] = Field(
        "shared", description="shared: one stage-1 call per clip for all questions of a video"
    )
    oracle_captions: bool = Field(False, description="use the manifest's clip_descriptions as stage-1 output")
    use_answer: bool = Field(True, description="let the answer guide what stage 1 describes")
    frames_per_clip: int = Field(4, ge=1, le=64, description="frames of a clip shown to the stage-1 MLLM")
    clip_as_video: bool = Field(
        False, description="send each clip as one H.264 video part (vLLM video_url) instead of JPEG frames"
    )
    caption_max_chars: int = Field(240, ge=16, le=4000, description="longest stage-1 caption (enforced by the reply schema)")
    caption_max_tokens: int = Field(
        168, ge=8, le=4096, description="stage-1 reply budget per question; keep >= caption_max_chars / 2 + 48 so a reply is never cut"
    )
    semantic_threshold: float = Field(0.90, gt=0, le=1, description="semantic-only near-duplicate cosine")
    uniform_threshold: float = Field(0.97, gt=0, le=1, description="uniform policies: near-identical cosine")
    uniform_frames: int = Field(8, ge=1, le=512, description="frames for motion-only / no-clue questions")
    verify_frames: bool = Field(False, description="per-frame yes/no check by a VLM (needs an image model)")
    videos_in_flight: int = Field(2, ge=1, le=256, description="videos annotated concurrently per worker")
    cache_dir: Path | None = Field(None, description="request cache (default: <out>/cache)")
    max_transient_error_share: float = Field(
        0.0, ge=0, le=1,
        description="largest share of a shard's records that may fail transiently (endpoint/infrastructure) for the "
        "shard to count as finished; above it the shard is failed (kept in shards/_failed/, redone on rerun) and "
        "`vidthinker annotate` exits 4",
    )


class EngineSettings(Section):
    """Where annotation runs: `local` (this process, one shard after another) or `ray` (a pool of Ray
    actors, each holding its own stage models; embedded local Ray unless an address is given)."""

    name: Literal["local", "ray"] = Field("local", description="execution engine: local | ray")
    ray_address: str | None = Field(
        None, description="Ray cluster to join, e.g. 10.0.0.5:6379 or ray://head:10001 (default: RAY_ADDRESS, else embedded local Ray)"
    )
    shard_size: int = Field(64, ge=1, le=100_000, description="videos per shard (the unit of work, retry and resume)")
    shard_prefix: str = Field("shard", pattern=r"^[A-Za-z0-9_-]{1,40}$", description="shard ids are <prefix>-<hash of their video ids>")
    workers: int | None = Field(
        None, ge=1, le=4096, description="Ray actors (default: the cluster's CPUs / cpus_per_worker, at most one per shard)"
    )
    cpus_per_worker: float = Field(1.0, gt=0, le=256, description="CPUs reserved per Ray actor (decode, embeddings)")
    gpus_per_worker: float = Field(
        0.0, ge=0, le=16,
        description="GPUs reserved per Ray actor for the stage-3 embedder (fractions share a GPU, e.g. 0.25)",
    )
    local_num_gpus: int | None = Field(None, ge=0, le=1024, description="GPUs of the embedded local Ray (default: detected)")
    local_num_cpus: int | None = Field(None, ge=1, le=4096, description="CPUs of the embedded local Ray (default: all)")
    max_shard_attempts: int = Field(3, ge=1, le=20, description="tries per shard when a Ray worker dies")
    log_to_driver: bool = Field(False, description="stream Ray workers' stdout/stderr to the driver")
    redo_stale: bool = Field(
        False, description="annotate again (overwrite) finished shards made with other annotation settings; "
        "otherwise a run into a folder holding such shards stops with an error"
    )


class PublishSettings(Section):
    """`vidthinker publish` and the publish DAG (the DAG's folder default is airflow.out_dir)."""

    repo_id: Annotated[str | None, NoneWords] = Field(
        None, description="dataset repository (owner/name) the publish DAG publishes to (its `repo_id` param's default)"
    )
    data_file_mb: float = Field(256.0, gt=0, description="target size of a published data file in MB (shards are repacked)")
    min_reviewed_frame_precision: float | None = Field(
        None, ge=0, le=1,
        description="refuse a release whose reviewed frame precision (dashboard review; Wilson 95% lower bound) is "
        "under this (None: off)",
    )


class AirflowSettings(Section):
    """The annotate DAG's schedule, the defaults of its params, and its pool/retry policy."""

    schedule: Annotated[str | None, NoneWords] = Field("@daily", description="cron or preset for scheduled runs; none: trigger only")
    manifest: Annotated[Path | None, NoneWords] = Field(None, description="manifest a scheduled run annotates (param `manifest`)")
    out_dir: Path = Field(Path("/data/vidthinker"), description="shards, ledger and run files (param `out_dir`)")
    engine: Literal["ray", "local"] = Field("ray", description="where a shard runs (param `engine`; the CLI's is engine.name)")
    pool: str = Field("vidthinker_models", min_length=1, description="Airflow pool = model-serving slots")
    pool_slots: int = Field(1, ge=1, description="pool slots one shard task takes")
    retries: int = Field(3, ge=0, le=20, description="retries of a shard task")
    retry_delay_s: float = Field(60.0, gt=0, description="first retry delay; doubles each retry")
    max_retry_delay_s: float = Field(1800.0, gt=0, description="cap of the exponential backoff")
    shard_timeout_s: Annotated[float | None, NoneWords] = Field(6 * 3600.0, gt=0, description="a shard task running longer fails")
    conn_id: str = Field("vidthinker_model_endpoint", min_length=1, description="Airflow connection of the model endpoint")


class TrainEvalSettings(Section):
    """Defaults of the retrain-and-evaluate DAG's params (a manual run can override each)."""

    root: Annotated[Path | None, NoneWords] = Field(
        None, description="registry/, datasets/ and runs/ (None: <airflow.out_dir>/train_eval)"
    )
    shards_dir: Annotated[Path | None, NoneWords] = Field(None, description="record shards (None: <airflow.out_dir>/shards)")
    eval_sets: Annotated[list[str], NoDecode, CommaList] = Field(
        default_factory=list, description="evaluation manifests / benchmark files (comma-separated); the first decides promotion"
    )
    config: Annotated[str | None, NoneWords] = Field(None, description="trainer TrainConfig file (.yaml/.json)")
    preset: Annotated[str | None, NoneWords] = Field(
        None, description="model preset overriding the config's model (tiny, offline, qwen2-1.5b, qwen2-7b)"
    )
    config_overrides: dict[str, Any] = Field(default_factory=dict, description='TrainConfig fields, e.g. {"max_steps": 500}')
    dataset_version: Annotated[str | None, NoneWords] = Field(
        None, description="retrain on this frozen version (None: freeze the current shards)"
    )
    primary: str = Field("recall@8", description="metric promotion is decided on")
    ks: Annotated[list[int], NoDecode, CommaList] = Field(default_factory=lambda: [4, 8, 16, 32], description="K values evaluated")
    baselines: Annotated[list[str], NoDecode, CommaList] = Field(
        default_factory=lambda: ["uniform", "random"], description="baselines in the reports"
    )
    promotion: Literal["auto", "always", "never"] = Field("auto", description="auto: only if significantly better")
    device: Annotated[str | None, NoneWords] = Field(None, description="None: CUDA when available")
    nproc_per_node: int = Field(
        1, ge=1, le=64, description="training processes (GPUs) under torchrun; 1: in the task (fsdp for 7B via config_overrides)"
    )
    num_frames: int = Field(512, ge=1, description="frames scored per video")
    n_boot: int = Field(2000, ge=100, description="bootstrap resamples")


class DashboardSettings(Section):
    out_dir: Path = Field(Path("runs"), description="folder of runs the dashboard shows when no --out is given")


class ReviewSettings(Section):
    reviewer: Annotated[str | None, NoneWords] = Field(
        None, description="name recorded with each review (None: the login name)"
    )


class _SettingsSources(BaseSettings):
    """Where settings come from, highest first: init arguments (the command line), the environment, the file."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="ignore",  # other VIDTHINKER_* variables (API keys, CONFIG) are not settings
        validate_default=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _FileSource(settings_cls))


class Settings(_SettingsSources):
    """All of VidThinker's settings. Sections can be extended; unknown keys are errors."""

    video: VideoSettings = Field(default_factory=VideoSettings)
    synth: SynthSettings = Field(default_factory=SynthSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    annotate: AnnotateSettings = Field(default_factory=AnnotateSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    airflow: AirflowSettings = Field(default_factory=AirflowSettings)
    train_eval: TrainEvalSettings = Field(default_factory=TrainEvalSettings)
    publish: PublishSettings = Field(default_factory=PublishSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    review: ReviewSettings = Field(default_factory=ReviewSettings)

    def dump(self) -> dict[str, Any]:
        return json.loads(self.model_dump_json())


class ConfigError(ValueError):
    """Settings failed validation; the message names each bad key, its value and where it came from."""


_config_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar("vidthinker_config_file", default=None)


def read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path}: not found")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml", ".json"):
            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"config file {path}: unknown format {path.suffix!r} (use .toml, .yaml or .json)")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"config file {path}: cannot parse: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: top level must be a mapping of sections")
    unknown = sorted(set(data) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown section(s) {unknown}; known: {sorted(Settings.model_fields)}"
        )
    return data


class _FileSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = _config_file.get()
        return read_config_file(path) if path is not None else {}


def parse_overrides(assignments: list[str] | None) -> dict[str, Any]:
    """`section.key=value` strings → nested dict; values are YAML scalars (numbers, bools, lists)."""
    nested: dict[str, Any] = {}
    for assignment in assignments or []:
        key, sep, raw = assignment.partition("=")
        path = [part for part in key.strip().split(".") if part]
        if not sep or len(path) < 2:
            raise ConfigError(f"--set {assignment!r}: expected section.key=value (e.g. video.clip_seconds=4)")
        if path[0] not in Settings.model_fields:
            raise ConfigError(f"--set {assignment!r}: unknown section {path[0]!r}; known: {sorted(Settings.model_fields)}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        cursor = nested
        for part in path[:-1]:
            cursor = cursor.setdefault(part, {})
        cursor[path[-1]] = value
    return nested


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _source_of(location: tuple[Any, ...], overrides: dict[str, Any], config_file: Path | None) -> str:
    cursor: Any = overrides
    for part in location:
        if not isinstance(cursor, dict) or part not in cursor:
            break
        cursor = cursor[part]
    else:
        return "command line"
    for depth in range(len(location), 1, -1):  # ("train_eval", "ks", 0): the variable is ..._TRAIN_EVAL__KS
        env_name = ENV_PREFIX + "__".join(str(p).upper() for p in location[:depth])
        if env_name in os.environ:
            return f"environment {env_name}"
    if config_file is not None:
        return f"config file {config_file}"
    return "default"


def load_settings(
    config_file: Path | str | None = None, overrides: dict[str, Any] | list[str] | None = None
) -> Settings:
    """Build and validate the settings; raise ConfigError naming every bad key, value and source."""
    return _load(Settings, config_file, overrides)


@functools.cache
def _one_section_model(name: str) -> type[_SettingsSources]:
    if name not in Settings.model_fields:
        raise ConfigError(f"unknown settings section {name!r}; known: {sorted(Settings.model_fields)}")
    field = Settings.model_fields[name]
    return create_model(f"{type(field.get_default(call_default_factory=True)).__name__}Only",
                        __base__=_SettingsSources, **{name: (field.annotation, field)})


def load_section(name: str, config_file: Path | str | None = None) -> Any:
    """One section from the same sources as `load_settings`, validated alone: a bad value in another section
    does not hide it (a DAG file must still parse; the task that uses the bad section reports it)."""
    return getattr(_load(_one_section_model(name), config_file, None), name)


def load_command_settings(ctx: Any, **command_overrides: object) -> Settings:
    """Settings for a command: file < env < --set < the command's own flags (those not left unset). `ctx` is
    the typer/click context whose `obj` the root callback filled with {"config": FILE, "overrides": [--set ...]};
    a flag is given as section__key=value. Raises ConfigError."""
    obj = getattr(ctx, "obj", None) or {}
    overrides = parse_overrides(obj.get("overrides"))
    flags: dict[str, dict[str, object]] = {}
    for dotted, value in command_overrides.items():
        if value is not None:
            section, key = dotted.split("__", 1)
            flags.setdefault(section, {})[key] = value
    return load_settings(obj.get("config"), _merge(overrides, flags))


def _load(model: type[_SettingsSources], config_file: Path | str | None,
          overrides: dict[str, Any] | list[str] | None) -> Any:
    if config_file is None and os.environ.get(CONFIG_ENV):
        config_file = os.environ[CONFIG_ENV]
    path = Path(config_file) if config_file is not None else None
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    overrides = overrides or {}
    token = _config_file.set(path)
    try:
        if path is not None:
            read_config_file(path)  # fail on a missing file or unknown section before pydantic does
        return model(**overrides)
    except ValidationError as error:
        lines = []
        for item in error.errors():
            location = tuple(p for p in item["loc"])
            key = ".".join(str(p) for p in location)
            value = item.get("input")
            source = _source_of(location, overrides, path)
            lines.append(f"{key} = {value!r}: {item['msg']} (from {source})")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
    except SettingsError as error:  # an environment variable of a list/dict key that is not JSON
        raise ConfigError(f"invalid configuration: {error}: {error.__cause__}") from None
    finally:
        _config_file.reset(token)


def with_overrides(settings: Settings, overrides: dict[str, Any]) -> Settings:
    """A copy of `settings` with nested overrides applied and re-validated."""
    try:
        return Settings.model_validate(_merge(settings.dump(), overrides))
    except ValidationError as error:
        raise ConfigError(f"invalid configuration: {error}") from None


# --------------------------------------------------------------------------- secrets

# Secrets are never settings: a settings file is copied between machines and committed, `vidthinker config show`
# prints every section, and sections end up in run files and fingerprints. So the model endpoint's API key is read
# from the process environment only, here and nowhere else (the Airflow connection's password reaches it through
# the environment too: orchestration.endpoint). The Hugging Face token (HF_TOKEN, else the login file) is read by
# huggingface_hub itself (`huggingface_hub.get_token`).
API_KEY_ENV_VARS = ("VIDTHINKER_API_KEY", "OPENAI_API_KEY")


def api_key_from_environment() -> str | None:
    """The model endpoint's API key: VIDTHINKER_API_KEY, else OPENAI_API_KEY, else None. Never log or store it."""
    for name in API_KEY_ENV_VARS:
        value = os.environ.get(name)
        if value:
            return value
    return None
