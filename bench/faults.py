"""Failure semantics under faults: what a run loses, duplicates and leaves broken, and what a rerun pays.

A fault-injecting proxy (tests/engine/fault_proxy.py) sits between `vidthinker annotate` (in this
process, the real CLI) and the strict stub with a scripted model (tests/servers/openai_stub.py), all
on loopback. Two scenarios over the same synthetic set, each in a fresh out folder:

* `30% faults`: each chat request fails with probability 0.3, the kind drawn from 429 (with and
  without Retry-After), 500, 503, a stall past the client timeout, a dropped connection, a 200 with
  broken JSON and a 200 with truncated content;
* `outage`: the endpoint answers 503 to everything after half of a clean run's requests.

Each scenario: run 1 with the faults, then the faults clear and the same command runs once more.
Printed per scenario: both exit codes; records lost (ids of the manifest missing from the finished
shards) and duplicated (ids in two shard rows) after the rerun; transient errors left after the rerun;
calls paid on the rerun (requests reaching the stub) versus the records run 1 did not finish well
(error records of failed shards + records of videos never started; the goal is equal); and whether the
final dataset equals a clean run's (records_hash).

Oracle captions: one stage-2 call per question, so calls and records are the same unit. The client's
backoff and circuit waits are shortened (as in the tests); `--retries` sets models.max_retries.

    .venv/bin/python bench/faults.py --videos 6 --retries 1
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from typer.testing import CliRunner  # noqa: E402

from tests.engine.fault_proxy import FaultProxy  # noqa: E402
from tests.servers.openai_stub import StubServer  # noqa: E402
from tests.test_pipeline import scripted_model  # noqa: E402
from vidthinker.cli import app  # noqa: E402
from vidthinker.formats import iter_records, read_manifest  # noqa: E402
from vidthinker.schema import VIDEOITG_COLUMNS  # noqa: E402
from vidthinker.shards import FAILED_DIR, records_hash, shards_dir  # noqa: E402
from vidthinker.synth import generate_synthetic_set  # noqa: E402

FAST_CLIENT = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05, "max_retry_after_s": 0.1,
               "circuit_failures": 3, "circuit_open_s": 0.3, "connect_timeout_s": 1.0}


def fast_client() -> None:
    from vidthinker.models.openai_compat import OpenAIEndpoint
    from vidthinker.worker import stage_models

    original = stage_models._endpoint
    known = {k: v for k, v in FAST_CLIENT.items() if k in OpenAIEndpoint.model_fields}
    stage_models._endpoint = lambda *a, **kw: original(*a, **{**known, **kw})


def annotate(manifest: Path, out: Path, base_url: str, retries: int) -> tuple[int, dict]:
    sets = ["annotate.oracle_captions=true", "models.backend=openai", f"models.base_url={base_url}",
            "models.caption_model=scripted", "models.structured_output=json_schema", f"models.max_retries={retries}",
            "models.timeout_s=1.5", "engine.shard_size=2"]
    args = [a for s in sets for a in ("--set", s)]
    result = CliRunner().invoke(app, [*args, "annotate", "--manifest", str(manifest), "--out", str(out), "--engine", "local"])
    summary = out / "summary.json"
    return result.exit_code, json.loads(summary.read_text()) if summary.is_file() else {}


def records_in(folder: Path) -> list:
    return [r for f in sorted(folder.glob("*.parquet")) for r in iter_records(f)] if folder.is_dir() else []


def released(records) -> list[tuple]:
    """What a record says in the VideoITG release format (no traces: a reply that needed a retry
    carries the tokens of its failed attempt too)."""
    return sorted(tuple(str(getattr(r, c)) for c in VIDEOITG_COLUMNS) + (str(r.error),) for r in records)


def scenario(name: str, manifest: Path, out: Path, stub: StubServer, proxy: FaultProxy, retries: int,
             expected: list[str], clean: list) -> dict:
    proxy.injected.clear()
    first_code, _ = annotate(manifest, out, proxy.base_url, retries)
    finished = records_in(shards_dir(out))
    failed = records_in(shards_dir(out) / FAILED_DIR)
    ok_after_first = sum(r.ok for r in finished + failed)
    transient_first = sum(r.error_class == "transient" for r in finished + failed)
    permanent_in_failed = sum(r.error_class == "permanent" for r in failed)
    injected = dict(proxy.injected)
    proxy.clear()
    before = stub.count
    second_code, second = annotate(manifest, out, proxy.base_url, retries)
    paid = stub.count - before
    final = records_in(shards_dir(out))
    ids = [r.id for r in final]
    return {
        "scenario": name,
        "faults injected": injected,
        "exit codes (run, rerun)": (first_code, second_code),
        "records": len(expected),
        "transient error records after run 1": transient_first,
        "records lost": len(set(expected) - set(ids)),
        "records duplicated": len(ids) - len(set(ids)),
        "transient errors left after one rerun": sum(r.error_class == "transient" for r in final)
        + sum(r.error_class == "transient" for r in records_in(shards_dir(out) / FAILED_DIR)),
        "records to repair (not ok after run 1)": len(expected) - ok_after_first,
        "  of which permanent in failed shards": permanent_in_failed,
        "calls paid on the rerun": paid,
        "repaired (summary)": second.get("repaired", {}),
        "permanent errors kept in finished shards": sum(not r.ok for r in final),
        "final records == clean run (VideoITG columns)": released(final) == released(clean),
        "final records == clean run (records_hash, traces too)": records_hash(sorted(final, key=lambda r: r.id))
        == records_hash(clean),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--retries", type=int, default=1, help="models.max_retries")
    parser.add_argument("--rate", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    fast_client()
    with tempfile.TemporaryDirectory(prefix="vidthinker-faults-") as tmp, \
            StubServer(models=["scripted"]) as stub, FaultProxy(stub.base_url, stall_s=2.5) as proxy:
        stub.state.responder = scripted_model
        root = Path(tmp)
        manifest = generate_synthetic_set(root / "synthetic", args.videos, 3, min_seconds=20, max_seconds=30)
        expected = sorted(f"{r.video_id}/{q.qa_id}" for r in read_manifest(manifest) for q in r.qa)
        before = stub.count
        code, _ = annotate(manifest, root / "clean", proxy.base_url, args.retries)
        clean_calls = stub.count - before
        clean = sorted(records_in(shards_dir(root / "clean")), key=lambda r: r.id)
        assert code == 0 and len(clean) == len(expected), (code, len(clean))
        results = []
        proxy.configure(rate=args.rate, seed=args.seed)
        results.append(scenario(f"{args.rate:.0%} mixed faults", manifest, root / "faults", stub, proxy, args.retries,
                                expected, clean))
        proxy.configure(outage_after=clean_calls // 2, outage_kind="503")
        proxy.chat_requests = 0
        results.append(scenario(f"outage after {clean_calls // 2} of {clean_calls} requests", manifest, root / "outage",
                                stub, proxy, args.retries, expected, clean))
    print(f"{args.videos} synthetic videos, {len(expected)} records (one call each), models.max_retries={args.retries}, "
          f"shard size 2, annotate.max_transient_error_share=0")
    for result in results:
        print(f"\n## {result.pop('scenario')}")
        for key, value in result.items():
            print(f"  {key}: {value}")


if __name__ == "__main__":
    main()
