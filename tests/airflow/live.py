"""A real Airflow 3 deployment in a temporary AIRFLOW_HOME: api-server, scheduler and dag-processor as
separate processes (LocalExecutor, SQLite), driven through the REST API with a JWT from the simple auth
manager. Used by the live test and by the overhead measurement (`python -m tests.airflow.live`).

Every process is started by this module and stopped by its PID (SIGTERM, then SIGKILL), together with
the descendants it had; `stop()` reports any process that survived.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Self

import httpx
import psutil

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_BIN = Path(sys.executable).with_name("airflow")
USER = "vidthinker-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StackError(RuntimeError):
    pass


class AirflowStack:
    """`with AirflowStack(home, env) as stack: stack.trigger(...)`; logs in `home/*.log`."""

    COMPONENTS = (
        ("api-server", ["api-server", "--host", "127.0.0.1", "--port", "{port}", "--workers", "1"]),
        ("dag-processor", ["dag-processor"]),
        ("scheduler", ["scheduler"]),
    )

    def __init__(self, home: Path, extra_env: dict[str, str] | None = None, *, dags_folder: Path = REPO / "dags",
                 pool_slots: int = 1, parallelism: int = 2):
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.base = f"http://127.0.0.1:{self.port}"
        self.pool_slots = pool_slots
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update({
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.base,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__FERNET_KEY": "",
            "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        })
        env.update(extra_env or {})
        self.env = env
        self.procs: dict[str, subprocess.Popen] = {}
        self.known: dict[int, str] = {}  # every pid seen in our process trees → label
        self.token: str | None = None

    # ------------------------------------------------------------------ lifecycle
    def _cli(self, *args: str, timeout: float = 600) -> str:
        done = subprocess.run([str(AIRFLOW_BIN), *args], env=self.env, capture_output=True, text=True, timeout=timeout,
                              check=False)
        if done.returncode:
            raise StackError(f"airflow {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done.stdout

    def start(self, timeout: float = 300) -> Self:
        (self.home / "passwords.json").write_text(json.dumps({USER: self.password}))
        self._cli("db", "migrate")
        self._cli("pools", "set", "vidthinker_models", str(self.pool_slots), "model-serving slots")
        for name, args in self.COMPONENTS:
            with open(self.home / f"{name}.log", "wb") as log:  # the child keeps its own copy of the fd
                self.procs[name] = subprocess.Popen([str(AIRFLOW_BIN), *[a.format(port=self.port) for a in args]],
                                                    env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.home)
            self.known[self.procs[name].pid] = name
        self._wait(lambda: self._get_status("/api/v2/monitor/health") == 200, timeout, "the api-server to answer")
        response = httpx.post(f"{self.base}/auth/token", json={"username": USER, "password": self.password}, timeout=30)
        if response.status_code != 201:
            raise StackError(f"POST /auth/token → {response.status_code} {response.text[:300]}")
        self.token = response.json()["access_token"]
        return self

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        leftovers = self.stop()
        if leftovers and exc[0] is None:
            raise StackError(f"processes survived the stop: {leftovers}")

    def _remember_children(self) -> None:
        for name, proc in self.procs.items():
            try:
                for child in psutil.Process(proc.pid).children(recursive=True):
                    self.known.setdefault(child.pid, f"{name} child {child.name()}")
            except psutil.NoSuchProcess:
                pass

    def stop(self, grace_s: float = 30) -> list[str]:
        """SIGTERM each component by PID (scheduler first), SIGKILL after `grace_s`; then the same for
        any descendant still alive. Returns descriptions of processes that could not be ended."""
        self._remember_children()
        for name in ("scheduler", "dag-processor", "api-server"):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        survivors = []
        for pid, label in self.known.items():
            try:
                child = psutil.Process(pid)
                if child.status() == psutil.STATUS_ZOMBIE:
                    continue
                child.terminate()
                try:
                    child.wait(10)
                except psutil.TimeoutExpired:
                    child.kill()
                    child.wait(5)
            except psutil.NoSuchProcess:
                continue
            except psutil.TimeoutExpired:
                survivors.append(f"{pid} ({label})")
        self.procs.clear()
        return survivors

    # ------------------------------------------------------------------ REST API
    def _get_status(self, path: str) -> int:
        try:
            return httpx.get(self.base + path, timeout=10).status_code
        except httpx.HTTPError:
            return 0

    def api(self, method: str, path: str, **kw) -> Any:
        response = httpx.request(method, self.base + path, headers={"Authorization": f"Bearer {self.token}"},
                                 timeout=60, **kw)
        if response.status_code >= 400:
            raise StackError(f"{method} {path} → {response.status_code}: {response.text[:500]}")
        return response.json() if response.content else None

    def _wait(self, check, timeout: float, what: str, every: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise StackError(f"{dead} exited while waiting for {what}\n{self.diagnostics()}")
            if check():
                return
            time.sleep(every)
        raise StackError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.diagnostics()}")

    def wait_for_dag(self, dag_id: str, timeout: float = 300) -> dict:
        def ready() -> bool:
            errors = self.api("GET", "/api/v2/importErrors")
            if errors.get("total_entries"):
                raise StackError(f"DAG import errors: {json.dumps(errors)[:3000]}")
            return self._get_dag(dag_id) is not None

        self._wait(ready, timeout, f"the dag-processor to parse {dag_id}")
        return self._get_dag(dag_id)

    def _get_dag(self, dag_id: str) -> dict | None:
        try:
            return self.api("GET", f"/api/v2/dags/{dag_id}")
        except StackError as error:
            if "→ 404" in str(error):
                return None
            raise

    def trigger(self, dag_id: str, conf: dict) -> str:
        self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
        run = self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        return run["dag_run_id"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 900) -> dict:
        state: dict = {}

        def finished() -> bool:
            state.update(self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"))
            return state["state"] in ("success", "failed")

        self._wait(finished, timeout, f"run {run_id} to finish", every=3.0)
        return state

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    # ------------------------------------------------------------------ diagnostics
    def diagnostics(self, tail: int = 4000) -> str:
        parts = []
        for name, _ in self.COMPONENTS:
            path = self.home / f"{name}.log"
            if path.is_file():
                parts.append(f"----- {name}.log (tail) -----\n{path.read_text(errors='replace')[-tail:]}")
        task_logs = sorted((self.home / "logs").rglob("*.log"), key=lambda p: p.stat().st_mtime) if (self.home / "logs").is_dir() else []
        for path in task_logs[-3:]:
            parts.append(f"----- {path.relative_to(self.home)} (tail) -----\n{path.read_text(errors='replace')[-tail:]}")
        return "\n".join(parts)

    def all_logs(self) -> str:
        files = list(self.home.glob("*.log")) + (list((self.home / "logs").rglob("*")) if (self.home / "logs").is_dir() else [])
        return "\n".join(p.read_text(errors="replace") for p in files if p.is_file())


# --------------------------------------------------------------------------- the overhead measurement


def measure(videos: int, shard_size: int, engine: str, work: Path) -> dict:
    """One triggered run through the real scheduler vs `run_shards` on the same shards in-process."""
    from tests.airflow.conftest import conn_json
    from tests.servers.openai_stub import StubServer
    from tests.test_pipeline import scripted_model
    from vidthinker.config import load_settings, with_overrides
    from vidthinker.engine import run_shards
    from vidthinker.formats import read_manifest
    from vidthinker.shards import plan_shards
    from vidthinker.synth import generate_synthetic_set

    manifest = generate_synthetic_set(work / "synth", videos, seed=5, min_seconds=10, max_seconds=14)
    with StubServer(models=["scripted"], api_key="sk-vidthinker-TEST-KEY-7f3a9c") as stub:
        stub.state.responder = scripted_model
        env = {"AIRFLOW_CONN_VIDTHINKER_MODEL_ENDPOINT": conn_json(stub.base_url), "VIDTHINKER_AIRFLOW__SCHEDULE": "none",
               "VIDTHINKER_AIRFLOW__OUT_DIR": str(work / "out")}
        conf = {"manifest": str(manifest), "out_dir": str(work / "out"), "engine": engine, "shard_size": shard_size,
                "oracle": True}
        with AirflowStack(work / "home", env) as stack:
            stack.wait_for_dag("vidthinker_annotate")
            run_id = stack.trigger("vidthinker_annotate", conf)
            run = stack.wait_for_run("vidthinker_annotate", run_id)
            tis = stack.task_instances("vidthinker_annotate", run_id)
        if run["state"] != "success":
            raise StackError(f"run {run_id} {run['state']}: {[(t['task_id'], t['state']) for t in tis]}")
        results = [json.loads(p.read_text()) for p in (work / "out" / "airflow" / "runs").glob("*/results/*.json")]
        airflow_wall = (_ts(run["end_date"]) - _ts(run["start_date"]))
        shard_tis = [t for t in tis if t["task_id"] == "run_shard"]
        ti_wall = sum(t["duration"] or 0 for t in shard_tis)

        # the engine alone on the same shards, same settings, fresh folder and cache
        rows = read_manifest(manifest)
        specs = plan_shards(rows, shard_size, prefix="direct")
        settings = with_overrides(load_settings(), {"models": {"backend": "openai", "base_url": stub.base_url,
                                                               "caption_model": "scripted", "structured_output": "json_schema"},
                                                    "annotate": {"oracle_captions": True}})
        os.environ["VIDTHINKER_API_KEY"] = "sk-vidthinker-TEST-KEY-7f3a9c"
        started = time.perf_counter()
        summary = run_shards(specs, rows, work / "direct", settings, engine=engine)
        direct = time.perf_counter() - started
    engine_in_tasks = sum(r["engine_s"] for r in results)
    n = len(results)
    return {
        "videos": videos, "shards": n, "engine": engine,
        "airflow_run_wall_s": round(airflow_wall, 2),
        "shard_task_durations_s": round(ti_wall, 2),
        "engine_time_inside_tasks_s": round(engine_in_tasks, 2),
        "engine_direct_same_shards_s": round(direct, 2),
        "overhead_ratio_vs_direct": round(airflow_wall / direct, 2),
        "overhead_per_shard_vs_direct_s": round((airflow_wall - direct) / n, 2),
        "overhead_per_shard_vs_engine_in_tasks_s": round((airflow_wall - engine_in_tasks) / n, 2),
        "direct_records": summary.records,
    }


def _ts(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value).timestamp()


def main(argv: list[str] | None = None) -> None:
    import tempfile

    parser = argparse.ArgumentParser(description="Airflow overhead per shard: a triggered run vs the engine alone.")
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--shard-size", type=int, default=1)
    parser.add_argument("--engine", choices=["local", "ray"], default="local")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="vidthinker-overhead-"))
    print(json.dumps(measure(args.videos, args.shard_size, args.engine, work), indent=1))


if __name__ == "__main__":
    main()
