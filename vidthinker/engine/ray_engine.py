"""The Ray engine: a pool of long-lived actors, each annotating whole shards with models it opened once.

Why actors per shard and not Ray Data (see docs/architecture.md, "Ray"): the unit of work, retry and
resume is a shard file written atomically, and one video's work (decode → captions → retrieval →
embeddings) shares decoded frames that should not travel through the object store. Each actor
(`engine.cpus_per_worker` CPUs) does the CPU work of its videos (probe, decode in its decode worker,
embeddings) inside that reservation, while its model calls are I/O: the actor's event loop keeps up to
`models.max_in_flight` requests in flight per endpoint, over `annotate.videos_in_flight` videos at once.
So CPU work scales with the number of actors, and the load on vLLM is sized separately, as
workers × models.max_in_flight.

The driver (this module, in the calling process) runs an asyncio loop: each actor pulls the next shard
when it is idle, and streams one event per finished video back (a Ray streaming generator), so progress
is per video even on a cluster. A shard whose actor dies is handed out again (Ray restarts the actor).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import ActorDiedError, RayActorError, RayTaskError

from vidthinker.config import Settings
from vidthinker.engine import EngineUnavailable, ShardCallback, ShardResult, result_of
from vidthinker.models import ModelUnavailable
from vidthinker.preflight import describe_error
from vidthinker.schema import ManifestRow
from vidthinker.shards import ShardSpec, shard_file
from vidthinker.worker.shard import ShardAnnotator, VideoCallback, default_cache_dir

log = logging.getLogger(__name__)

# Passed to the actors as arguments (not runtime_env, which the dashboard shows): a cluster's workers
# do not inherit the driver's environment.
FORWARDED_ENV = ("VIDTHINKER_API_KEY", "OPENAI_API_KEY", "HF_TOKEN", "HF_HOME")
CLOSE_TIMEOUT_S = 30.0
RESTART_TIMEOUT_S = 300.0  # how long the driver waits for Ray to bring a dead actor back


class ShardWorker:
    """One Ray actor: opens the stage models on its first shard and keeps them for its life (the
    llama.cpp server of the offline backend and the image embedder start once per actor)."""

    def __init__(self, settings: Settings, cache_dir: str, env: dict[str, str]):
        os.environ.update(env)
        # llama.cpp threads spin while waiting by default, starving the other actors on the node.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        self.settings = settings
        self.cache_dir = Path(cache_dir)
        self._annotator: ShardAnnotator | None = None
        self._opening = asyncio.Lock()
        context = ray.get_runtime_context()
        self.label = f"ray node {ray.util.get_node_ip_address()}/{context.get_node_id()[:8]} pid {os.getpid()}"
        gpus = ray.get_gpu_ids()
        if gpus:  # where a worker's embedder runs shows in the run summary's shard_workers
            self.label += f" gpus {','.join(str(g) for g in gpus)}"

    async def _open(self) -> ShardAnnotator:
        async with self._opening:
            if self._annotator is None:
                annotator = ShardAnnotator(self.settings, self.cache_dir)
                await annotator.__aenter__()
                self._annotator = annotator
        return self._annotator

    async def run_shard(self, spec: ShardSpec, rows: list[ManifestRow], out_dir: str, run_id: str, send_records: bool,
                        identities: dict[str, str] | None = None):
        """Annotate one shard; yields ("video", video_id, records | None) per video, then ("done", summary, label)."""
        annotator = await self._open()
        events: asyncio.Queue = asyncio.Queue()

        def video_done(row, records) -> None:
            events.put_nowait(("video", row.video_id, records if send_records else None))

        work = asyncio.ensure_future(annotator.annotate_shard(
            rows, shard_file(out_dir, spec.shard_id), run_id=run_id, shard_id=spec.shard_id, on_video_done=video_done,
            identities=identities,  # computed by the driver (the one place that schedules): the same files it saw
        ))
        try:
            while not work.done() or not events.empty():
                if events.empty():
                    getter = asyncio.ensure_future(events.get())
                    await asyncio.wait({work, getter}, return_when=asyncio.FIRST_COMPLETED)
                    if not getter.done():
                        getter.cancel()
                        continue
                    yield getter.result()
                else:
                    yield events.get_nowait()
            from vidthinker.models.llama_server import started_servers  # offline model and port, for the log

            servers = started_servers()
            yield ("done", work.result(), self.label + (f" llama.cpp {', '.join(servers)}" if servers else ""))
        finally:
            if not work.done():
                work.cancel()

    def ping(self) -> str:
        return self.label

    async def close(self) -> None:
        annotator, self._annotator = self._annotator, None
        if annotator is not None:
            await annotator.__aexit__(None, None, None)


def resolve_address(address: str | None, settings: Settings) -> str | None:
    """The cluster to join: the argument, else `engine.ray_address`, else RAY_ADDRESS; None = embedded."""
    for candidate in (address, settings.engine.ray_address, os.environ.get("RAY_ADDRESS")):
        if candidate and candidate.strip() and candidate.strip().lower() != "local":
            return candidate.strip()
    return None


def check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Fail fast with ConnectionError when nothing listens at a `host:port` / `ray://host:port` address
    (ray.init would otherwise retry for a very long time)."""
    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return  # "auto" and other forms: left to Ray
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as error:
        raise ConnectionError(f"no Ray cluster answers at {address}: {error}") from None


