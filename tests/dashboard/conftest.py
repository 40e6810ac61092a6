"""The dashboard as a user sees it: the Streamlit app as a subprocess on a free loopback port, driven
by Playwright in Debian's headless Chromium (/usr/bin/chromium; no browser is ever downloaded)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.demo_support import ARTIFACTS, demo_root

CHROMIUM = os.environ.get("VIDTHINKER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


def _need_browser() -> None:
    missing = []
    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        import playwright  # noqa: F401
        import streamlit  # noqa: F401
    except ImportError as error:
        missing.append(f"{error.name} (pip install playwright streamlit)")
    if missing:
        message = "dashboard browser tests need " + ", ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> Path:
    return demo_root(tmp_path_factory)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    path = ARTIFACTS / "dashboard"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def dashboard_url(demo, tmp_path_factory):
    """The app serving demo/runs, started the way `vidthinker dashboard` starts it."""
    _need_browser()
    from vidthinker.dashboard import streamlit_argv

    port = _free_port()
    log = tmp_path_factory.mktemp("dashboard") / "streamlit.log"
    env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", "HOME": str(log.parent)}
    with log.open("w") as handle:
        proc = subprocess.Popen(streamlit_argv(demo / "runs", port=port, python=sys.executable), stdout=handle,
                                stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"dashboard exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"dashboard did not answer on {url} within 90 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# Module scope, not session: Playwright's sync API keeps an asyncio loop running in this thread while
# it is open, and every later test that calls asyncio.run() would fail.
@pytest.fixture(scope="module")
def browser(dashboard_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 2400})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.page_errors = errors  # type: ignore[attr-defined]
    yield tab
    context.close()
