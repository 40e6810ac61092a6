"""One redactor for everything that leaves the process (vidthinker.redact), and a run with planted
secrets whose every written file and whose output are scanned for them."""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from aiohttp import web

from vidthinker.redact import (
    RedactingFilter,
    install_log_redaction,
    redact,
    redact_data,
    redact_then_truncate,
    redacted_io,
    register_secret,
)

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "sk-PLANTED-7f3a9b2c1d0e5f6a7b8c"
ENV_KEY = "PLANTEDENVKEY-0123456789abcdef"  # no known prefix: only its value identifies it
URL_USER, URL_PASS = "vtuser", "PLANTEDPASS-5e4d3c2b1a"
HF_TOKEN = "hf_PLANTEDxYz0123456789abcdefghijklmn"


# --------------------------------------------------------------------------- the redactor


@pytest.mark.parametrize(
    ("text", "shown", "hidden"),
    [
        (f"cannot connect to http://{URL_USER}:{URL_PASS}@127.0.0.1:8000/v1", "http://***@127.0.0.1:8000/v1", URL_PASS),
        (f"GET https://{URL_PASS}@hub.example/x", "https://***@hub.example/x", URL_PASS),
        (f"Incorrect API key provided: {API_KEY}.", "Incorrect API key provided: sk-***.", "PLANTED"),
        (f"header Bearer {API_KEY}", "header Bearer ***", "PLANTED"),
        (f"Authorization: Basic {base64.b64encode(b'u:PLANTEDPASS').decode()}", "Authorization: ***", "dTpQ"),
        (f"token {HF_TOKEN} rejected", "token hf_*** rejected", "PLANTED"),
        ("GET /v1?api_key=abc123secret&x=1", "GET /v1?api_key=***&x=1", "abc123secret"),
        ('{"password": "hunter2hunter2"}', '{"password": "***"}', "hunter2"),
    ],
)
def test_redact_hides_each_kind_of_secret(text, shown, hidden):
    assert redact(text).endswith(shown)
    assert hidden not in redact(text)


def test_ordinary_text_is_left_alone():
    for text in ("max token limit 4096", "unexpected token: '}'", "task-0123456789abcdef", "http://vllm:8000/v1",
                 "Basic statistics of the run", "HTTP 503: The server had an error"):
        assert redact(text) == text


def test_secret_values_from_the_environment_and_registered_ones(monkeypatch):
    monkeypatch.setenv("VIDTHINKER_API_KEY", ENV_KEY)
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-value-PLANTED-42")
    assert redact(f"echo {ENV_KEY}!") == "echo ***!"
    assert redact("x tok-value-PLANTED-42 y") == "x *** y"
    register_secret("actor-only-PLANTED-key")  # a key handed to a Ray actor as an argument
    assert redact("said actor-only-PLANTED-key") == "said ***"
    assert redact("short", secrets=["short"]) == "short"  # values under 8 characters are not secrets


def test_redact_before_truncating_a_key_that_straddles_the_cut(monkeypatch):
    monkeypatch.setenv("VIDTHINKER_API_KEY", ENV_KEY)
    for secret in (ENV_KEY, f"Bearer {API_KEY}"):
        text = "x" * 40 + " " + secret + " tail"
        cut = 41 + len(secret) // 2  # the cut falls in the middle of the secret
        assert secret[:12] in text[:cut]  # cutting first would leak its first characters ...
        shown = redact_then_truncate(text, cut)
        assert len(shown) <= cut and "***" in shown  # ... redacting first does not
        assert secret[: len(secret) // 2].split()[-1][:6] not in shown


def test_redact_data_walks_xcom_like_values():
    value = {"url": f"http://{URL_USER}:{URL_PASS}@h/v1", "n": 3, "items": [f"Bearer {API_KEY}", None, ("a", HF_TOKEN)]}
    assert redact_data(value) == {"url": "http://***@h/v1", "n": 3, "items": ["Bearer ***", None, ("a", "hf_***")]}


def test_redacted_io_redacts_results_and_errors():
    @redacted_io
    def task(fail: bool):
        if fail:
            raise ValueError(f"endpoint http://{URL_USER}:{URL_PASS}@h/v1 is down")
        return {"endpoint": f"http://{URL_USER}:{URL_PASS}@h/v1"}

    assert task(False) == {"endpoint": "http://***@h/v1"}
    with pytest.raises(ValueError, match=r"http://\*\*\*@h/v1 is down") as info:
        task(True)
    assert URL_PASS not in str(info.value)


def test_log_records_of_every_logger_are_redacted(caplog):
    install_log_redaction()
    install_log_redaction()  # idempotent
    child = logging.getLogger("vidthinker.models.openai_compat.deep")
    with caplog.at_level(logging.WARNING):
        child.warning("model at %s failed (%s)", f"http://{URL_USER}:{URL_PASS}@h/v1", f"Bearer {API_KEY}")
        try:
            raise RuntimeError(f"boom {HF_TOKEN}")
        except RuntimeError:
            logging.getLogger("some.library").exception("failed with %s", API_KEY)
    text = caplog.text
    assert "http://***@h/v1" in text and "Bearer ***" in text and "hf_***" in text
    for secret in (URL_PASS, API_KEY, HF_TOKEN):
        assert secret not in text
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "key %s", (API_KEY,), None)
    assert RedactingFilter().filter(record) and record.getMessage() == "key sk-***"


