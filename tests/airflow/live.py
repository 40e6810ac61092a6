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
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Self

import httpx
import psutil

from vidthinker.orchestration import local_stack

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_BIN = Path(sys.executable).with_name("airflow")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StackError(RuntimeError):
    pass


class AirflowStack:
    """`with AirflowStack(home, env) as stack: stack.trigger(...)`; logs in `home/*.log`."""

    COMPONENTS = local_stack.COMPONENTS  # started by `vidthinker airflow up` (vidthinker.orchestration.local_stack)

    def __init__(self, home: Path, extra_env: dict[str, str] | None = None, *, dags_folder: Path = REPO / "dags",
                 pool_slots: int = 1, parallelism: int = 2, pools: dict[str, int] | None = None):
        self.home = Path(home).resolve()
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self.base = ""
        self.password = ""
        self.dags_folder = dags_folder
        self.parallelism = parallelism
        self.pools = {"vidthinker_models": pool_slots, "vidthinker_gpu": 1, **(pools or {})}
        self.extra_env = {
            "AIRFLOW__CORE__FERNET_KEY": "",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            **(extra_env or {}),
        }
        self.env: dict[str, str] = {}
        self.pids: dict[str, int] = {}
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
        try:
            state = local_stack.up(self.home, dags=self.dags_folder, parallelism=self.parallelism,
                                   model_slots=self.pools["vidthinker_models"], gpu_slots=self.pools["vidthinker_gpu"],
                                   unpause=False, extra_env=self.extra_env, timeout_s=timeout)
        except RuntimeError as error:
            raise StackError(f"{error}\n{self.diagnostics()}") from None
        self.port, self.base, self.pids = state["port"], state["url"], state["pids"]
        self.known.update({pid: name for name, pid in self.pids.items()})
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}, **local_stack.load_env(self.home)}
        self.password = local_stack.password(self.home)
        response = httpx.post(f"{self.base}/auth/token", json={"username": local_stack.USER, "password": self.password},
                              timeout=30)
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
        for name, pid in self.pids.items():
            try:
                for child in psutil.Process(pid).children(recursive=True):
                    self.known.setdefault(child.pid, f"{name} child {child.name()}")
            except psutil.NoSuchProcess:
                pass

    def _dead(self) -> list[str]:
        dead = []
        for name, pid in self.pids.items():
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    dead.append(name)
            except psutil.NoSuchProcess:
                dead.append(name)
        return dead

    def stop(self, grace_s: float = 30) -> list[str]:
        """`vidthinker airflow down` (each component's process group, scheduler first); then any
        descendant seen earlier that is still alive is ended by PID and reported."""
        self._remember_children()
        local_stack.down(self.home, grace_s=grace_s)
        survivors = []
        for pid, label in self.known.items():
            try:
                child = psutil.Process(pid)
                if child.status() == psutil.STATUS_ZOMBIE:
                    continue
                survivors.append(f"{pid} ({label})")
                child.kill()
            except psutil.NoSuchProcess:
                continue
        self.pids = {}
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
            dead = self._dead()
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

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": paused})

    def runs(self, dag_id: str) -> list[dict]:
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"order_by": "run_after"})["dag_runs"]

    def wait_for_triggered_run(self, dag_id: str, after: set[str], timeout: float = 300) -> str:
        """The id of a run of `dag_id` not in `after` (e.g. one an asset event made)."""
        found: list[str] = []

        def appeared() -> bool:
            found[:] = [r["dag_run_id"] for r in self.runs(dag_id) if r["dag_run_id"] not in after]
            return bool(found)

        self._wait(appeared, timeout, f"a new run of {dag_id}", every=3.0)
        return found[0]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 900, on_poll=None) -> dict:
        """Poll until the run ends; `on_poll(task_instances)` sees its task instances on every poll."""
        state: dict = {}

        def finished() -> bool:
            state.update(self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"))
            if on_poll is not None:
                on_poll(self.task_instances(dag_id, run_id))
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
    from vidthinker.shards import assign_shards
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
        specs = assign_shards(rows, shard_size, prefix="direct")
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
