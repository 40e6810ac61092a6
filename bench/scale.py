"""Annotation throughput of the engines: local, Ray with one worker, Ray with two workers.

Every configuration annotates the same synthetic videos (oracle stage-1 captions, so each question
costs one stage-2 call; stage 3 computes real EfficientNet embeddings) into a fresh run folder with a
fresh request cache, through `vidthinker.annotate.run_annotation`, against the loopback OpenAI stub
server running in its own process with a fixed latency and capacity. That server answers at most
capacity / latency requests per second; "of capacity" is the achieved request rate over that bound.

Figures are end to end: they include starting the engine (embedded Ray ≈ 4 s, each actor importing
torch and loading the embedder once) and the last shard's tail. "first video s" is the time until the
first video finished (engine start + model load + one video); "steady records/s" counts the records of
the other videos over the time from the first finished video to the last (the rate once started). Read the ratios between rows: the
machine is shared and single runs vary.

Airflow overhead per shard (scheduling and starting one mapped task) is measured on the DAG side;
pass it with --airflow-overhead-s to project records/s for a DAG run (N/A otherwise):
records / (wall + shards × overhead / parallel tasks), parallel tasks = the configuration's workers.

    .venv/bin/python bench/scale.py --videos 8 --shard-size 2 --latency 0.5 --capacity 8
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from tests.servers.openai_stub import StubProcess

CONFIGS = {
    "local": ("local", None),
    "ray-1": ("ray", 1),
    "ray-2": ("ray", 2),
}


def run_config(name, rows, stub, args, work):
    from vidthinker.annotate import run_annotation
    from vidthinker.config import load_settings

    engine, workers = CONFIGS[name]
    sets = [
        "annotate.oracle_captions=true", "models.backend=openai", f"models.base_url={stub.base_url}",
        "models.caption_model=scripted", "models.structured_output=json_schema", "models.max_retries=1",
        f"models.max_in_flight={args.max_in_flight}", f"annotate.videos_in_flight={args.videos_in_flight}",
        f"engine.shard_size={args.shard_size}", f"engine.local_num_cpus={args.ray_cpus}",
    ]
    if workers:
        sets.append(f"engine.workers={workers}")
    settings = load_settings(None, sets)
    out = work / f"{name}-{time.time_ns()}"
    stub.reset()
    done: list[tuple[float, int]] = []  # (when, records) per finished video
    started = time.perf_counter()
    summary = run_annotation(rows, out, settings, engine=engine,
                             on_video_done=lambda row, records: done.append((time.perf_counter(), len(records))))
    wall = time.perf_counter() - started
    stats = stub.stats()
    assert not summary.failed_shards and summary.errors == 0, (summary.failed_shards, summary.errors_by_reason)
    # steady state: the records of every video after the first, over the time from the first to the last
    steady = sum(n for _, n in done[1:]) / (done[-1][0] - done[0][0]) if len(done) > 1 else float("nan")
    return {
        "name": name, "workers": summary.workers, "shards": len(summary.shards), "records": summary.records,
        "requests": stats["count"], "wall": wall, "first": done[0][0] - started, "steady": steady,
        "peak": stats["peak_processing"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=8, help="synthetic videos (20-30 s each)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--shard-size", type=int, default=2, help="videos per shard")
    parser.add_argument("--latency", type=float, default=0.5, help="server latency per request, seconds")
    parser.add_argument("--capacity", type=int, default=8, help="requests the server processes at once")
    parser.add_argument("--max-in-flight", type=int, default=16, help="models.max_in_flight (per worker)")
    parser.add_argument("--videos-in-flight", type=int, default=2, help="annotate.videos_in_flight (per worker)")
    parser.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the embedded Ray instance")
    parser.add_argument("--configs", default="local,ray-1,ray-2", help=f"comma-separated, of {sorted(CONFIGS)}")
    parser.add_argument("--airflow-overhead-s", type=float, default=None,
                        help="measured Airflow overhead per shard task, seconds (from the DAG benchmark)")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown config(s) {unknown}; known: {sorted(CONFIGS)}")

    from vidthinker.formats import read_manifest
    from vidthinker.synth import generate_synthetic_set

    work = args.workdir or Path(tempfile.mkdtemp(prefix="vidthinker-bench-scale-"))
    manifest = work / "synth" / "manifest.jsonl"
    if not manifest.exists():
        generate_synthetic_set(work / "synth", args.videos, args.seed, min_seconds=20, max_seconds=30)
    rows = read_manifest(manifest)[: args.videos]
    questions = sum(len(r.qa) for r in rows)
    bound = args.capacity / args.latency
    load = os.getloadavg()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"load average at start {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    print(f"{len(rows)} videos, {questions} questions (= stage-2 requests), shard size {args.shard_size}; "
          f"server: latency {args.latency} s, capacity {args.capacity} → bound {bound:.1f} req/s; per worker "
          f"models.max_in_flight={args.max_in_flight}, annotate.videos_in_flight={args.videos_in_flight}")

    with StubProcess(args.latency, args.capacity) as stub:
        results = [run_config(name, rows, stub, args, work) for name in names]

    first = results[0]
    per_request = first["requests"] / first["records"]  # stage-2 requests per record (1 with oracle captions)
    print()
    print(f"| engine | workers | shards | records | wall s | first video s | records/s end to end | steady records/s "
          f"| steady vs {first['name']} | steady req/s of capacity | peak busy slots | records/s with Airflow overhead |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        rate = r["records"] / r["wall"]
        if args.airflow_overhead_s is None:
            airflow = "N/A"
        else:
            airflow = f"{r['records'] / (r['wall'] + r['shards'] * args.airflow_overhead_s / r['workers']):.2f}"
        print(f"| {r['name']} | {r['workers']} | {r['shards']} | {r['records']} | {r['wall']:.1f} | {r['first']:.1f} | "
              f"{rate:.2f} | {r['steady']:.2f} | {r['steady'] / first['steady']:.2f}x | "
              f"{r['steady'] * per_request / bound:.2f} | {r['peak']}/{args.capacity} | {airflow} |")
    load = os.getloadavg()
    print(f"\nload average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")


if __name__ == "__main__":
    main()
