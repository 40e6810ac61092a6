"""The production compose file validates (docker-compose 1.29 `config`, else the compose-spec JSON schema
through check-jsonschema), has the services, GPU reservations and healthchecks the stack needs, and the
Airflow init script creates the pool and the connection idempotently."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.airflow.conftest import AIRFLOW_BIN, REPO

DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"
SECRETS = ("POSTGRES_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY",
           "AIRFLOW_ADMIN_PASSWORD", "VLLM_API_KEY")
LONG_RUNNING = {"postgres", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                "ray-head", "ray-worker", "vllm"}


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith(("VIDTHINKER_", "VLLM_"))}


def _check_jsonschema() -> list[str] | None:
    exe = shutil.which("check-jsonschema") or (str(Path(sys.executable).with_name("check-jsonschema"))
                                               if Path(sys.executable).with_name("check-jsonschema").is_file() else None)
    return [exe] if exe else None


def rendered(tmp_path) -> dict:
    """The compose file after interpolation (docker-compose), or as written (schema check only)."""
    compose = shutil.which("docker-compose")
    if compose:
        env_file = tmp_path / "test.env"
        env_file.write_text("".join(f"{name}=test-{name.lower()}\n" for name in SECRETS))
        done = subprocess.run([compose, "-f", str(COMPOSE), "--env-file", str(env_file), "config"], capture_output=True,
                              text=True, env=_clean_env(), timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return yaml.safe_load(done.stdout)
    checker = _check_jsonschema()
    if checker is None:
        pytest.skip("neither docker-compose (apt-get install docker-compose) nor check-jsonschema (pip) is installed")
    done = subprocess.run([*checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_validates_and_describes_the_stack(tmp_path):
    config = rendered(tmp_path)
    services = config["services"]
    assert LONG_RUNNING | {"airflow-init"} <= set(services)
    for name in LONG_RUNNING:
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    for name in ("vllm", "ray-worker"):
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert any(d.get("driver") == "nvidia" and "gpu" in d["capabilities"] for d in devices), name
    vllm = services["vllm"]
    assert vllm["entrypoint"] == ["vllm", "serve"]
    assert "Qwen/Qwen2.5-VL-7B-Instruct" in vllm["command"][0]
    assert not any("api-key" in str(part) for part in vllm["command"])  # the key comes from VLLM_API_KEY
    for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert "postgresql" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert env["VIDTHINKER_ENGINE__RAY_ADDRESS"].startswith("ray://ray-head")
        # the driver's settings place the embedder: 8 actors share each ray-worker's GPU, as its 8 CPUs
        from vidthinker.config import load_settings

        settings = load_settings(None, [f"engine.gpus_per_worker={env['VIDTHINKER_ENGINE__GPUS_PER_WORKER']}"])
        cpus = int(next(a for a in services["ray-worker"]["command"] if a.startswith("--num-cpus=")).split("=")[1])
        assert settings.engine.gpus_per_worker * cpus / settings.engine.cpus_per_worker == 1
    assert "airflow-init" in services["airflow-scheduler"]["depends_on"]
    mounts = {name: [str(v) for v in services[name].get("volumes", [])] for name in ("airflow-scheduler", "ray-worker")}
    assert all(any("/data" in v for v in vols) for vols in mounts.values()), mounts


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="docker-compose not installed (apt-get install docker-compose)")
def test_compose_refuses_to_start_without_secrets():
    done = subprocess.run(["docker-compose", "-f", str(COMPOSE), "config"], capture_output=True, text=True,
                          env=_clean_env(), timeout=120, check=False)
    assert done.returncode != 0 and "set " in done.stderr


def test_dockerfile_copies_only_what_exists_and_the_ignore_file_lets_it_through():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^FROM .* AS airflow$", dockerfile, re.MULTILINE) and re.search(r"^FROM .* AS ray$", dockerfile, re.MULTILINE)
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text()
    for source in re.findall(r"^COPY (\S+) ", dockerfile, re.MULTILINE):
        assert (REPO / source).exists(), source
        assert f"!{source}" in ignore or f"!{source}/**" in ignore, f"{source} is excluded from the build context"


@pytest.mark.slow
def test_airflow_init_creates_pool_connection_and_password_idempotently(tmp_path):
    home = tmp_path / "home"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
           "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "auth" / "passwords.json"),
           "AIRFLOW_ADMIN_PASSWORD": "pw", "VLLM_API_KEY": "sk-INIT-SECRET", "VIDTHINKER_MODEL_SLOTS": "3",
           "PATH": f"{AIRFLOW_BIN.parent}:{os.environ.get('PATH', '')}"}
    for _ in range(2):
        done = subprocess.run([sys.executable, str(DOCKER / "airflow-init.py")], env=env, capture_output=True, text=True,
                              timeout=600, check=False)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "sk-INIT-SECRET" not in done.stdout + done.stderr
    pools = subprocess.run([str(AIRFLOW_BIN), "pools", "get", "vidthinker_models", "-o", "json"], env=env,
                           capture_output=True, text=True, timeout=300, check=True)
    assert json.loads(pools.stdout)[0]["slots"] in (3, "3")
    conn = subprocess.run([str(AIRFLOW_BIN), "connections", "get", "vidthinker_model_endpoint", "-o", "json"], env=env,
                          capture_output=True, text=True, timeout=300, check=True)
    (got,) = json.loads(conn.stdout)
    assert got["host"] == "http://vllm:8000/v1" and got["password"] == "sk-INIT-SECRET"
    assert got["extra_dejson"]["caption_model"] == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert json.loads((home / "auth" / "passwords.json").read_text()) == {"admin": "pw"}


def _defaults(value: str) -> str:
    """A compose value with every `${NAME:-default}` replaced by its default."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


