"""`vidthinker airflow up|down|status`: a local Airflow 3 stack for the VidThinker DAGs, on loopback.

`up` prepares AIRFLOW_HOME (SQLite metadata DB, `airflow db migrate`, the pools `vidthinker_models` and
`vidthinker_gpu`, the model connection when `--model-url` is given), then starts three processes, each
in its own session (process group), with their output in `<home>/<name>.log`:

    airflow api-server --host 127.0.0.1 --port PORT --workers 1    UI + REST API + task execution API
    airflow dag-processor                                          parses the dags folder
    airflow scheduler --skip-serve-logs                            LocalExecutor with `--parallelism` workers

Why not `airflow standalone`: it binds the workers' log servers to 0.0.0.0 (airflow/utils/serve_logs/
core.py serves on `0.0.0.0:WORKER_LOG_SERVER_PORT`) and sizes the LocalExecutor to `core.parallelism`
(32). With the LocalExecutor the task logs are files in `<home>/logs` that the api-server reads, so no
log server is needed (`--skip-serve-logs`). Embedded Ray inside the tasks listens on 127.0.0.1 too
(`vidthinker.engine.ray_engine`).

Every setting the stack was started with is in `<home>/stack.env` (`source` it to use the `airflow`
CLI against this stack); the pids, port and login in `<home>/stack.json`. `down` ends each component's
process group by its recorded id (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="A local Airflow stack for the VidThinker DAGs (SQLite, loopback only).", no_args_is_help=True)

USER = "admin"
COMPONENTS = (
    ("api-server", ["api-server", "--host", "127.0.0.1", "--port", "{port}", "--workers", "1"]),
    ("dag-processor", ["dag-processor"]),
    ("scheduler", ["scheduler", "--skip-serve-logs"]),
)
DAG_IDS = ("vidthinker_annotate", "vidthinker_train_eval", "vidthinker_publish")
POOLS = {"vidthinker_models": ("model-serving slots: shard tasks that may call the model server at once"),
         "vidthinker_gpu": "selector training / selection slots (GPUs)"}


def default_dags_folder() -> Path:
    return Path(__file__).resolve().parents[2] / "dags"


def airflow_bin() -> str:
    path = Path(sys.executable).with_name("airflow")
    if not path.is_file():
        raise typer.BadParameter(f"no `airflow` next to {sys.executable}: install vidthinker[airflow]")
    return str(path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stack_environment(home: Path, port: int, *, dags: Path, parallelism: int, secret: dict[str, str],
                      extra: dict[str, str] | None = None) -> dict[str, str]:
    """The AIRFLOW__* settings of the stack (also written to `<home>/stack.env`)."""
    base = f"http://127.0.0.1:{port}"
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": base,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secret["jwt"],
        "AIRFLOW__API__SECRET_KEY": secret["key"],
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "VIDTHINKER_AIRFLOW__SCHEDULE": "none",
    }
    env.update(extra or {})
    return env


def load_env(home: Path) -> dict[str, str]:
    """The settings of the stack started from `home` (what `source <home>/stack.env` exports)."""
    env = {}
    for line in (home / "stack.env").read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    return env


def password(home: Path) -> str:
    return json.loads((home / "passwords.json").read_text())[USER]


def _state_file(home: Path) -> Path:
    return home / "stack.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run(env: dict[str, str], *args: str, timeout: float = 600) -> str:
    done = subprocess.run([airflow_bin(), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode:
        raise RuntimeError(f"airflow {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done.stdout


def _healthy(port: int) -> bool:
    import urllib.error
    import urllib.request  # here, not at the top: `vidthinker --help` loads this module

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False


def up(
    home: Path, *, dags: Path | None = None, parallelism: int = 2, model_slots: int = 1, gpu_slots: int = 1,
    model_url: str | None = None, model: str | None = None, unpause: bool | tuple[str, ...] = True,
    extra_env: dict[str, str] | None = None,
    timeout_s: float = 300.0,
) -> dict:
    """Start the stack (see the module docstring); returns what `stack.json` records."""
    home = home.expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    state_file = _state_file(home)
    if state_file.is_file():
        state = json.loads(state_file.read_text())
        if any(_alive(pid) for pid in state["pids"].values()):
            raise RuntimeError(f"a stack is already running from {home} (pids {state['pids']}); `vidthinker airflow down` first")
    dags = (dags or default_dags_folder()).resolve()
    if not dags.is_dir():
        raise FileNotFoundError(f"dags folder {dags} not found: pass --dags")
    secret_file = home / "secrets.json"  # stable across restarts so sessions and tokens stay valid
    if not secret_file.is_file():
        secret_file.write_text(json.dumps({"jwt": secrets.token_urlsafe(32), "key": secrets.token_urlsafe(32),
                                           "password": secrets.token_urlsafe(12)}))
        secret_file.chmod(0o600)
    secret = json.loads(secret_file.read_text())
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({USER: secret["password"]}))
    passwords.chmod(0o600)
    port = _free_port()
    airflow_env = stack_environment(home, port, dags=dags, parallelism=parallelism, secret=secret, extra=extra_env)
    env_file = home / "stack.env"
    env_file.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in airflow_env.items()))
    env_file.chmod(0o600)  # holds the JWT secret
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}, **airflow_env, "PYTHONUNBUFFERED": "1"}

    _run(env, "db", "migrate")
    for pool, slots in (("vidthinker_models", model_slots), ("vidthinker_gpu", gpu_slots)):
        _run(env, "pools", "set", pool, str(slots), POOLS[pool])
    if model_url:
        from vidthinker.config import api_key_from_environment

        try:
            _run(env, "connections", "delete", "vidthinker_model_endpoint")
        except RuntimeError:
            pass  # not there yet
        args = ["connections", "add", "vidthinker_model_endpoint", "--conn-type", "http", "--conn-host", model_url]
        key = api_key_from_environment()
        if key:
            args += ["--conn-password", key]
        if model:
            args += ["--conn-extra", json.dumps({"caption_model": model})]
        _run(env, *args)

    pids: dict[str, int] = {}
    for name, args in COMPONENTS:
        with open(home / f"{name}.log", "ab") as log:
            proc = subprocess.Popen([airflow_bin(), *[a.format(port=port) for a in args]], env=env, cwd=home,
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # its own process group: `down` ends it whole
        pids[name] = proc.pid
    state = {"home": str(home), "port": port, "url": f"http://127.0.0.1:{port}", "user": USER,
             "password_file": str(passwords), "pids": pids, "dags": str(dags)}
    state_file.write_text(json.dumps(state, indent=1))
    deadline = time.monotonic() + timeout_s
    while not _healthy(port):
        dead = [n for n, pid in pids.items() if not _alive(pid) or _zombie(pid)]
        if dead or time.monotonic() > deadline:
            down(home)
            why = f"{dead} exited" if dead else f"no answer within {timeout_s:.0f} s"
            raise RuntimeError(f"the stack did not start ({why}); see {home}/*.log")
        time.sleep(2)
    if unpause:
        dag_ids = unpause if isinstance(unpause, tuple) else DAG_IDS
        for dag_id in dag_ids:
            while True:  # the dag-processor must have parsed the file first
                try:
                    _run(env, "dags", "unpause", dag_id, timeout=120)
                    break
                except RuntimeError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(3)
    return state


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False


def down(home: Path, grace_s: float = 30.0) -> list[str]:
    """Stop the stack started from `home`: each component's process group, scheduler first."""
    home = home.expanduser().resolve()
    state_file = _state_file(home)
    if not state_file.is_file():
        return []
    pids: dict[str, int] = json.loads(state_file.read_text())["pids"]
    stopped = []
    for name in ("scheduler", "dag-processor", "api-server"):
        pid = pids.get(name)
        if pid is None or not _alive(pid):
            continue
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + grace_s
        while _alive(pid) and not _zombie(pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        try:
            os.killpg(pid, signal.SIGKILL)  # whatever of the group is left (task runners, Ray)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        stopped.append(name)
    state_file.unlink()
    return stopped


# --------------------------------------------------------------------------- commands

Home = Annotated[Path, typer.Option("--home", help="AIRFLOW_HOME of the stack (DB, logs, stack.env).")]


@app.command("up")
def up_command(
    home: Home = Path("airflow_home"),
    dags: Annotated[Path | None, typer.Option(help="DAGs folder (default: the project's dags/).")] = None,
    parallelism: Annotated[int, typer.Option(min=1, help="LocalExecutor workers (tasks at once).")] = 2,
    model_slots: Annotated[int, typer.Option(min=1, help="Size of the pool vidthinker_models.")] = 1,
    gpu_slots: Annotated[int, typer.Option(min=1, help="Size of the pool vidthinker_gpu.")] = 1,
    model_url: Annotated[str | None, typer.Option(help="OpenAI-compatible base URL for the connection "
                                                    "vidthinker_model_endpoint (key: VIDTHINKER_API_KEY). "
                                                    "Default: none, the offline models.")] = None,
    model: Annotated[str | None, typer.Option(help="caption model name at --model-url")] = None,
    unpause: Annotated[bool, typer.Option("--unpause/--paused", help="Unpause the VidThinker DAGs.")] = True,
) -> None:
    """Start api-server, dag-processor and scheduler on 127.0.0.1 (SQLite), with pools and DAGs ready."""
    try:
        state = up(home, dags=dags, parallelism=parallelism, model_slots=model_slots, gpu_slots=gpu_slots,
                   model_url=model_url, model=model, unpause=unpause)
    except (RuntimeError, FileNotFoundError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    password = json.loads(Path(state["password_file"]).read_text())[USER]
    typer.echo(f"Airflow UI: {state['url']}  (user {USER}, password {password}; also in {state['password_file']})")
    typer.echo(f"logs: {state['home']}/*.log, task logs in {state['home']}/logs")
    typer.echo(f"CLI against it: source {state['home']}/stack.env && airflow dags list")
    typer.echo(f"stop: vidthinker airflow down --home {home}")


@app.command("down")
def down_command(home: Home = Path("airflow_home")) -> None:
    """Stop the stack started with `vidthinker airflow up` from this home."""
    stopped = down(home)
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "no stack running from this home")


@app.command("status")
def status_command(home: Home = Path("airflow_home")) -> None:
    """Which components of the stack are running."""
    state_file = _state_file(home.expanduser().resolve())
    if not state_file.is_file():
        typer.echo("no stack started from this home")
        raise typer.Exit(1)
    state = json.loads(state_file.read_text())
    for name, pid in state["pids"].items():
        typer.echo(f"{name:14} pid {pid:<8} {'running' if _alive(pid) and not _zombie(pid) else 'stopped'}")
    typer.echo(f"UI {state['url']} ({'healthy' if _healthy(state['port']) else 'not answering'})")


# --------------------------------------------------------------------------- the product-shaped demo


def _api(state: dict, token: str, method: str, path: str, **kw):
    import httpx

    reply = httpx.request(method, state["url"] + path, headers={"Authorization": f"Bearer {token}"}, timeout=60, **kw)
    reply.raise_for_status()
    return reply.json() if reply.content else None


def _wait_run(state: dict, token: str, dag_id: str, run_id: str, echo, timeout_s: float) -> dict:
    seen: dict[tuple[str, int], str] = {}
    deadline = time.monotonic() + timeout_s
    while True:
        run = _api(state, token, "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        for ti in _api(state, token, "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]:
            key = (ti["task_id"], ti["map_index"])
            if ti["state"] and seen.get(key) != ti["state"]:
                seen[key] = ti["state"]
                name = ti["task_id"] + (f"[{ti['rendered_map_index'] or ti['map_index']}]" if ti["map_index"] >= 0 else "")
                echo(f"  {dag_id} {name}: {ti['state']}")
        if run["state"] in ("success", "failed"):
            return run
        if time.monotonic() > deadline:
            raise RuntimeError(f"{dag_id} run {run_id} still {run['state']} after {timeout_s:.0f} s")
        time.sleep(3)


def demo(out: Path, home: Path | None = None, *, videos: int = 2, max_seconds: float = 10.0, echo=print,
         timeout_s: float = 3600.0) -> dict:
    """The main job the way the product runs it: a local stack (`up`), the annotate DAG on embedded Ray
    with the offline models over small synthetic videos, then the train-and-evaluate DAG its asset event
    starts (tiny CPU preset, a synthetic evaluation set). Leaves the stack running; returns the figures."""
    from vidthinker.config import load_settings
    from vidthinker.synth import generate_synthetic_set

    out = out.expanduser().resolve()
    home = (home or out / "airflow_home").expanduser().resolve()
    started = time.perf_counter()
    cfg = load_settings().synth
    shortest = min(cfg.min_seconds, max_seconds)
    echo(f"synthesising {videos} videos of {shortest:g}-{max_seconds:g} s and a 1-video evaluation set")
    manifest = generate_synthetic_set(out / "synth", videos, 0, min_seconds=shortest, max_seconds=max_seconds)
    eval_set = generate_synthetic_set(out / "eval-set", 1, 32, min_seconds=shortest, max_seconds=max_seconds)
    data = out / "annotate"
    env = {
        "VIDTHINKER_AIRFLOW__OUT_DIR": str(data),
        "VIDTHINKER_AIRFLOW__MANIFEST": str(manifest),
        "VIDTHINKER_AIRFLOW__RETRIES": "0",
        "VIDTHINKER_TRAIN_EVAL__ROOT": str(out / "train_eval"),
        "VIDTHINKER_TRAIN_EVAL__EVAL_SETS": str(eval_set),
        "VIDTHINKER_TRAIN_EVAL__PRESET": "tiny",
        "VIDTHINKER_TRAIN_EVAL__DEVICE": "cpu",
        "VIDTHINKER_TRAIN_EVAL__CONFIG_OVERRIDES": json.dumps({"max_steps": 20, "budget_range": [64, 256]}),
        "VIDTHINKER_TRAIN_EVAL__KS": "4,8",
        "VIDTHINKER_TRAIN_EVAL__NUM_FRAMES": "64",
        "VIDTHINKER_TRAIN_EVAL__N_BOOT": "200",
    }
    echo(f"starting Airflow (api-server, dag-processor, scheduler on 127.0.0.1, SQLite) in {home}")
    state = up(home, extra_env=env, unpause=("vidthinker_annotate", "vidthinker_train_eval"))
    up_s = time.perf_counter() - started
    import httpx

    reply = httpx.post(state["url"] + "/auth/token", json={"username": USER, "password": password(home)}, timeout=30)
    reply.raise_for_status()
    token = reply.json()["access_token"]
    before = {r["dag_run_id"] for r in _api(state, token, "GET", "/api/v2/dags/vidthinker_train_eval/dagRuns")["dag_runs"]}
    run = _api(state, token, "POST", "/api/v2/dags/vidthinker_annotate/dagRuns",
               json={"logical_date": None, "conf": {"engine": "ray"}})
    echo(f"triggered vidthinker_annotate ({run['dag_run_id']}): engine ray (embedded), offline models")
    annotate = _wait_run(state, token, "vidthinker_annotate", run["dag_run_id"], echo, timeout_s)
    annotate_s = time.perf_counter() - started - up_s
    figures = {"up_s": round(up_s, 1), "annotate_s": round(annotate_s, 1), "annotate": annotate["state"]}
    if annotate["state"] == "success":
        deadline = time.monotonic() + 300
        while True:
            runs = [r for r in _api(state, token, "GET", "/api/v2/dags/vidthinker_train_eval/dagRuns")["dag_runs"]
                    if r["dag_run_id"] not in before]
            if runs or time.monotonic() > deadline:
                break
            time.sleep(3)
        if runs:
            echo(f"the vidthinker_shards asset event started vidthinker_train_eval ({runs[0]['dag_run_id']})")
            te = _wait_run(state, token, "vidthinker_train_eval", runs[0]["dag_run_id"], echo, timeout_s)
            figures["train_eval"] = te["state"]
            figures["train_eval_s"] = round(time.perf_counter() - started - up_s - annotate_s, 1)
    figures["total_s"] = round(time.perf_counter() - started, 1)
    echo("")
    echo(f"Airflow UI     {state['url']}  (user {USER}, password in {state['password_file']})")
    echo(f"shards         {data / 'shards'}   ledger {data / 'ledger.json'}")
    echo(f"train/eval     {out / 'train_eval'}  (registry/registry.json, runs/*/eval/*/report.md)")
    echo(f"dashboard      .venv/bin/vidthinker dashboard --out {data}")
    echo(f"stop Airflow   .venv/bin/vidthinker airflow down --home {home}")
    echo(f"timings        {json.dumps(figures)}")
    return figures


@app.command("demo")
def demo_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (synth/, annotate/, train_eval/, airflow_home/).")] = Path("runs/demo"),
    videos: Annotated[int, typer.Option("--videos", "-n", min=1, help="Synthetic videos to annotate.")] = 2,
    max_seconds: Annotated[float, typer.Option(help="Longest synthetic video, in seconds.")] = 10.0,
) -> None:
    """The main job as the product runs it: local Airflow + embedded Ray + offline models, annotate then
    train-and-evaluate on small synthetic videos; leaves the stack running and prints where to look."""
    try:
        figures = demo(out, videos=videos, max_seconds=max_seconds, echo=typer.echo)
    except (RuntimeError, FileNotFoundError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    if figures.get("annotate") != "success" or figures.get("train_eval", "success") != "success":
        raise typer.Exit(1)
