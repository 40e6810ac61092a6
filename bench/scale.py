"""Annotation throughput of the engines: local, Ray with one worker, Ray with two workers.

Every configuration annotates the same synthetic videos (oracle stage-1 captions, so each question
costs one stage-2 call; stage 3 computes real EfficientNet embeddings) into a fresh run folder with a
fresh request cache, through `vidthinker.engine.run_annotation`, against the loopback OpenAI stub
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

Downstream tools at VideoITG-40K scale (`downstream`): builds run folders of 47K and 474K records (the full
size: 474,354 records over 42,500 videos in 665 shards) from records the pipeline made in a tiny annotate
run (2 synthetic videos, the loopback stub server), replicated with new ids and written with the product's
own `shards.write_shard`; then runs each tool in a fresh process and prints its wall time and peak memory
(`resource.getrusage` of the child) next to the time pyarrow takes to read just the columns the tool needs.

    nice -n 10 .venv/bin/python bench/scale.py downstream --sizes 47000,474354 --workdir /tmp/vt-scale
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
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
    from vidthinker.engine import run_annotation
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


# --------------------------------------------------------------------------- downstream tools at scale

FULL = (474_354, 42_500, 665)  # VideoITG-40K: records, videos, shards
PY = sys.executable
VT = [PY, "-c", "from vidthinker.cli import app; app()"]


def source_records(work: Path) -> list:
    """Records of a tiny annotate run (2 synthetic videos, oracle captions, the stub server), made once."""
    from vidthinker.formats import iter_records, read_manifest
    from vidthinker.synth import generate_synthetic_set

    run = work / "source-run"
    if not (run / "shards").is_dir():
        manifest = work / "synth" / "manifest.jsonl"
        if not manifest.exists():
            generate_synthetic_set(work / "synth", 2, 5, min_seconds=20, max_seconds=30)
        rows = read_manifest(manifest)
        args = argparse.Namespace(max_in_flight=16, videos_in_flight=2, shard_size=2, ray_cpus=2)
        with StubProcess(0.0, 8) as stub:
            result = run_config("local", rows, stub, args, work)
        for path in work.glob("local-*"):
            if (path / "shards").is_dir():
                path.rename(run)
                break
        print(f"source: {result['records']} records annotated in {result['wall']:.1f} s")
    records = [r for r in iter_records(run / "shards") if r.ok]
    return records


def build_run(work: Path, records: int, source: list) -> Path:
    """A run folder of `records` records in VideoITG-40K proportions, written with shards.write_shard."""
    from vidthinker.shards import shard_id_for, write_shard

    scale = records / FULL[0]
    videos = max(1, round(FULL[1] * scale))
    shards = max(1, round(FULL[2] * scale))
    run = work / f"run-{records}"
    if (run / ".built").exists():
        return run
    video_dir = work / "videos"
    video_dir.mkdir(exist_ok=True)
    real = Path(source[0].video)
    per_video = [records // videos + (1 if v < records % videos else 0) for v in range(videos)]
    bounds = [round(i * videos / shards) for i in range(shards + 1)]
    n = 0
    started = time.perf_counter()
    for s in range(shards):
        batch = []
        ids = [f"v{v:06d}" for v in range(bounds[s], bounds[s + 1])]
        for v, video_id in zip(range(bounds[s], bounds[s + 1]), ids):
            link = video_dir / f"{video_id}.mp4"
            if not link.exists():
                os.link(real, link)
            for q in range(per_video[v]):
                base = source[n % len(source)]
                n += 1
                qa = f"q{q:02d}"
                # every 7th question is a template asked of many videos (as in the public set)
                question = base.question if n % 7 == 0 else f"{base.question} (video {v}, question {q})"
                batch.append(base.model_copy(update={"id": f"{video_id}/{qa}", "video_id": video_id, "qa_id": qa,
                                                     "video": f"{video_id}.mp4", "question": question}))
        write_shard(batch, run / "shards" / f"{shard_id_for(ids)}.parquet", shard_id=shard_id_for(ids), video_ids=ids,
                    settings_fingerprint="bench")
    (run / ".built").write_text("ok")
    print(f"built {run}: {records} records, {videos} videos, {shards} shards in {time.perf_counter() - started:.0f} s")
    return run


def measure(argv: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """(wall s, peak RSS MiB, output) of one command in a fresh process, measured by a small wrapper."""
    wrapper = ("import resource, subprocess, sys, time, json; t = time.perf_counter(); "
               "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); w = time.perf_counter() - t; "
               "print(json.dumps([w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, p.returncode, "
               "(p.stdout + p.stderr)[-2000:]]))")
    done = subprocess.run([PY, "-c", wrapper, *argv], capture_output=True, text=True, env=env, cwd=REPO, check=True)
    wall, peak, code, output = json.loads(done.stdout.strip().splitlines()[-1])
    if code != 0:
        print(f"  ! {' '.join(argv[3:6])} exited {code}: {output[-600:]}")
    return wall, peak, output


def _python(code: str) -> list[str]:
    return [PY, "-c", code]


def baseline_read(paths_glob: str, columns: list[str] | None, filter_ok: bool = False) -> list[str]:
    """pyarrow reading just `columns` of every shard (the floor a tool's reading can reach)."""
    flt = ", filter=pc.field('error').is_null()" if filter_ok else ""
    return _python(
        "import glob, pyarrow.dataset as ds, pyarrow.compute as pc; "
        f"d = ds.dataset(sorted(glob.glob({paths_glob!r})), format='parquet'); "
        f"t = d.to_table(columns={columns!r}{flt}) if {columns!r} is not None else None; "
        "n = sum(b.num_rows for b in d.to_batches()) if t is None else t.num_rows; print(n)")


def downstream(argv: list[str]) -> None:
    import shutil

    parser = argparse.ArgumentParser(prog="bench/scale.py downstream")
    parser.add_argument("--sizes", default="47000,474354", help="record counts of the run folders")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "vidthinker-scale")
    parser.add_argument("--tools", default="export,validate,train,quality,dashboard,publish")
    args = parser.parse_args(argv)
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    tools = args.tools.split(",")
    source = source_records(work)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}; "
          f"{len(source)} source records from a tiny annotate run")
    from vidthinker.quality.shard import SHARD_COLUMNS
    from vidthinker.schema import VIDEOITG_COLUMNS

    rows = []
    env = {**os.environ, "HF_TOKEN": "", "HF_HUB_OFFLINE": "1", "HF_HOME": str(work / "hf-home")}
    env.pop("HF_TOKEN")
    for size in (int(x) for x in args.sizes.split(",")):
        run = build_run(work, size, source)
        shards = str(run / "shards" / "*.parquet")

        def add(tool: str, command: list[str], baseline: list[str] | None, note: str = "", size: int = size) -> None:
            wall, peak, output = measure(command, env)
            base = measure(baseline, env)[0] if baseline else None
            if tool.startswith("train"):  # load_samples + data_version inside the process (torch import aside)
                lines = output.strip().splitlines()
                note = f"(in process {lines[-1].split()[-1]} s)" if lines else note
            rows.append((tool, size, wall, peak, base, note, output))
            ratio = f"{wall / base:.1f}x" if base else "–"
            print(f"{tool:<28} {size:>7} records: {wall:7.2f} s, peak {peak:6.0f} MiB; needed columns {base or 0:6.2f} s ({ratio}) {note}")

        if "export" in tools:
            add("export videoitg-json", VT + ["export", "--shards", str(run / "shards"), "--out", str(work / "x.json")],
                baseline_read(shards, list(VIDEOITG_COLUMNS), filter_ok=True))
        if "validate" in tools:
            add("validate run folder", VT + ["validate", str(run)], baseline_read(shards, None))
        if "train" in tools:
            load = ("import time; from trainer.data import load_samples, data_version, LoadReport; t = time.perf_counter(); "
                    f"r = LoadReport(); s = load_samples({str(run / 'shards')!r}, video_root={str(work / 'videos')!r}, report=r, "
                    "max_missing_share=0.05); v = data_version(" + repr(str(run / "shards")) + "); "
                    "print(len(s), r.index_hits, v, round(time.perf_counter() - t, 2))")
            shutil.rmtree(run / "shards" / "_train_index", ignore_errors=True)
            index_columns = ["video_id", "qa_id", "video", "question", "frame_num", "error"]
            add("train data (cold)", _python(load), baseline_read(shards, index_columns))
            add("train data (warm)", _python(load), None)
        if "quality" in tools:
            shutil.rmtree(run / "quality", ignore_errors=True)
            columns = sorted({c.split(".")[0] for c in SHARD_COLUMNS} | {"provenance"})
            add("quality (first)", VT + ["quality", "--out", str(run), "--previous", "0"], baseline_read(shards, columns))
            add("quality (rerun)", VT + ["quality", "--out", str(run), "--previous", "0"], None)
        if "dashboard" in tools:
            click = (
                "import time; from pathlib import Path; from vidthinker.dashboard.data import RecordFilter, record_page, "
                "get_record, shard_counts, warm_search, _question_column\nfrom vidthinker.quality.runs import fresh_run_quality\n"
                f"run = Path({str(run)!r}); out = []\n"
                "def t(name, f):\n    s = time.perf_counter(); r = f(); out.append(f'{name} {time.perf_counter() - s:.3f}'); return r\n"
                "q = t('figures', lambda: fresh_run_quality(run))\n"
                "p = t('page-1', lambda: record_page(run, RecordFilter(), 0, 50, quality=q))\n"
                "t('warm-search', lambda: warm_search(run))\n"
                "t('page-middle', lambda: record_page(run, RecordFilter(), p.total // 2, 50, quality=q))\n"
                "t('ok+type', lambda: record_page(run, RecordFilter(status='ok', instruction_type='semantic_only'), 500, 50, quality=q))\n"
                "t('failures', lambda: record_page(run, RecordFilter(status='error'), 0, 50, quality=q))\n"
                "t('questions-wait', lambda: _question_column(run))\n"
                "t('search-first', lambda: record_page(run, RecordFilter(search='video 12,'), 0, 50, quality=q))\n"
                "t('search-next-page', lambda: record_page(run, RecordFilter(search='video 12,'), 50, 50, quality=q))\n"
                "t('other-search', lambda: record_page(run, RecordFilter(search='question 3)'), 0, 50, quality=q))\n"
                "last = record_page(run, RecordFilter(), p.total - 1, 1).table['id'][0].as_py()\n"
                "t('record', lambda: get_record(run, last))\n"
                "print(' '.join(out))")
            wall, peak, output = measure(_python(click), env)
            clicks = output.strip().splitlines()[-1]
            rows.append(("dashboard clicks", size, wall, peak, None, clicks, output))
            print(f"{'dashboard clicks':<28} {size:>7} records: {clicks} (process {wall:.1f} s, peak {peak:.0f} MiB)")
        if "publish" in tools:
            shutil.rmtree(run / "_hf", ignore_errors=True)
            published = [c for c in ("id", "video", "question", "answer", "frame_num", "clip_num", "motion", "existence",
                                     "instruction_type", "video_id", "qa_id", "provenance")]
            add("publish --dry-run (first)", VT + ["publish", "--out", str(run), "--repo-id", "bench/x", "--dry-run"],
                baseline_read(shards, published, filter_ok=True))
            add("publish --dry-run (again)", VT + ["publish", "--out", str(run), "--repo-id", "bench/x", "--dry-run"], None)
    print()
    print("| tool | records | wall s | peak MiB | pyarrow, needed columns s | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for tool, size, wall, peak, base, note, _ in rows:
        if tool == "dashboard clicks":
            print(f"| {tool}: {note} | {size:,} | {wall:.1f} | {peak:.0f} | – | – |")
        else:
            print(f"| {tool}{' ' + note if note else ''} | {size:,} | {wall:.2f} | {peak:.0f} | {f'{base:.2f}' if base else '–'} | "
                  f"{f'{wall / base:.1f}x' if base else '–'} |")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["downstream"]:
        downstream(sys.argv[2:])
    else:
        main()
