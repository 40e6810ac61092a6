"""The dataset folder: a layout `datasets` loads with the published schema (and its card), shards repacked
into data files whose boundaries follow the shards, so a changed shard rewrites only its own file."""

from __future__ import annotations

from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import yaml

from tests.publish.conftest import ORG, good_records, synthetic_run
from vidthinker.publish.layout import build_layout, convert_shard
from vidthinker.publish.records import PUBLISHED_SCHEMA
from vidthinker.publish.upload import publish_dataset
from vidthinker.quality.runs import find_runs
from vidthinker.schema import VideoITGRecord


def test_layout_loads_with_datasets_and_matches_the_schema(demo, tmp_path):
    from datasets import DatasetInfo, Features, load_dataset

    run = find_runs(demo / "runs")[-1]
    layout = build_layout(run, tmp_path / "layout", repo_id=f"{ORG}/videoitg-demo")
    root = Path(layout.root)
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and ".cache" not in p.parts) == [
        "README.md", "data/train-00000-of-00001.parquet", "stats/quality.json"]  # both shards in one ~256 MB file
    assert layout.packs == [["shard-00000.parquet", "shard-00001.parquet"]]
    assert layout.skipped_shards == ["shard-00002.parquet"]  # the broken upload: no good record

    expected = Features.from_arrow_schema(PUBLISHED_SCHEMA)
    loaded = load_dataset("parquet", data_dir=str(root / "data"), split="train", cache_dir=str(tmp_path / "cache"))
    assert loaded.features == expected
    assert loaded.num_rows == layout.records == good_records(run)
    assert all(not v.startswith("/") for v in loaded["video"])  # no local absolute path is published
    assert set(loaded.column_names[:8]) == {"id", "video", "question", "answer", "frame_num", "clip_num", "motion", "existence"}

    card = (root / "README.md").read_text()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["license"] == "apache-2.0" and "video-text-to-text" in meta["task_categories"] and "videoitg" in meta["tags"]
    assert meta["configs"] == [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}]
    assert DatasetInfo._from_yaml_dict(meta["dataset_info"]).features == expected
    assert meta["dataset_info"]["splits"][0]["num_examples"] == layout.records
    assert f"{layout.records} records published" in card and "frames per record" in card
    # the folder as a whole is a hub-style dataset: its card's configs pick the data files
    again = load_dataset(str(root), split="train", cache_dir=str(tmp_path / "cache2"))
    assert again.num_rows == layout.records and again.features == expected

def test_shards_are_repacked_and_a_changed_shard_rewrites_only_its_file(hub, tmp_path):
    from vidthinker.publish.layout import pack_shards

    run = synthetic_run(tmp_path / "run")
    probe = build_layout(run, tmp_path / "probe", repo_id=f"{ORG}/x", data_file_bytes=1)
    mean = sum((Path(probe.root) / p).stat().st_size for p in probe.files if p.startswith("data/")) / len(probe.shards)
    size = int(3 * mean)
    repo = f"{ORG}/repacked"
    first = publish_dataset(run, repo, data_file_bytes=size)
    layout = build_layout(run, Path(first.layout), repo_id=repo, data_file_bytes=size)
    assert 1 < len(layout.packs) < len(layout.shards)
    assert [s for pack in layout.packs for s in pack] == layout.shards  # consecutive shards, in order
    loaded = ds.dataset(str(Path(layout.root) / "data"), format="parquet")
    assert loaded.count_rows() == first.records == good_records(run)
    assert loaded.to_table(columns=["id"]).column("id").to_pylist() == [
        f"v{s}-{i // 3}/q{i % 3}" for s in range(24) for i in range(30)]

    # shard 5 rewritten with other answers (same length): only the data file holding it is uploaded
    synthetic_run(run, answer="a cube")
    second = publish_dataset(run, repo, data_file_bytes=size)
    holding = next(i for i, pack in enumerate(layout.packs) if "shard-00005.parquet" in pack)
    data = {f.path: f.action for f in second.files if f.path.startswith("data/")}
    assert [p for p, a in data.items() if a == "upload"] == [f"data/train-{holding:05d}-of-{len(layout.packs):05d}.parquet"]
    assert all(a == "unchanged" for p, a in data.items() if p != f"data/train-{holding:05d}-of-{len(layout.packs):05d}.parquet")
    # the grouping is content-defined: a shard inserted in the middle changes its own file and at most the
    # next one; every other file holds the same shards as before
    names = [f"s{i:03d}" for i in range(200)]
    grown = names[:50] + ["s049a"] + names[50:]
    before = {tuple(names[i] for i in g) for g in pack_shards(names, [1000] * 200, 8000)}
    after = [tuple(grown[i] for i in g) for g in pack_shards(grown, [1000] * 201, 8000)]
    assert len(before) > 10
    assert len([g for g in after if g not in before]) <= 2


def test_a_shard_without_a_good_record_converts_to_no_file(tmp_path):
    from vidthinker.shards import write_shard

    run = synthetic_run(tmp_path / "run", shards=1, per_shard=3)
    shard = run / "shards" / "shard-00000.parquet"
    good = convert_shard(shard, tmp_path / "cache" / "good.parquet")
    assert good == 3 and ds.dataset(str(tmp_path / "cache" / "good.parquet")).schema == PUBLISHED_SCHEMA
    records = pq.read_table(shard).to_pylist()
    failed = [VideoITGRecord(**{**r, "error": "localize: no frame", "error_stage": "localize"}) for r in records]
    write_shard(failed, shard)
    assert convert_shard(shard, tmp_path / "cache" / "none.parquet") == 0
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["good.parquet"]  # no file, no temporary left
