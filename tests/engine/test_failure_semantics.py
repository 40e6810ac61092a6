"""Failure that is not a crash: a fault-injecting proxy (tests/engine/fault_proxy.py) between
`vidthinker annotate` and the strict stub, all on loopback.

What the user sees is asserted: exit codes, the one-line reason, error classes on records, that a rerun
after the fault clears repairs every transient record and pays only for the records that were not
good (counted as requests reaching the stub), that nothing is lost or duplicated, that changed
manifest rows or videos make their shards redone, and one writer per out folder.

Every run here uses oracle captions: one stage-2 call per question, so "calls paid" and "records"
are the same unit.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.engine.conftest import cli_sets, dataset_hash
from tests.engine.fault_proxy import FaultProxy
from vidthinker.cli import ExitCode, app
from vidthinker.formats import read_manifest, write_manifest
from vidthinker.shards import (
    FAILED_DIR,
    LOCK_NAME,
    DuplicateRecordsError,
    RunFolderLock,
    ShardSpec,
    assign_shards,
    check_duplicate_ids,
    shard_state,
    shards_dir,
)

FAST_CLIENT = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05, "max_retry_after_s": 0.1,
               "circuit_failures": 3, "circuit_open_s": 0.3, "connect_timeout_s": 1.0}


@pytest.fixture(autouse=True)
def fast_client(monkeypatch):
    """Short backoff and circuit waits (settings do not reach them; the endpoint's fields do)."""
    from vidthinker.models.openai_compat import OpenAIEndpoint
    from vidthinker.worker import stage_models

    original = stage_models._endpoint
    known = {k: v for k, v in FAST_CLIENT.items() if k in OpenAIEndpoint.model_fields}
    monkeypatch.setattr(stage_models, "_endpoint", lambda *a, **kw: original(*a, **{**known, **kw}))


@pytest.fixture
def proxy(stub):
    with FaultProxy(stub.base_url, stall_s=2.5) as p:
        yield p


def annotate(manifest: Path, out: Path, base_url: str, *args: str, sets: tuple[str, ...] = ()):
    """`vidthinker annotate` in this process; returns (exit code, output, summary.json as a dict)."""
    options = [a for s in (*cli_sets(base_url), "models.timeout_s=1.5", *sets) for a in ("--set", s)]
    result = CliRunner().invoke(app, [*options, "annotate", "--manifest", str(manifest), "--out", str(out),
                                      "--engine", "local", *args])
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    return result.exit_code, " ".join(result.output.split()), summary


def failed_files(out: Path) -> list[Path]:
    return sorted((shards_dir(out) / FAILED_DIR).glob("*.parquet"))


def test_thirty_percent_faults_then_rerun_repairs_every_transient_record_and_pays_only_for_them(
        baseline, stub, proxy, synthetic_set, tmp_path):
    out = tmp_path / "run"
    # no retries, and the first request fails for sure: some records fail transiently
    proxy.configure(rate=0.3, seed=3, first=("503",))
    code, output, first = annotate(synthetic_set, out, proxy.base_url, sets=("models.max_retries=0",))
    records = read_dataset(out)  # the finished shards
    kept = [r for f in failed_files(out) for r in read_dataset_file(f)]
    transient = [r for r in records + kept if r.error_class == "transient"]
    assert transient, "the first request failed without a retry: at least one transient record"
    assert code == ExitCode.TRANSIENT, output
    assert f"{len(first['transient_failures'])} shard(s) failed transiently" in output and "top reason:" in output
    assert first["errors_by_class"]["transient"] == len(transient)
    assert all(r.error_class in ("transient", "permanent") for r in records + kept if not r.ok)
    assert all(r.error_class is None for r in records + kept if r.ok)
    # a shard with a transient error is not finished: its records are kept aside, not among the dataset's
    assert not [r for r in records if r.error_class == "transient"]
    assert {f.name.removesuffix(".parquet") for f in failed_files(out)} == set(first["transient_failures"])

    # the fault clears; the same command again repairs and pays only for the records not good before
    proxy.clear()
    before = stub.count
    code, output, rerun = annotate(synthetic_set, out, proxy.base_url, sets=("models.max_retries=0",))
    assert code == 0, output
    final = read_dataset(out)
    assert [r.id for r in final] == baseline.ids  # nothing lost, nothing twice
    assert not [r for r in final if r.error_class == "transient"]
    assert rerun["repaired"]["transient"] == len(transient)
    # paid: the failed records of the failed shards (failed calls are never cached); their good records
    # and every record of the finished shards (permanent errors there included) come from the cache
    assert stub.count - before == sum(not r.ok for r in kept)
    assert not failed_files(out)  # a repaired shard's failed attempt is gone
    assert f"repaired: {len(transient)} record(s) with transient errors" in output


def read_dataset_file(path: Path):
    from vidthinker.formats import iter_records

    return list(iter_records(path))


def read_dataset(out: Path):
    """The records of the finished shards (none when every shard failed), by id."""
    return sorted((r for f in sorted(shards_dir(out).glob("*.parquet")) for r in read_dataset_file(f)),
                  key=lambda r: r.id)


def test_outage_mid_run_fails_the_run_and_a_rerun_completes_it_exactly(baseline, stub, proxy, synthetic_set, tmp_path):
    out = tmp_path / "run"
    proxy.configure(outage_after=10)  # 503 to everything after 10 requests: the first shard (<= 8 questions) is done
    code, output, first = annotate(synthetic_set, out, proxy.base_url)
    assert code == ExitCode.TRANSIENT, output
    assert "failed transiently" in output and "rerun the same command" in output
    good = read_dataset(out)
    kept = [r for f in failed_files(out) for r in read_dataset_file(f)]
    assert good and all(r.ok for r in good)  # the finished shards hold no burned record
    assert kept and any(r.error_class == "transient" for r in kept)
    assert len(good) < len(baseline.ids)
    for manifest in first["shards"]:
        assert (manifest["state"] == "failed") == (manifest["shard_id"] in first["transient_failures"])

    proxy.clear()
    before = stub.count
    code, output, rerun = annotate(synthetic_set, out, proxy.base_url)
    assert code == 0, output
    assert dataset_hash(out) == baseline.hash  # the same records as an uninterrupted run
    ok_before = sum(r.ok for r in good + kept)  # good records of failed shards replay from the cache too
    assert stub.count - before == len(baseline.ids) - ok_before  # paid only for what was missing or failed
    assert not rerun["errors_by_class"]


def test_a_fault_on_the_first_request_is_retried_and_the_run_succeeds(baseline, stub, proxy, synthetic_set, tmp_path):
    out = tmp_path / "run"
    proxy.configure(first=("drop",))
    code, output, summary = annotate(synthetic_set, out, proxy.base_url)
    assert code == 0, output
    assert proxy.injected["drop"] == 1 and summary["errors"] == 0
    assert dataset_hash(out) == baseline.hash


def test_endpoint_down_stops_dispatching_and_fails_the_shard_cleanly(baseline, stub, proxy, synthetic_set, tmp_path):
    from vidthinker.models.base import EndpointDown  # noqa: F401 - the client raises it when its circuit stays open

    out = tmp_path / "run"
    proxy.configure(outage_after=0, outage_kind="drop")  # down from the first chat request on
    code, output, summary = annotate(synthetic_set, out, proxy.base_url,
                                     sets=("engine.shard_size=3", "annotate.videos_in_flight=1"))
    assert code == ExitCode.TRANSIENT, output
    assert not list(shards_dir(out).glob("*.parquet"))  # nothing written as finished
    (kept,) = failed_files(out)
    records = read_dataset_file(kept)
    assert records and all(r.error_class == "transient" for r in records)
    if any((r.error or "").startswith("EndpointDown") for r in records):
        # the circuit stayed open: the videos after the first were not started (no burned records)
        assert len({r.video_id for r in records}) == 1
        assert "endpoint down" in summary["failed_shards"][kept.name.removesuffix(".parquet")]


def test_edited_added_removed_questions_and_a_replaced_video_redo_their_shards(baseline, stub, synthetic_set, tmp_path):
    out = tmp_path / "run"
    videos = tmp_path / "videos"
    rows = []
    for row in read_manifest(synthetic_set):  # a private copy of the videos: one is replaced below
        videos.mkdir(exist_ok=True)
        target = videos / Path(row.video).name
        shutil.copy2(row.video, target)
        rows.append(row.model_copy(update={"video": str(target)}))
    manifest = tmp_path / "manifest.jsonl"
    write_manifest(rows, manifest)
    code, output, _ = annotate(manifest, out, stub.base_url)
    assert code == 0, output
    assert "0 written, 3 already finished" in annotate(manifest, out, stub.base_url)[1]

    a, b, c = rows
    edited = a.model_copy(update={"qa": [a.qa[0].model_copy(update={"question": a.qa[0].question + " Where is it?"}),
                                         *a.qa[1:]]})
    added = b.model_copy(update={"qa": [*b.qa, b.qa[0].model_copy(update={"qa_id": "added-1",
                                                                          "question": "Is there a red circle?"})]})
    removed = c.model_copy(update={"qa": c.qa[:-1]}) if len(c.qa) > 1 else c
    write_manifest([edited, added, removed], manifest)
    before = stub.count
    code, output, summary = annotate(manifest, out, stub.base_url)
    assert code == 0, output
    changed = 3 if removed is not c else 2
    assert f"{changed} written, {3 - changed} already finished" in output
    assert stub.count - before == 2  # the edited and the added question; every other call from the cache
    ids = [r.id for r in read_dataset(out)]
    assert ids == sorted(f"{r.video_id}/{q.qa_id}" for r in (edited, added, removed) for q in r.qa)

    # a replaced video (same path, new file): its shard is redone, every call replayed from the cache
    path = Path(a.video)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
    before = stub.count
    code, output, _ = annotate(manifest, out, stub.base_url)
    assert code == 0 and "1 written, 2 already finished" in output, output
    assert stub.count == before


def test_a_second_run_into_a_held_folder_exits_at_once_naming_the_holder(baseline, stub, synthetic_set, tmp_path):
    out = tmp_path / "run"
    before = stub.count
    with RunFolderLock(out, command="vidthinker annotate --out elsewhere"):
        code, output, _ = annotate(synthetic_set, out, stub.base_url)
    assert code == ExitCode.LOCKED, output
    assert f"pid {os.getpid()}" in output and "vidthinker annotate --out elsewhere" in output
    assert stub.count == before and not list(out.rglob("*.parquet"))  # nothing paid, nothing written


def test_the_lock_of_a_dead_run_is_taken_over_with_a_warning(baseline, stub, synthetic_set, tmp_path, caplog):
    out = tmp_path / "run"
    out.mkdir()
    # what a killed run leaves: its holder text, but no flock (the kernel drops it with the process)
    (out / LOCK_NAME).write_text(json.dumps({"host": "h", "pid": 999999, "started": "x", "command": "killed run"}))
    code, output, _ = annotate(synthetic_set, out, stub.base_url)
    assert code == 0, output
    assert "taking over the lock" in caplog.text and "killed run" in caplog.text
    assert (out / LOCK_NAME).read_text() == ""  # released


def test_shard_state_is_the_one_decision(baseline, stub, synthetic_set, tmp_path):
    out = tmp_path / "run"
    assert annotate(synthetic_set, out, stub.base_url)[0] == 0
    rows = read_manifest(synthetic_set)
    spec = assign_shards(rows, 1)[0]
    from vidthinker.fingerprint import annotation_fingerprint
    from tests.engine.conftest import settings_for
    from vidthinker.shards import row_identities

    fingerprint = annotation_fingerprint(settings_for(stub.base_url))
    ids = row_identities(rows)
    assert shard_state(out, spec, fingerprint=fingerprint, identities=ids).state == "finished"
    assert shard_state(out, spec, fingerprint="other", identities=ids).reason == "settings"
    assert shard_state(out, spec, fingerprint=fingerprint, identities={k: "x" for k in ids}).reason == "content"
    assert shard_state(out, ShardSpec(shard_id="shard-none", video_ids=["v"]), fingerprint=fingerprint).state == "todo"


def test_duplicate_record_ids_are_refused_or_dropped(baseline, stub, synthetic_set, tmp_path):
    out = tmp_path / "run"
    assert annotate(synthetic_set, out, stub.base_url)[0] == 0
    shards = sorted(shards_dir(out).glob("*.parquet"))
    copy = shards_dir(out) / "other-size.parquet"  # what a second run with another shard size leaves
    shutil.copy(shards[0], copy)
    with pytest.raises(DuplicateRecordsError) as caught:
        check_duplicate_ids(sorted(shards_dir(out).glob("*.parquet")))
    assert str(shards[0]) in str(caught.value) and str(copy) in str(caught.value)
    dropped = check_duplicate_ids(sorted(shards_dir(out).glob("*.parquet")), drop=True)
    first = sorted(shards_dir(out).glob("*.parquet"))[0]
    assert sum(len(v) for v in dropped.values()) == len(read_dataset_file(shards[0]))
    assert first not in dropped

    runner = CliRunner()
    refused = runner.invoke(app, ["export", "--shards", str(shards_dir(out)), "--out", str(tmp_path / "x.json")])
    assert refused.exit_code != 0 and "is in two shard files" in " ".join(refused.output.split())
    kept = runner.invoke(app, ["export", "--shards", str(shards_dir(out)), "--out", str(tmp_path / "x.json"),
                                "--drop-duplicates", "--include-errors"])
    quality = runner.invoke(app, ["quality", "--out", str(out)])
    assert quality.exit_code == 2 and "is in two shard files" in " ".join(quality.output.split()), quality.output
    publish = runner.invoke(app, ["publish", "--out", str(out), "--repo-id", "me/data", "--dry-run"])
    assert publish.exit_code == 2 and "is in two shard files" in " ".join(publish.output.split()), publish.output
    train = runner.invoke(app, ["train", str(shards_dir(out)), "--out", str(tmp_path / "ckpt")])
    assert train.exit_code == 2 and "is in two shard files" in " ".join(train.output.split()), train.output
    assert not (tmp_path / "ckpt").exists() or not any((tmp_path / "ckpt").iterdir())
    assert kept.exit_code == 0, kept.output
    exported = json.loads((tmp_path / "x.json").read_text())
    assert len({r["id"] for r in exported}) == len(exported) == len(baseline.ids)


def test_retry_errors_asks_model_reply_errors_again(baseline, stub, synthetic_set, tmp_path):
    out = tmp_path / "run"
    scripted = stub.state.responder
    questions = [q.question for r in baseline.rows for q in r.qa]
    target = next(q for q in questions if sum(q in other for other in questions) == 1)  # asked once
    # the model answers one question with prose, also on the repair retry: a permanent reply error
    stub.state.responder = lambda body: "no JSON here" if target in json.dumps(body) else scripted(body)
    try:
        code, output, first = annotate(synthetic_set, out, stub.base_url)
    finally:
        stub.state.responder = scripted
    assert code == 0, output  # permanent errors never fail a run
    assert first["errors_by_class"] == {"permanent": 1}
    before = stub.count
    assert annotate(synthetic_set, out, stub.base_url)[0] == 0 and stub.count == before  # kept without the flag
    code, output, again = annotate(synthetic_set, out, stub.base_url, "--retry-errors")
    assert code == 0, output
    assert stub.count - before == 1  # only the failed call is asked again; the shard's good ones replay
    assert again["repaired"] == {"permanent": 1} and not again["errors_by_class"]
    assert dataset_hash(out) == baseline.hash


def test_airflow_shard_task_fails_on_a_transient_shard_and_leaves_no_finished_shard(baseline, stub, proxy, tmp_path):
    from tests.engine.conftest import settings_for
    from vidthinker.orchestration.tasks import ShardFailed, run_one_shard

    out = tmp_path / "run"
    spec = assign_shards(baseline.rows, 3)[0]
    proxy.configure(outage_after=2)
    with pytest.raises(ShardFailed, match="transient"):
        run_one_shard(spec, baseline.rows, out, settings_for(proxy.base_url, "models.timeout_s=1.5"), engine="local")
    assert not list(shards_dir(out).glob("*.parquet"))  # validation finds it missing: the ledger does not take it
    assert shard_state(out, spec, fingerprint=None).state == "failed"


def test_endpoint_down_stops_dispatching_new_videos():
    """The pipeline's side, without a server: after a video fails with EndpointDown, no video starts."""
    import asyncio
    import datetime as dt

    from vidthinker.pipeline import annotate_rows
    from vidthinker.schema import ManifestRow, Provenance, QAPair, VideoITGRecord

    rows = [ManifestRow(video_id=f"v{i}", video=f"/nowhere/v{i}.mp4", qa=[QAPair(qa_id="q", question="?")])
            for i in range(5)]
    started = []

    class Annotator:
        async def annotate_video(self, row):
            started.append(row.video_id)
            return self._all_failed(row, "retrieve", "EndpointDown: endpoint down", transient=True)

        def _all_failed(self, row, stage, message, *, transient=False):
            provenance = Provenance(pipeline_version="t", clip_seconds=5, grid_fps=1, created_at=dt.datetime.now(dt.UTC))
            return [VideoITGRecord(id=f"{row.video_id}/q", video=row.video, question="?", answer="", error=message,
                                   error_stage=stage, error_class="transient" if transient else "permanent",
                                   video_id=row.video_id, qa_id="q", provenance=provenance)]

    left: list = []
    records = asyncio.run(annotate_rows(Annotator(), rows, videos_in_flight=1, undispatched=left))
    assert started == ["v0"] and [r.video_id for r in left] == ["v1", "v2", "v3", "v4"]
    assert [r.video_id for r in records] == ["v0"]  # no burned records for the videos not started


def test_shards_written_before_error_classes_still_read(tmp_path):
    import pyarrow.parquet as pq

    from tests.engine.conftest import read_dataset as read_all  # noqa: F401
    from vidthinker.schema import VideoITGRecord, read_parquet, to_table
    import datetime as dt
    from vidthinker.schema import Provenance

    provenance = Provenance(pipeline_version="t", clip_seconds=5, grid_fps=1, created_at=dt.datetime.now(dt.UTC))
    record = VideoITGRecord(id="v/q", video="v.mp4", question="?", answer="", error="CorruptVideo: x",
                            error_stage="decode", video_id="v", qa_id="q", provenance=provenance)
    table = to_table([record], VideoITGRecord).drop_columns(["error_class"])
    pq.write_table(table, tmp_path / "old.parquet")
    (read,) = read_parquet(tmp_path / "old.parquet", VideoITGRecord)
    assert read.error == "CorruptVideo: x" and read.error_class is None