# --------------------------------------------------------------------------- a run with planted secrets


class EchoingProxy:
    """A loopback server in front of the strict stub that forwards chat requests, but answers every third
    one itself with HTTP 500 whose body echoes the request's credential (the Authorization header's value
    without its scheme, as some gateways do) 490 characters in, so it straddles the client's 500-character
    cut: cutting before redacting would leak its first characters."""

    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.count = 0
        self.echoed = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.count += 1
        if request.path.endswith("/chat/completions") and self.count % 3 == 0:
            self.echoed += 1
            credential = request.headers.get("Authorization", "").partition(" ")[2]  # without "Bearer"/"Basic"
            message = "upstream failed: " + "." * 451 + f" rejected credential {credential} (please retry)"
            return web.json_response({"error": {"message": message, "type": "server_error"}}, status=500)
        async with httpx.AsyncClient(timeout=60) as client:
            reply = await client.request(request.method, self.upstream + request.path_qs.removeprefix("/v1"),
                                         content=body, headers={"content-type": "application/json"})
        return web.Response(status=reply.status_code, body=reply.content, content_type="application/json")


@pytest.fixture
def echoing_proxy(stub_for_secrets):
    import asyncio
    import threading

    proxy = EchoingProxy(stub_for_secrets.base_url)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    ready = threading.Event()
    state: dict = {}

    def serve() -> None:
        loop = asyncio.new_event_loop()
        state["loop"] = loop
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        state["port"] = site._server.sockets[0].getsockname()[1]
        state["runner"] = runner
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    proxy.port = state["port"]
    yield proxy
    state["loop"].call_soon_threadsafe(state["loop"].stop)
    thread.join(10)


@pytest.fixture
def stub_for_secrets():
    from tests.servers.openai_stub import StubServer
    from tests.test_pipeline import scripted_model

    with StubServer(models=["scripted"]) as server:
        server.state.responder = scripted_model
        yield server


def _written_text(folder: Path) -> dict[str, str]:
    """Every file under folder as text: parquet decoded to rows, everything else as bytes read as latin-1."""
    texts = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            texts[str(path)] = json.dumps(pq.read_table(path).to_pylist(), default=str)
        else:
            texts[str(path)] = path.read_bytes().decode("latin-1")
    return texts


def test_planted_secrets_appear_in_no_file_and_no_output_of_a_failing_run(synthetic_set, echoing_proxy, tmp_path):
    from tests.engine.conftest import cli_sets

    base_url = f"http://{URL_USER}:{URL_PASS}@127.0.0.1:{echoing_proxy.port}/v1"
    out = tmp_path / "run"
    env = {**os.environ, "VIDTHINKER_API_KEY": API_KEY, "OPENAI_API_KEY": ENV_KEY, "HF_TOKEN": HF_TOKEN,
           "PYTHONPATH": str(ROOT)}
    sets = [a for s in cli_sets(base_url) + ["models.max_retries=0", "engine.shard_size=3"] for a in ("--set", s)]
    proc = subprocess.run([sys.executable, "-m", "vidthinker.cli", *sets, "annotate", "--manifest", str(synthetic_set),
                           "--out", str(out)], env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert echoing_proxy.echoed > 0, proc.stderr  # the failing path was taken ...
    records = [r for p in (out / "shards").rglob("*.parquet") for r in pq.read_table(p).to_pylist()]  # finished or kept failed
    errors = [r["error"] for r in records if r["error"]]
    assert errors, proc.stdout + proc.stderr  # ... and its errors were stored in records
    assert any("endpoint=http://***@127.0.0.1" in e for e in errors), errors
    assert any("rejected credential ***" in e for e in errors), errors
    basic = base64.b64encode(f"{URL_USER}:{URL_PASS}".encode()).decode()
    secrets = [API_KEY, ENV_KEY, URL_PASS, HF_TOKEN, basic, basic[:8], "PLANTED"]
    outputs = {"stdout": proc.stdout, "stderr": proc.stderr, **_written_text(out)}
    assert len(outputs) > 4
    leaks = [(where, s) for where, text in outputs.items() for s in secrets if s in text]
    assert not leaks, leaks
    assert "http://***@127.0.0.1" in proc.stderr  # the retry warnings name the endpoint, redacted


def test_an_uncaught_exception_is_printed_redacted_with_its_cause(tmp_path):
    code = (
        "import sys\n"
        "from vidthinker.cli import app\n"
        "@app.command('boom')\n"
        "def boom():\n"
        f"    raise RuntimeError('lost http://{URL_USER}:{URL_PASS}@h/v1') from OSError('key {API_KEY}')\n"
        "sys.argv = ['vidthinker', 'boom']\n"
        "app()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1
    assert "RuntimeError: lost http://***@h/v1" in proc.stderr and "OSError: key sk-***" in proc.stderr
    assert URL_PASS not in proc.stderr and API_KEY not in proc.stderr
