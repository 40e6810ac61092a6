"""How VidThinker starts its own processes (decode workers, the offline llama.cpp server, torchrun).

Every child is started as ``<this interpreter> -m <a dedicated module>`` with ``subprocess``, never by
``multiprocessing``'s "spawn"/"forkserver", because those re-run the parent's ``__main__`` script in the
child. Inside an Airflow 3 task that script is the ``airflow`` entry point, and the environment it
inherits is the task runner's: Airflow's task supervisor forks the task process, whose entry
(apache/airflow, task-sdk/src/airflow/sdk/execution_time/supervisor.py, ``_fork_main``) calls
``block_orm_access()`` before running ``task_runner.main``; that sets
``os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]`` (and ``AIRFLOW__CORE__SQL_ALCHEMY_CONN``) to
``airflow-db-not-allowed:///`` so task code cannot reach the metadata database (checked in
apache-airflow-task-sdk 1.3.2, the Airflow 3.3 line). A child that re-imports
``airflow`` there fails in ``settings.initialize()`` before it does any work. Ray workers
(``default_worker.py``), Jupyter kernels (``ipykernel_launcher``) and the ``vidthinker`` CLI are other
``__main__`` scripts a child must not depend on.

So children get (1) a fixed entry module, (2) an environment built for them: ``minimal_environment``
(an allowlist: enough to find the interpreter, its libraries and a temp dir) for the decode worker, or
``child_environment`` (the parent's minus Airflow's task-runtime variables and API keys the child does
not use) for children that read VidThinker settings or torch variables.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

# What any Python child needs to start, find its shared libraries, decode and write temp files.
_MINIMAL_KEYS = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP",
    "LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "SYSTEMROOT", "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONHOME",
    "SSL_CERT_FILE", "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "VIDTHINKER_DECODE_THREADS",
})  # fmt: skip
_MINIMAL_PREFIXES = ("LC_",)

# Airflow's task-runtime variables: the blocked database URL, the execution API token/URL, the task
# context. A child is not a task; none of it is meant for it.
_AIRFLOW_PREFIXES = ("AIRFLOW__", "AIRFLOW_CTX_", "_AIRFLOW_")
API_KEY_VARS = ("VIDTHINKER_API_KEY", "OPENAI_API_KEY")


def python_executable() -> str:
    """The interpreter running this process (the task's venv, the Ray worker's, the kernel's)."""
    exe = sys.executable
    if not exe or not os.path.exists(exe):
        raise RuntimeError(
            f"cannot start a Python child process: sys.executable is {exe!r} "
            "(an embedded interpreter?); set video.isolate_decode=false to decode in-process"
        )
    return exe


def package_root() -> str:
    """The folder that holds the ``vidthinker`` package (so the child imports the same copy)."""
    return str(Path(__file__).resolve().parent.parent)


def _pythonpath(extra: Iterable[str] = ()) -> str:
    parts = [package_root(), *extra]
    seen: list[str] = []
    for part in parts:
        if part and part not in seen:
            seen.append(part)
    return os.pathsep.join(seen)


def minimal_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """An allowlisted environment: the interpreter's and libraries' basics, the package on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k in _MINIMAL_KEYS or k.startswith(_MINIMAL_PREFIXES)}
    env["PYTHONPATH"] = _pythonpath()
    env.update(extra or {})
    return env


def child_environment(*, drop: Iterable[str] = API_KEY_VARS, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The parent's environment minus Airflow's task-runtime variables and ``drop`` (API keys by
    default); the package's folder first on PYTHONPATH."""
    dropped = set(drop)
    env = {
        k: v for k, v in os.environ.items() if k not in dropped and not k.startswith(_AIRFLOW_PREFIXES)
    }
    existing = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = _pythonpath(existing)
    env.update(extra or {})
    return env