def test_vllm_flags_equal_what_the_settings_need():
    """The bundled vllm serve takes every request the pipeline (and downstream QA) sends with the
    settings compose gives the Airflow tasks: --limit-mm-per-prompt and --max-model-len are what
    `vidthinker serve-args` derives from those settings (vidthinker.serving)."""
    from vidthinker.config import load_settings
    from vidthinker.serving import serve_limits

    raw = yaml.safe_load(COMPOSE.read_text())
    env = {k: _defaults(str(v)) for k, v in raw["x-airflow-env"].items()}
    sections = ("models", "annotate", "video")
    overrides = [f"{k[len('VIDTHINKER_'):].lower().replace('__', '.', 1)}={v}" for k, v in env.items()
                 if k.startswith("VIDTHINKER_") and k[len("VIDTHINKER_"):].split("__")[0].lower() in sections]
    limits = serve_limits(load_settings(None, overrides))
    command = [_defaults(str(part)) for part in raw["services"]["vllm"]["command"]]
    flags = dict(part.split("=", 1) for part in command if part.startswith("--"))
    assert int(flags["--max-model-len"]) == limits.max_model_len
    assert json.loads(flags["--limit-mm-per-prompt"]) == {"image": limits.images, "video": limits.videos}
    # the paper's ITG-32 downstream QA and a clip's frames fit; no video part unless clips go as videos
    assert limits.images >= 32 and limits.videos == 0
    # and serve-args --env names exactly the variables the compose file reads
    for name in limits.env():
        assert "${" + name + ":-" in COMPOSE.read_text()


def test_vllm_flags_follow_clip_as_video_and_qa_frames():
    from vidthinker.config import load_settings
    from vidthinker.serving import request_shapes, serve_limits

    video = serve_limits(load_settings(None, ["annotate.clip_as_video=true", "models.qa_frames=8"]))
    assert video.videos == 1 and video.images == 8
    frames = serve_limits(load_settings(None, ["annotate.frames_per_clip=40", "video.clip_seconds=10",
                                               "video.grid_fps=4", "models.qa_frames=8"]))
    assert frames.images == 40  # 40 of a clip's 40 grid frames
    big = load_settings(None, ["annotate.caption_max_tokens=4096", "annotate.caption_mode=shared"])
    assert serve_limits(big).max_model_len >= max(s.context for s in request_shapes(big))