def init_ray(address: str | None, settings: Settings) -> bool:
    """Connect to Ray (a cluster, or a new embedded local instance); True when this call started it."""
    if ray.is_initialized():
        return False
    e = settings.engine
    quiet = {"log_to_driver": e.log_to_driver, "logging_level": logging.WARNING}
    target = resolve_address(address, settings)
    if target is not None:
        check_reachable(target)
        ray.init(address=target, **quiet)
    else:
        # address="local": a fresh instance even when another one on this machine wrote /tmp/ray's
        # "current cluster" file (ray.init() with no address would join that one).
        gpus = {} if e.local_num_gpus is None else {"num_gpus": e.local_num_gpus}  # default: Ray detects them
        with _embedded_on_loopback():
            ray.init(address="local", num_cpus=e.local_num_cpus or os.cpu_count() or 1, include_dashboard=False,
                     _node_ip_address=LOOPBACK, **gpus, **quiet)
        log.info("embedded Ray started on %s (GCS, raylet and workers listen on loopback only)", LOOPBACK)
    return True


LOOPBACK = "127.0.0.1"


class _DropTokenNotice(logging.Filter):
    """Ray (2.5x+) warns "Token authentication is enabled for this Ray cluster" whenever it starts a local
    cluster with its default token auth (ray/_private/authentication/authentication_token_setup.py,
    `_warn_token_auth_enabled`). That is the secure default, not a problem; under Airflow it reached the
    task log as an ERROR line. It is logged at INFO by `init_ray` instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Token authentication is enabled")


@contextlib.contextmanager
def _embedded_on_loopback():
    """Keep an embedded Ray on 127.0.0.1.

    What binds where (Ray 2.60, checked by listing the sockets of a started instance): the GCS server,
    the raylet and the workers' gRPC servers listen on the node IP when it is a loopback address and on
    every interface (::) otherwise. `ray.init(_node_ip_address="127.0.0.1")` alone does not keep it there:
    `ray/_private/worker.py` passes the address through `services.resolve_ip_for_localhost`, which swaps a
    loopback address for the machine's routable one unless `ray_constants.ENABLE_RAY_CLUSTER` is false
    (what RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 selects on macOS/Windows). So that flag is false for the
    duration of this `ray.init` only; a cluster address (`engine.ray_address`, RAY_ADDRESS) never gets here.
    The dashboard stays off (`include_dashboard=False`)."""
    from ray._private import ray_constants

    notice = _DropTokenNotice()
    token_log = logging.getLogger("ray._private.authentication.authentication_token_setup")
    token_log.addFilter(notice)
    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved
        token_log.removeFilter(notice)
    if os.environ.get("RAY_AUTH_MODE", "token").lower() == "token":
        log.info("embedded Ray uses token authentication (Ray's default; RAY_AUTH_MODE=disabled turns it off)")


def worker_count(settings: Settings, shards: int) -> int:
    """Actors to start: `engine.workers`, else as many as the cluster's CPUs (and GPUs, when each
    worker asks for some) hold; never more than there are shards.

    A worker asking for more GPUs than the whole cluster has could never be placed: Ray would keep it
    pending forever, so that is an error here instead of a hang.
    """
    e = settings.engine
    resources = ray.cluster_resources()
    gpus = float(resources.get("GPU", 0.0))
    if e.gpus_per_worker > 0 and gpus + 1e-9 < e.gpus_per_worker:
        raise EngineUnavailable(
            f"engine.gpus_per_worker={e.gpus_per_worker:g} but the Ray cluster has {gpus:g} GPUs: "
            "start GPU nodes (ray start --num-gpus N) or set engine.gpus_per_worker=0"
        )
    if e.workers is not None:
        wanted = e.workers
    else:
        wanted = max(1, math.floor(float(resources.get("CPU", 1.0)) / e.cpus_per_worker + 1e-9))
        if e.gpus_per_worker > 0:
            wanted = min(wanted, max(1, math.floor(gpus / e.gpus_per_worker + 1e-9)))
    return max(1, min(wanted, shards))


async def _back_up(actor) -> bool:
    """Wait until Ray has restarted a dead actor; False when it is gone for good (or takes too long)."""
    deadline = time.monotonic() + RESTART_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            await actor.ping.remote()
            return True
        except ActorDiedError:  # out of restarts
            return False
        except RayActorError:  # ActorUnavailableError: restarting
            pass
        await asyncio.sleep(0.5)
    return False


def _cause(error: RayTaskError) -> BaseException:
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error


async def _drive(actors, todo, by_id, out_dir, settings, run_id, on_shard_done, on_video_done,
                 identities=None) -> list[ShardResult]:
    max_attempts = settings.engine.max_shard_attempts
    queue: deque[ShardSpec] = deque(todo)
    attempts: dict[str, int] = {}
    reported: dict[str, set[str]] = {}
    results: dict[str, ShardResult] = {}
    running = 0
    fatal: list[BaseException] = []

    def give_up_or_retry(spec: ShardSpec, why: str, worker: str | None) -> None:
        if attempts[spec.shard_id] < max_attempts:
            log.warning("shard %s: %s; trying again (%d/%d)", spec.shard_id, why, attempts[spec.shard_id] + 1, max_attempts)
            queue.append(spec)
            return
        result = ShardResult(shard_id=spec.shard_id, status="failed", videos=len(spec.video_ids),
                             attempts=attempts[spec.shard_id], error=why, worker=worker)
        results[spec.shard_id] = result
        if on_shard_done is not None:
            on_shard_done(result)

    async def serve(actor) -> None:
        nonlocal running
        while not fatal:
            if not queue:
                if running == 0:
                    return
                await asyncio.sleep(0.1)  # a shard in flight elsewhere may come back for a retry
                continue
            spec = queue.popleft()
            attempts[spec.shard_id] = attempts.get(spec.shard_id, 0) + 1
            seen = reported.setdefault(spec.shard_id, set())
            rows = [by_id[v] for v in spec.video_ids]
            running += 1
            died = False
            try:
                ids = {v: identities[v] for v in spec.video_ids if v in (identities or {})}
                stream = actor.run_shard.remote(spec, rows, str(out_dir), run_id, on_video_done is not None, ids)
                async for ref in stream:
                    event = await ref
                    if event[0] == "video":
                        _, video_id, records = event
                        if video_id not in seen:  # a retried shard does not count its videos twice
                            seen.add(video_id)
                            if on_video_done is not None:
                                on_video_done(by_id[video_id], records or [])
                        continue
                    _, summary, label = event
                    result = result_of(spec, summary, label, attempts[spec.shard_id])
                    results[spec.shard_id] = result
                    if on_shard_done is not None:
                        on_shard_done(result)
            except RayActorError as error:  # the worker died (killed, OOM, node lost): Ray restarts it
                give_up_or_retry(spec, f"worker died: {type(error).__name__}", None)
                died = True
            except RayTaskError as error:
                cause = _cause(error)
                if isinstance(cause, ModelUnavailable) or isinstance(error, ModelUnavailable):
                    fatal.append(cause)
                    return
                give_up_or_retry(spec, describe_error(cause), None)
            finally:
                running -= 1
            if died and not await _back_up(actor):
                return  # this actor is gone for good; the others take the queue

    await asyncio.gather(*(serve(actor) for actor in actors))
    if fatal:
        raise fatal[0]
    for spec in queue:  # every actor died for good before these ran
        results[spec.shard_id] = ShardResult(shard_id=spec.shard_id, status="failed", videos=len(spec.video_ids),
                                             attempts=attempts.get(spec.shard_id, 0), error="no live Ray worker left")
    return [results[spec.shard_id] for spec in todo if spec.shard_id in results]


def run_ray(
    todo: Sequence[ShardSpec],
    by_id: dict[str, ManifestRow],
    out_dir: Path,
    settings: Settings,
    *,
    run_id: str,
    address: str | None = None,
    on_shard_done: ShardCallback | None = None,
    on_video_done: VideoCallback | None = None,
    identities: dict[str, str] | None = None,
) -> tuple[list[ShardResult], int]:
    """Run the shards on Ray; returns their results and the number of actors used."""
    by_id = {video_id: _absolute_video(row) for video_id, row in by_id.items()}
    started_here = init_ray(address, settings)
    actors: list[Any] = []
    try:
        n = worker_count(settings, len(todo))
        env = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
        e = settings.engine
        worker_cls = ray.remote(ShardWorker).options(
            num_cpus=e.cpus_per_worker, num_gpus=e.gpus_per_worker, max_restarts=e.max_shard_attempts,
            max_task_retries=0,
        )
        cache_dir = str(Path(os.path.abspath(default_cache_dir(settings, out_dir))))
        actors = [worker_cls.remote(settings, cache_dir, env) for _ in range(n)]
        results = asyncio.run(_drive(actors, list(todo), by_id, out_dir, settings, run_id, on_shard_done, on_video_done,
                                     identities))
        return results, n
    finally:
        _close(actors)
        if started_here:
            ray.shutdown()


def _absolute_video(row: ManifestRow) -> ManifestRow:
    """Workers do not run in the driver's folder: a relative video path is made absolute here."""
    if "://" in row.video or os.path.isabs(row.video):
        return row
    return row.model_copy(update={"video": os.path.abspath(row.video)})


def _close(actors: list[Any]) -> None:
    """Let each actor stop its models (the llama.cpp server is a subprocess), then end it."""
    if not actors:
        return
    refs = [actor.close.remote() for actor in actors]
    try:
        ray.wait(refs, num_returns=len(refs), timeout=CLOSE_TIMEOUT_S)
    except Exception as error:  # noqa: BLE001 - a dead actor has nothing left to close
        log.debug("closing Ray workers: %s", error)
    for actor in actors:
        try:
            ray.kill(actor, no_restart=True)
        except Exception as error:  # noqa: BLE001
            log.debug("ending a Ray worker: %s", error)
