"""What a dashboard click reads: pages jump to their shard and row groups (counts from the manifests),
filters are pushed down per shard, a record is looked up in its video's shard, and missing figures are
left to a background `vidthinker quality` job, never computed in the request."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from vidthinker.dashboard import data as D
from vidthinker.dashboard.data import RecordFilter, get_record, record_page, shard_counts, stored_quality
from vidthinker.schema import Provenance, VideoITGRecord, arrow_schema
from vidthinker.shards import write_shard


def _record(video_id: str, qa: str, *, error: str | None = None, kind: str | None = None) -> VideoITGRecord:
    flags = {"semantic_only": ("no", "yes"), "motion_only": ("yes", "no")}.get(kind, ("no", "no"))
    return VideoITGRecord(
        id=f"{video_id}/{qa}", video=f"/v/{video_id}.mp4", question=f"{'red' if qa.endswith('1') else 'blue'} {qa}?",
        answer="", frame_num=[1, 2], video_id=video_id, qa_id=qa, error=error, error_stage="retrieve" if error else None,
        instruction_type=kind, motion=flags[0], existence=flags[1],
        provenance=Provenance(pipeline_version="0", clip_seconds=5, grid_fps=1, created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))


@pytest.fixture
def run(tmp_path):
    root = tmp_path / "run"
    for s in range(3):
        records = [_record(f"vid/{s}-{v}", f"q{q}", error="Timeout: slow" if (v + q) % 4 == 0 else None,
                           kind="semantic_only" if q % 2 else "motion_only") for v in range(4) for q in range(3)]
        path = root / "shards" / f"shard-{s:05d}.parquet"
        write_shard(records, path)
    # the middle shard in row groups of 5 rows (same records: its manifest still holds)
    middle = root / "shards" / "shard-00001.parquet"
    pq.write_table(pq.read_table(middle), middle, row_group_size=5)
    return root


def _reference(run, flt: RecordFilter) -> list[str]:
    dataset = ds.dataset(sorted(str(p) for p in (run / "shards").glob("*.parquet")), format="parquet",
                         schema=arrow_schema(VideoITGRecord))
    return dataset.to_table(columns=["id"], filter=flt.expression()).column("id").to_pylist()


@pytest.mark.parametrize("flt", [RecordFilter(), RecordFilter(status="error"), RecordFilter(instruction_type="semantic_only"),
                                 RecordFilter(search="RED", status="ok"), RecordFilter(video_id="vid/1-2")])
def test_pages_equal_a_full_scan_at_every_offset(run, flt):
    expected = _reference(run, flt)
    assert expected
    for size in (1, 5, 7, 50):
        for offset in range(0, len(expected) + 3, 3):
            page = record_page(run, flt, offset, size)
            assert page.total == len(expected)
            assert page.table["id"].to_pylist() == expected[offset:offset + size], (flt, size, offset)


def test_error_class_filter_and_a_shard_without_the_column(run):
    # shard 0 as written before error classes (no error_class column); the others' failures are transient
    for path in sorted((run / "shards").glob("*.parquet"))[1:]:
        table = pq.read_table(path)
        failed = table["error"].is_valid()
        table = table.set_column(table.schema.get_field_index("error_class"), "error_class",
                                 pa.array([("transient" if f else None) for f in failed.to_pylist()], pa.string()))
        pq.write_table(table, path)
    old = run / "shards" / "shard-00000.parquet"
    pq.write_table(pq.read_table(old).drop_columns(["error_class"]), old)
    page = record_page(run, RecordFilter(), 0, 100)
    assert page.table.num_rows == 36 and page.table["error_class"].null_count == 36 - 2 * 3
    for kind in ("transient", "unknown"):
        flt = RecordFilter(status="error", error_class=kind)
        expected = _reference(run, flt)
        assert len(expected) == (6 if kind == "transient" else 3)
        assert record_page(run, flt, 0, 50).table["id"].to_pylist() == expected
    assert record_page(run, RecordFilter(status="error", error_class="permanent"), 0, 50).total == 0


def test_unfiltered_counts_come_from_manifests_and_reads_only_the_page(run, monkeypatch):
    monkeypatch.setattr(D.ds, "dataset", lambda *a, **k: pytest.fail("scanned a dataset for an unfiltered page"))
    _, counts = shard_counts(run)
    assert counts == [12, 12, 12]
    reads = []
    real = D.pq.ParquetFile.read_row_groups
    monkeypatch.setattr(D.pq.ParquetFile, "read_row_groups",
                        lambda self, groups, **k: reads.append(list(groups)) or real(self, groups, **k))
    page = record_page(run, RecordFilter(), offset=17, limit=4)
    assert page.table["id"].to_pylist() == [f"vid/1-{v}/q{q}" for v in range(4) for q in range(3)][5:9]
    assert reads == [[1]]  # rows 5-8 of the middle shard: its second row group only


def test_filter_counts_are_remembered_until_the_run_changes(run, monkeypatch):
    flt = RecordFilter(status="error")
    first = shard_counts(run, flt)[1]
    monkeypatch.setattr(D, "run_dataset", lambda *a, **k: pytest.fail("counted again"))
    assert shard_counts(run, flt)[1] == first
    monkeypatch.undo()
    write_shard([_record("vid/9-0", "q0", error="Timeout: x")], run / "shards" / "shard-00009.parquet")
    assert shard_counts(run, flt)[1] == first + [1]


def test_status_counts_come_from_the_stored_figures(run, monkeypatch):
    from vidthinker.quality.run import compute_run_quality

    quality = compute_run_quality(run, manifest=[])
    filters = [RecordFilter(status="ok"), RecordFilter(status="error"), RecordFilter(status="error", stage="retrieve"),
               RecordFilter(status="ok", instruction_type="semantic_only"), RecordFilter(status="ok", instruction_type="unknown")]
    scanned = [shard_counts(run, flt)[1] for flt in filters]
    monkeypatch.setattr(D, "run_dataset", lambda *a, **k: pytest.fail("scanned although the figures hold the counts"))
    assert [shard_counts(run, flt, quality)[1] for flt in filters] == scanned
    monkeypatch.undo()
    assert record_page(run, filters[1], 2, 3, quality=quality).table["id"].to_pylist() == _reference(run, filters[1])[2:5]
    # figures of other shards are not used
    write_shard([_record("vid/1-0", "q0", error="Timeout: x")], run / "shards" / "shard-00001.parquet")
    assert shard_counts(run, RecordFilter(status="error"), quality)[1] == [3, 1, 3]


def test_a_record_is_read_from_its_videos_shard(run, monkeypatch):
    opened = []
    real = D._fragment_table
    monkeypatch.setattr(D, "_fragment_table", lambda run_dir, path, *a: opened.append(path) or real(run_dir, path, *a))
    record = get_record(run, "vid/2-3/q1")
    assert record is not None and record.video_id == "vid/2-3" and record.qa_id == "q1"
    assert opened == [run / "shards" / "shard-00002.parquet"]
    assert get_record(run, "vid/2-3/nope") is None
    assert get_record(run, "nothing-like-it") is None


def test_missing_figures_start_a_background_job_and_are_not_computed(run, monkeypatch):
    started = []

    class Job:
        returncode = None
        stderr = None

        def __init__(self, argv, **kwargs):
            started.append(argv)

        def poll(self):
            return None

    monkeypatch.setattr(D.subprocess, "Popen", Job)
    monkeypatch.setattr("vidthinker.quality.compute_run_quality", lambda *a, **k: pytest.fail("computed in the request"))
    assert stored_quality(run) is None
    assert stored_quality(run) is None  # the job is under way: not started twice
    assert len(started) == 1 and started[0][-5:] == ["quality", "--out", str(run), "--previous", "5"]
    assert D.quality_job(run) == "running"
    D._jobs.clear()


@pytest.mark.parametrize("term", ["RED", "blue q2", "q1?", "nothing like it"])
def test_a_question_search_matches_in_memory_after_the_warm_up(run, monkeypatch, term):
    flt = RecordFilter(search=term)
    expected = _reference(run, flt)
    D.warm_search(run)
    D._question_column(run)  # wait for the background read
    real = D.run_dataset

    class NoScan:  # the run's dataset, but a scan over every shard fails the test
        def scanner(self, *args, **kwargs):
            pytest.fail("counted by a scan of every shard")

    monkeypatch.setattr(D, "run_dataset", lambda run_dir: (NoScan(), real(run_dir)[1]))
    page = record_page(run, flt, 0, 100)
    assert page.total == len(expected)
    assert page.table["id"].to_pylist() == expected


def test_the_question_column_is_read_again_when_a_shard_changes(run):
    D._question_column(run)
    shard = run / "shards" / "shard-00002.parquet"
    write_shard([_record("vid/9-9", "q1", kind="semantic_only")], shard)  # now 1 record, "red q1?"
    flt = RecordFilter(search="red")
    assert record_page(run, flt, 0, 100).total == len(_reference(run, flt))
    assert "vid/9-9/q1" in record_page(run, flt, 0, 100).table["id"].to_pylist()


def test_stage_unknown_finds_the_failures_that_name_no_stage(run):
    # the figures count a failure without a stage under "unknown" (vidthinker.figures.error_stage_name):
    # choosing that stage in the failure browser lists those failures, and no good record
    path = sorted((run / "shards").glob("*.parquet"))[0]
    table = pq.read_table(path)
    table = table.set_column(table.schema.get_field_index("error_stage"), "error_stage", pa.nulls(table.num_rows, pa.string()))
    pq.write_table(table, path)
    flt = RecordFilter(stage="unknown")
    expected = _reference(run, flt)
    assert len(expected) == 3 and all(i.startswith("vid/0-") for i in expected)
    assert record_page(run, flt, 0, 50).table["id"].to_pylist() == expected
    assert record_page(run, RecordFilter(stage="retrieve"), 0, 50).total == 6
