"""Annotation cost and throughput on synthetic videos, against a loopback OpenAI-compatible server.

Part 1 — cost: model calls, prompt and completion tokens per annotation (one record = one question)
for one stage-1 call per clip and question (`per_question`) vs one call per clip for all of a video's
questions (`shared`). Tokens are the server's usage figures: the loopback stub counts prompt tokens as
the real APIs do for text (~4 characters a token) plus a fixed 85 tokens per image part (OpenAI's
low-detail cost), so the ratio between the two modes is the figure to read, not the absolute count.

Part 2 — throughput: the stub serves with a fixed latency and a fixed capacity (requests processed at
once), so it can answer at most capacity / latency requests per second. The pipeline's achieved
request rate over that bound says how well it keeps the server busy (goal: >= 0.9).

    .venv/bin/python bench/annotate.py --videos 4 --latency 0.25 --capacity 8
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.servers.openai_stub import StubProcess, StubServer
from tests.test_pipeline import scripted_model
from vidthinker.config import load_settings
from vidthinker.formats import read_manifest
from vidthinker.models.cache import CachedChatModel, RequestCache
from vidthinker.models.embedders import make_embedder
from vidthinker.models.openai_compat import OpenAICompatChat, OpenAIEndpoint
from vidthinker.pipeline import StageModels, VideoAnnotator, annotate_rows
from vidthinker.synth import generate_synthetic_set


def run_pipeline(rows, server, embedder, settings, cache_dir, max_in_flight):
    chat = OpenAICompatChat(OpenAIEndpoint(base_url=server.base_url, model="scripted", api_key=None,
                                           structured_output="json_schema", max_in_flight=max_in_flight))
    model = CachedChatModel(chat, RequestCache(cache_dir))
    models = StageModels(captioner=model, retriever=model, embedder=embedder)
    annotator = VideoAnnotator(models, settings, run_id="bench", created_at=dt.datetime.now(dt.UTC))
    started = time.perf_counter()
    records = asyncio.run(annotate_rows(annotator, rows, videos_in_flight=settings.annotate.videos_in_flight))
    return records, time.perf_counter() - started


def cost(records):
    calls = prompt = completion = 0
    for r in records:
        traces = [c.trace for c in r.captions] + [r.retrieval.trace]
        for t in traces:
            calls += t.usage.calls
            prompt += t.usage.prompt_tokens
            completion += t.usage.completion_tokens
    n = len(records)
    return calls / n, prompt / n, completion / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=4, help="synthetic videos (20-40 s each)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.25, help="server latency per request, seconds")
    parser.add_argument("--capacity", type=int, default=8, help="requests the server processes at once")
    parser.add_argument("--frames-per-clip", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="vidthinker-bench-annotate-"))
    manifest = work / "synth" / "manifest.jsonl"
    if not manifest.exists():
        generate_synthetic_set(work / "synth", args.videos, args.seed, min_seconds=20, max_seconds=40)
    rows = read_manifest(manifest)[: args.videos]
    questions = sum(len(r.qa) for r in rows)
    embedder = make_embedder("efficientnet-lite0")
    print(f"{len(rows)} videos, {questions} questions, {sum(len(r.clip_descriptions or []) for r in rows)} clips")

    print("\n## Cost per annotation (stage 1 + stage 2)")
    print(f"{'stage-1 mode':<14} {'calls':>7} {'prompt tok':>11} {'completion tok':>15}")
    figures = {}
    for mode in ("per_question", "shared"):
        settings = load_settings(None, [f"annotate.caption_mode={mode}", f"annotate.frames_per_clip={args.frames_per_clip}"])
        with StubServer(models=["scripted"]) as server:
            server.state.responder = scripted_model
            records, _ = run_pipeline(rows, server, embedder, settings, work / f"cache-{mode}-{time.time_ns()}", 64)
        figures[mode] = cost(records)
        calls, prompt, completion = figures[mode]
        print(f"{mode:<14} {calls:>7.2f} {prompt:>11.0f} {completion:>15.1f}")
    pq, sh = figures["per_question"], figures["shared"]
    print(f"shared / per_question: calls {sh[0] / pq[0]:.2f}x, prompt tokens {sh[1] / pq[1]:.2f}x, completion tokens {sh[2] / pq[2]:.2f}x")

    print("\n## Throughput against a server with fixed latency and capacity")
    # The server runs in its own process, as vLLM would: in-process it would share the GIL with
    # decoding and JPEG encoding and understate the pipeline. It answers schema-minimal JSON.
    bound = args.capacity / args.latency
    settings = load_settings(None, ["annotate.caption_mode=per_question", f"annotate.frames_per_clip={args.frames_per_clip}",
                                    f"annotate.videos_in_flight={len(rows)}"])
    with StubProcess(args.latency, args.capacity) as server:
        run_pipeline(rows[:1], server, embedder, settings, work / f"cache-warm-{time.time_ns()}", 4 * args.capacity)
        before = server.stats()["count"]
        with CountSampler(server) as samples:
            records, wall = run_pipeline(rows, server, embedder, settings, work / f"cache-tp-{time.time_ns()}", 4 * args.capacity)
        stats = server.stats()
    served = stats["count"] - before
    rate = served / wall
    steady = samples.steady_rate(before, served)
    print(f"server bound {bound:.1f} req/s (capacity {args.capacity}, latency {args.latency}s)")
    print(f"end to end: {served} requests in {wall:.1f}s = {rate:.1f} req/s = {rate / bound:.2f} of capacity; "
          f"{len(records) / wall:.2f} records/s (includes the first video's decode and the last one's tail)")
    print(f"sustained (10%-90% of the requests): {steady:.1f} req/s = {steady / bound:.2f} of capacity "
          f"(peak busy slots {stats['peak_processing']}/{args.capacity})")


class CountSampler:
    """Polls the server's request count, to measure the sustained rate between 10% and 90% of a run."""

    def __init__(self, server, every_s: float = 0.1):
        import threading

        self.server, self.every_s, self.samples = server, every_s, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self):
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), self.server.stats()["count"]))
            self._stop.wait(self.every_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def steady_rate(self, before: int, total: int) -> float:
        def first_time(at_least: float) -> tuple[float, int]:
            return next((t, c) for t, c in self.samples if c - before >= at_least)

        (t10, c10), (t90, c90) = first_time(0.1 * total), first_time(0.9 * total)
        return (c90 - c10) / (t90 - t10) if t90 > t10 else float("nan")


if __name__ == "__main__":
    main()
