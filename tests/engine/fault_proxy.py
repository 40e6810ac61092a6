"""A fault-injecting HTTP proxy (aiohttp, loopback) in front of an OpenAI-compatible server.

It forwards `/v1/*` to the upstream (the strict stub, tests/servers/openai_stub.py) and, on chat
requests, injects the failures a real deployment sees:

* `429` with `Retry-After`, `429-bare` without it, `500`, `503` (answered by the proxy: never reach
  the upstream, cost nothing);
* `stall`: no answer for `stall_s` (past the client's timeout), then the connection is closed;
* `drop`: the connection dies without an answer;
* `malformed`: the upstream answers (a paid call) and the proxy replaces the body with broken JSON;
* `truncated`: the upstream answers (paid) and the reply's content is cut in half (`finish_reason`
  "length"), as when a reply runs out of tokens.

Which request fails: `first` (a list of kinds for the first chat requests), then an outage once
`outage_after` chat requests have passed (every request then fails with `outage_kind`, GET /models
too), else each request fails with probability `rate` (a seeded RNG; kind drawn from `kinds`).
`clear()` ends every fault. `injected` counts the faults by kind. Used by tests/engine/test_failure_semantics.py
and bench/faults.py.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import threading
from typing import Self

import aiohttp
from aiohttp import web

ALL_KINDS = ("429", "429-bare", "500", "503", "stall", "drop", "malformed", "truncated")


class FaultProxy:
    def __init__(self, upstream: str, *, rate: float = 0.0, kinds: tuple[str, ...] = ALL_KINDS, seed: int = 0,
                 stall_s: float = 2.0, outage_after: int | None = None, outage_kind: str = "503",
                 first: tuple[str, ...] = ()):
        self.upstream = upstream.rstrip("/")  # e.g. http://127.0.0.1:1234/v1
        self.rate, self.kinds, self.stall_s = rate, tuple(kinds), stall_s
        self.outage_after, self.outage_kind = outage_after, outage_kind
        self.first = collections.deque(first)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.chat_requests = 0
        self.injected: collections.Counter[str] = collections.Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ready = threading.Event()
        self.port = 0

    # ------------------------------------------------------------------ control
    def clear(self) -> None:
        """No more faults: every request goes through."""
        with self._lock:
            self.rate, self.outage_after = 0.0, None
            self.first.clear()

    def configure(self, **kw) -> None:
        with self._lock:
            for key, value in kw.items():
                if key == "first":
                    self.first = collections.deque(value)
                elif key == "seed":
                    self._rng = random.Random(value)
                else:
                    setattr(self, key, value)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _fault(self, chat: bool) -> str | None:
        with self._lock:
            if chat:
                self.chat_requests += 1
            if self.outage_after is not None and self.chat_requests > self.outage_after:
                kind = self.outage_kind
            elif not chat:
                return None
            elif self.first:
                kind = self.first.popleft()
            elif self.rate and self._rng.random() < self.rate:
                kind = self._rng.choice(self.kinds)
            else:
                return None
            self.injected[kind] += 1
            return kind

    # ------------------------------------------------------------------ serving
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        chat = request.method == "POST" and request.path.endswith("/chat/completions")
        body = await request.read()
        kind = self._fault(chat)
        if kind in ("429", "429-bare"):
            headers = {"Retry-After": "0.05"} if kind == "429" else {}
            return web.json_response({"error": {"message": "Rate limit reached.", "type": "rate_limit_error"}},
                                     status=429, headers=headers)
        if kind in ("500", "503"):
            return web.json_response({"error": {"message": "upstream error", "type": "server_error"}}, status=int(kind))
        if kind == "stall":
            await asyncio.sleep(self.stall_s)
            kind = "drop"
        if kind == "drop":
            if request.transport is not None:  # None: the client gave up on a stall and closed it already
                request.transport.abort()
            raise asyncio.CancelledError  # nothing is sent: the client sees the connection die
        assert self._session is not None
        tail = request.path.split("/v1", 1)[1]
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        async with self._session.request(request.method, self.upstream + tail, data=body or None,
                                         headers=headers) as upstream:
            data = await upstream.read()
            status, ctype = upstream.status, upstream.headers.get("Content-Type", "application/json")
        if kind == "malformed" and status == 200:
            return web.Response(status=200, body=data[: len(data) // 2], content_type="application/json")
        if kind == "truncated" and status == 200:
            reply = json.loads(data)
            message = reply["choices"][0]["message"]
            message["content"] = (message.get("content") or "")[: max(1, len(message.get("content") or "") // 2)]
            reply["choices"][0]["finish_reason"] = "length"
            return web.json_response(reply)
        return web.Response(status=status, body=data, content_type=ctype.split(";")[0])

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/v1/{tail:.*}", self._handle)
        self._session = aiohttp.ClientSession()
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
