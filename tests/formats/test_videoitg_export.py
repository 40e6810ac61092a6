"""`export` from a shard folder: reads only the eight VideoITG columns (and `error`) batch by batch, checks
what it writes, and writes the JSON record by record; the output equals exporting validated records."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vidthinker import formats
from vidthinker.schema import VIDEOITG_COLUMNS, Provenance, SchemaError, VideoITGRecord
from vidthinker.shards import write_shard


def record(video_id: str, qa: str, *, error: str | None = None, rid: str | None = None) -> VideoITGRecord:
    return VideoITGRecord(
        id=rid or f"{video_id}/{qa}", video=f"/data/videos/{video_id}.mp4", question=f"where is the {qa} ball?",
        answer="left", frame_num=[4, 1], clip_num=[0], motion="yes", existence="no", video_id=video_id, qa_id=qa,
        error=error, error_stage="retrieve" if error else None,
        provenance=Provenance(pipeline_version="0", clip_seconds=5, grid_fps=1, created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))


@pytest.fixture
def shards(tmp_path):
    folder = tmp_path / "shards"
    for s in range(3):
        records = [record(f"v{s}{i}", f"q{i}", error="Timeout: x" if i == 2 else None) for i in range(5)]
        records.append(record(f"v{s}9", "q9", rid=str(100 + s)))  # a released integer id
        write_shard(records, folder / f"shard-{s}.parquet")
    return folder


@pytest.mark.parametrize("options", [{}, {"include_errors": True}, {"video_root": "/data"}])
def test_streamed_export_equals_the_record_export(shards, tmp_path, options):
    streamed, reference = tmp_path / "streamed.json", tmp_path / "reference.json"
    n = formats.export_videoitg_json(shards, streamed, **options)
    m = formats.export_videoitg_json(formats.iter_records(shards), reference, **options)
    assert n == m == (18 if options.get("include_errors") else 15)
    assert streamed.read_text() == reference.read_text()
    rows = json.loads(streamed.read_text())
    assert list(rows[0]) == list(VIDEOITG_COLUMNS) and rows[0]["frame_num"] == [1, 4] and rows[0]["motion"] == "Yes"
    assert [r["id"] for r in rows if isinstance(r["id"], int)] == [100, 101, 102]
    assert len(streamed.read_text().splitlines()) == n + 2  # "[", one line per record, "]"


def test_only_the_written_columns_are_read(shards, tmp_path, monkeypatch):
    read = []
    real = pq.ParquetFile.iter_batches

    def spy(self, *args, columns=None, **kwargs):
        read.append(tuple(columns))
        return real(self, *args, columns=columns, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    monkeypatch.setattr(VideoITGRecord, "model_validate", lambda *a, **k: pytest.fail("a whole record was validated"))
    assert formats.export_videoitg_json(shards, tmp_path / "out.json") == 15
    assert set(read) == {(*VIDEOITG_COLUMNS, "error")}


def test_a_bad_written_value_names_the_file_and_row(shards, tmp_path):
    path = shards / "shard-1.parquet"
    table = pq.read_table(path)
    frames = table.column("frame_num").to_pylist()
    frames[3] = [2, -1]
    pq.write_table(table.set_column(table.schema.get_field_index("frame_num"), "frame_num",
                                    pa.array(frames, pa.list_(pa.int64()))), path)
    out = tmp_path / "out.json"
    with pytest.raises(SchemaError, match=r"shard-1\.parquet row 3: not a valid VideoITGRecord: bad frame_num"):
        formats.export_videoitg_json(shards, out)
    assert not out.exists()  # nothing half-written is left behind
    with pytest.raises(SchemaError, match="is not under the video root"):
        formats.export_videoitg_json(shards / "shard-0.parquet", out, video_root="/elsewhere")


def test_unsorted_ids_in_a_file_are_written_ascending_and_distinct(shards, tmp_path):
    path = shards / "shard-2.parquet"
    table = pq.read_table(path)
    frames = table.column("frame_num").to_pylist()
    frames[0] = [9, 3, 9]
    pq.write_table(table.set_column(table.schema.get_field_index("frame_num"), "frame_num",
                                    pa.array(frames, pa.list_(pa.int64()))), path)
    out = tmp_path / "out.json"
    formats.export_videoitg_json(path, out)
    assert json.loads(out.read_text())[0]["frame_num"] == [3, 9]
