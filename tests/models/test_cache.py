"""Content-addressed request cache: hits, misses, no cached failures, concurrent writers."""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing as mp
import threading

import pytest

from vidthinker.models import ChatModel, ChatReply, ChatRequest, ImagePart, Message, ModelHTTPError, Usage
from vidthinker.models.cache import CachedChatModel, RequestCache, request_key
from vidthinker.models.openai_compat import OpenAICompatChat, OpenAIEndpoint

from .helpers import make_jpeg

SCHEMA = {
    "type": "object",
    "properties": {"clips": {"type": "array", "items": {"type": "integer"}}},
    "required": ["clips"],
}


def base_request(**kw) -> ChatRequest:
    args: dict = {
        "messages": (Message.system("sys"), Message.user("Which clip?", ImagePart.from_jpeg(make_jpeg(1)))),
        "json_schema": SCHEMA,
        "schema_name": "clips",
        "temperature": 0.0,
        "top_p": 0.1,
        "max_tokens": 64,
        "seed": 1,
        "prompt_hash": "p1",
    }
    args.update(kw)
    return ChatRequest(**args)


def cached_model(stub, tmp_path, **kw) -> CachedChatModel:
    ep = OpenAIEndpoint(
        base_url=stub.base_url,
        model="stub-model",
        api_key="sk-test-SECRET-0123456789",
        structured_output="json_schema",
        backoff_initial_s=0.01,
        **kw,
    )
    return CachedChatModel(OpenAICompatChat(ep), RequestCache(tmp_path / "cache"))


def test_second_identical_call_is_a_hit(stub, tmp_path):
    model = cached_model(stub, tmp_path)
    assert isinstance(model, ChatModel)

    async def go():
        r1 = await model.chat(base_request())
        r2 = await model.chat(base_request())
        await model.aclose()
        return r1, r2

    r1, r2 = asyncio.run(go())
    assert stub.count == 1
    assert r1.usage.calls == 1 and not r1.cached
    assert r2.cached and r2.usage.calls == 0 and r2.usage.cached_calls == 1 and r2.attempts == 0
    assert r2.parsed == r1.parsed and r2.text == r1.text
    assert (r2.usage.prompt_tokens, r2.usage.completion_tokens) == (
        r1.usage.prompt_tokens,
        r1.usage.completion_tokens,
    )
    assert model.hits == 1 and model.misses == 1 and model.cache.hits == 1


def test_rerun_after_crash_uses_the_store(stub, tmp_path):
    """A fresh process (new cache object, new model) pays for nothing twice."""
    asyncio.run(cached_model(stub, tmp_path).chat(base_request()))
    again = cached_model(stub, tmp_path)
    reply = asyncio.run(again.chat(base_request()))
    assert reply.cached and stub.count == 1 and len(again.cache) == 1


CHANGES = {
    "temperature": {"temperature": 0.5},
    "top_p": {"top_p": 0.2},
    "max_tokens": {"max_tokens": 65},
    "seed": {"seed": 2},
    "seed_none": {"seed": None},
    "schema": {"json_schema": {**SCHEMA, "required": []}},
    "no_schema": {"json_schema": None},
    "schema_name": {"schema_name": "other"},
    "prompt_hash": {"prompt_hash": "p2"},
    "text": {
        "messages": (Message.system("sys"), Message.user("Which clip??", ImagePart.from_jpeg(make_jpeg(1))))
    },
    "image": {
        "messages": (Message.system("sys"), Message.user("Which clip?", ImagePart.from_jpeg(make_jpeg(2))))
    },
    "detail": {
        "messages": (
            Message.system("sys"),
            Message.user("Which clip?", ImagePart.from_jpeg(make_jpeg(1), detail="low")),
        )
    },
    "role": {
        "messages": (Message.user("sys"), Message.user("Which clip?", ImagePart.from_jpeg(make_jpeg(1))))
    },
}


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_changing_any_param_misses(name):
    base = base_request()
    changed = dataclasses.replace(base, **CHANGES[name])
    assert request_key("m", changed) != request_key("m", base)


def test_key_is_stable_and_model_scoped():
    assert request_key("m", base_request()) == request_key("m", base_request())
    assert request_key("m", base_request(temperature=0)) == request_key("m", base_request(temperature=0.0))
    assert request_key("m", base_request()) != request_key("m2", base_request())


def test_changed_request_goes_to_the_server(stub, tmp_path):
    model = cached_model(stub, tmp_path)

    async def go():
        await model.chat(base_request())
        await model.chat(base_request(seed=5))
        await model.chat(base_request(seed=5))

    asyncio.run(go())
    assert stub.count == 2 and model.hits == 1 and model.misses == 2


