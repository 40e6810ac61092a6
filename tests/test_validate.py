"""`vidthinker validate` over run folders: every shard checked against its manifest, every bad shard named
with its reason, manifests never read as parquet, exit 1 when anything is bad."""

from __future__ import annotations

import datetime as dt
import json
import re

import pyarrow.parquet as pq
from typer.testing import CliRunner

from vidthinker.cli import app
from vidthinker.schema import ClipRetrieval, Provenance, StageTrace, Usage, VideoITGRecord, write_parquet
from vidthinker.shards import manifest_path, write_shard
from vidthinker.validate import BATCH_ROWS, validate_paths

runner = CliRunner()


def record(video_id: str, qa: str = "q0", *, error: str | None = None) -> VideoITGRecord:
    trace = StageTrace(model="m", raw_output='{"clips": [1]}', latency_s=0.5, usage=Usage(prompt_tokens=10, calls=1))
    return VideoITGRecord(
        id=f"{video_id}/{qa}", video=f"/videos/{video_id}.mp4", question=f"What moves in {qa}?", answer="a ball",
        clip_num=[1], video_id=video_id, qa_id=qa, error=error, error_stage="retrieve" if error else None,
        provenance=Provenance(pipeline_version="0", run_id="r1", clip_seconds=5, grid_fps=1,
                              created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)),
        retrieval=ClipRetrieval(video_id=video_id, qa_id=qa, clip_ids=[1], trace=trace),
    )


def make_run(root, shards: int = 3, per_shard: int = 4):
    for s in range(shards):
        records = [record(f"v{s}-{i // 2}", f"q{i % 2}", error="Timeout: slow" if i == 3 else None) for i in range(per_shard)]
        write_shard(records, root / "shards" / f"shard-{s:05d}.parquet")
    return root


def flat(result) -> str:
    return re.sub(r"\s+", " ", result.output)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_a_good_run_folder_passes_and_manifests_are_not_inputs(tmp_path):
    run = make_run(tmp_path / "run")
    result = invoke("validate", run)
    assert result.exit_code == 0, result.output
    assert "3 of 3 files good: 12 valid VideoITGRecord rows, 3 matched against their manifests" in flat(result)
    # the folder of shards, several files, and a manifest among them (skipped, not read as parquet)
    shards = sorted((run / "shards").glob("*.parquet"))
    result = invoke("validate", shards[0], shards[1], manifest_path(shards[0]))
    assert result.exit_code == 0, result.output
    assert "skipped" in flat(result) and "2 of 2 files good" in flat(result)
    assert invoke("validate", run / "shards").exit_code == 0


def test_every_bad_shard_is_reported_with_its_reason(tmp_path):
    run = make_run(tmp_path / "run", shards=5)
    shards = sorted((run / "shards").glob("*.parquet"))
    # 0: rows rewritten behind the manifest's back (same count, other content)
    changed = [record(f"v0-{i // 2}", f"q{i % 2}", error="Timeout: slow" if i == 3 else None) for i in range(4)]
    changed[0] = changed[0].model_copy(update={"answer": "a cat"})
    write_parquet(changed, VideoITGRecord, shards[0])
    # 1: a record more than the manifest counts
    data = json.loads(manifest_path(shards[1]).read_text())
    data["records"] -= 1
    manifest_path(shards[1]).write_text(json.dumps(data))
    # 2: truncated file
    shards[2].write_bytes(shards[2].read_bytes()[:100])
    # 3: unfinished (no manifest)
    manifest_path(shards[3]).unlink()
    # an orphan manifest
    (run / "shards" / "shard-gone.parquet.manifest.json").write_text(manifest_path(shards[4]).read_text())
    result = invoke("validate", run)
    assert result.exit_code == 1
    text = flat(result)
    assert f"{shards[0].name}: does not match its manifest: content hash" in text
    assert f"{shards[1].name}: does not match its manifest: records 4 (manifest says 3)" in text
    assert f"{shards[2].name}: not a readable parquet file" in text
    assert f"{shards[3].name}: no readable manifest" in text
    assert "shard-gone.parquet.manifest.json: manifest without its parquet shard" in text
    assert shards[4].name not in text
    assert "5 bad file(s)" in text
    # the same verdicts from two processes, in the same order
    serial = validate_paths([run], VideoITGRecord, jobs=1)
    parallel = validate_paths([run], VideoITGRecord, jobs=2)
    assert [(c.path, c.problem, c.rows) for c in parallel.files] == [(c.path, c.problem, c.rows) for c in serial.files]


def test_a_bad_row_names_the_row_and_field(tmp_path):
    run = make_run(tmp_path / "run", shards=1)
    [shard] = (run / "shards").glob("*.parquet")
    table = pq.read_table(shard)
    motion = table.column("motion").to_pylist()
    motion[2] = "maybe"
    table = table.set_column(table.schema.get_field_index("motion"), "motion", [motion])
    pq.write_table(table, shard)
    result = invoke("validate", run)
    assert result.exit_code == 1
    assert "row 2: not a valid VideoITGRecord: motion" in flat(result)


def test_repeated_record_ids_in_a_shard_are_bad(tmp_path):
    shard = tmp_path / "s.parquet"
    write_parquet([record("a"), record("a")], VideoITGRecord, shard)
    [check] = validate_paths([shard], VideoITGRecord).files
    assert not check.ok and "record id 'a/q0' repeats an earlier row" in check.problem


def test_big_shards_are_read_in_batches_and_match(tmp_path):
    records = [record(f"v{i // 3}", f"q{i % 3}") for i in range(2 * BATCH_ROWS + 5)]
    write_shard(records, tmp_path / "shards" / "big.parquet")
    report = validate_paths([tmp_path], VideoITGRecord)
    assert not report.bad and report.rows == len(records) and report.files[0].manifest


def test_nothing_to_check_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = invoke("validate", tmp_path / "empty")
    assert result.exit_code == 2 and "no parquet file to check" in flat(result)
    result = invoke("validate", tmp_path / "nope.parquet")
    assert result.exit_code == 2 and "no such file or folder" in flat(result)