def test_failures_are_not_cached(stub, tmp_path):
    model = cached_model(stub, tmp_path, max_retries=0)
    stub.fail_next("500", 1)
    with pytest.raises(ModelHTTPError):
        asyncio.run(model.chat(base_request()))
    assert len(model.cache) == 0
    reply = asyncio.run(model.chat(base_request()))
    assert not reply.cached and stub.count == 2 and len(model.cache) == 1


def test_identical_concurrent_requests_share_one_call(stub, tmp_path):
    stub.state.latency_s = 0.1
    model = cached_model(stub, tmp_path)

    async def go():
        return await asyncio.gather(*(model.chat(base_request()) for _ in range(5)))

    replies = asyncio.run(go())
    assert stub.count == 1 and sum(r.cached for r in replies) == 4
    assert sum(r.usage.calls for r in replies) == 1


def _fake_reply(i: int) -> ChatReply:
    return ChatReply(text=f'{{"i": {i}}}', parsed={"i": i}, usage=Usage(10, 2, 1), latency_s=0.01, model="m")


def _write_many(directory: str, start: int, n: int) -> None:
    cache = RequestCache(directory)
    for i in range(start, start + n):
        cache.put(f"k{i}", "m", _fake_reply(i))
        cache.put("shared", "m", _fake_reply(-1))
        assert cache.get(f"k{i}") is not None
    cache.close()


def test_concurrent_writers_threads_and_processes(tmp_path):
    d = str(tmp_path / "cache")
    RequestCache(d).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(d, 10_000 * (p + 1), 100)) for p in range(2)]
    for p in procs:
        p.start()
    cache = RequestCache(d)
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            for i in range(100):
                cache.put(f"t{t}-{i}", "m", _fake_reply(i))
                cache.put("shared", "m", _fake_reply(-1))
                assert cache.get(f"t{t}-{i}").parsed == {"i": i}
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert not errors
    assert len(cache) == 4 * 100 + 2 * 100 + 1
    assert cache.get("shared").parsed == {"i": -1}
    cache.close()


MOUNTINFO = """\
22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw
40 22 0:41 / /data rw,relatime shared:20 - nfs4 filer:/export/data rw,vers=4.2
41 40 0:42 / /data/scratch rw,relatime shared:21 - ext4 /dev/nvme1n1 rw
42 22 0:43 / /mnt/my\\040share rw,relatime shared:22 - fuse.sshfs user@host:/ rw
"""


@pytest.mark.parametrize(
    ("path", "fstype", "network"),
    [
        ("/data/vidthinker/cache", "nfs4", True),
        ("/data", "nfs4", True),
        ("/datastore/cache", "ext4", False),  # a name that only starts like a mount point
        ("/data/scratch/cache", "ext4", False),  # a local disk mounted inside the NFS tree
        ("/mnt/my share/cache", "fuse.sshfs", True),
        ("/home/me", "ext4", False),
    ],
)
def test_filesystem_type_is_the_innermost_mount(path, fstype, network):
    from vidthinker.models.cache import filesystem_type, is_network_filesystem

    assert filesystem_type(path, MOUNTINFO) == fstype
    assert is_network_filesystem(fstype) is network


def test_cache_on_a_network_filesystem_uses_a_file_per_host_without_wal(tmp_path, caplog):
    import socket

    from vidthinker.models.cache import filesystem_type

    local = RequestCache(tmp_path / "local")
    assert not local.shared_filesystem and local.path.name == "chat_cache.sqlite"
    assert local._conn().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert filesystem_type(tmp_path) == local.fstype  # the real detection ran on this machine's mounts
    local.close()

    with caplog.at_level("WARNING", logger="vidthinker.models.cache"):
        shared = RequestCache(tmp_path / "nfs", fstype="nfs4")
        RequestCache(tmp_path / "nfs", fstype="nfs4").close()  # warned once per folder
    assert shared.shared_filesystem and shared.path.name.startswith("chat_cache.") and shared.path.name != "chat_cache.sqlite"
    assert socket.gethostname().split(".")[0].replace(".", "_") in shared.path.name
    assert shared._conn().execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    shared.put("k", "m", _fake_reply(7))
    shared.close()
    again = RequestCache(tmp_path / "nfs", fstype="nfs4")
    assert again.get("k").parsed == {"i": 7} and len(again) == 1
    again.close()
    warnings = [r.getMessage() for r in caplog.records if "network filesystem" in r.getMessage()]
    assert len(warnings) == 1 and "nfs4" in warnings[0] and shared.path.name in warnings[0]
