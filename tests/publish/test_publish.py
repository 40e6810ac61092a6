"""Publishing: the layout is a dataset `datasets` loads with the published schema; the upload goes through
huggingface_hub to a strict hub stub, a second publish sends only the new shard's bytes, versions are
tagged, and token problems are clear errors that never show the token."""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
import yaml

from tests.demo_support import copy_run
from tests.publish.conftest import ORG, OTHER_TOKEN, READ_TOKEN, USER, WRITE_TOKEN
from vidthinker.publish import (
    PUBLISHED_SCHEMA,
    PublishError,
    build_layout,
    publish_dataset,
    publish_request,
)
from vidthinker.quality import find_runs, shard_paths


def _good_records(run: Path) -> int:
    dataset = ds.dataset([str(p) for p in shard_paths(run)], format="parquet")
    return dataset.count_rows(filter=pc.field("error").is_null())


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def run_one_shard(demo, tmp_path) -> Path:
    """A private copy of the first demo run, holding only its first shard (the second comes later)."""
    run = copy_run(find_runs(demo / "runs")[0], tmp_path / "run")
    shutil.rmtree(run / "quality", ignore_errors=True)
    extra = tmp_path / "later"
    extra.mkdir()
    for path in sorted((run / "shards").iterdir()):
        if not path.name.startswith("shard-00000"):
            shutil.move(str(path), extra / path.name)
    return run


def _add_later_shards(run: Path) -> None:
    for path in sorted((run.parent / "later").iterdir()):
        shutil.move(str(path), run / "shards" / path.name)


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
    assert loaded.num_rows == layout.records == _good_records(run)
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


def test_publish_uploads_only_new_shards_and_tags_each_version(hub, run_one_shard, tmp_path, monkeypatch):
    monkeypatch.setenv("VIDTHINKER_PUBLISH__DATA_FILE_MB", "0.000001")  # one byte: a data file per shard
    repo = f"{ORG}/videoitg-demo"
    first = publish_dataset(run_one_shard, repo, private=True)
    assert first.status == "published" and first.tag == "v1" and first.counts() == {"upload": 3}
    state = hub.state
    head = state.head_files(repo)
    assert set(head) == {".gitattributes", "README.md", "stats/quality.json", "data/train-00000-of-00001.parquet"}
    assert state.repos[("dataset", repo)].private is True
    assert state.repos[("dataset", repo)].tags == {"v1": first.commit}
    layout = Path(first.layout)
    for path in ("README.md", "stats/quality.json", "data/train-00000-of-00001.parquet"):
        assert state.content(repo, path) == (layout / path).read_bytes()
    puts = state.calls("PUT", "/lfs-upload/")
    assert len(puts) == 1 and puts[0].size == (layout / "data/train-00000-of-00001.parquet").stat().st_size
    old_data = state.content(repo, "data/train-00000-of-00001.parquet")

    # a new shard arrives: only its bytes travel; the old file is copied to its new name on the hub
    _add_later_shards(run_one_shard)
    before = len(state.requests)
    second = publish_dataset(run_one_shard, repo, private=True)
    actions = {f.path: f.action for f in second.files}
    assert actions == {
        "README.md": "upload", "stats/quality.json": "upload",
        "data/train-00000-of-00002.parquet": "copy", "data/train-00001-of-00002.parquet": "upload",
        "data/train-00000-of-00001.parquet": "delete",
    }
    new_puts = [c for c in state.requests[before:] if c.method == "PUT"]
    new_file = Path(second.layout) / "data/train-00001-of-00002.parquet"
    assert len(new_puts) == 1 and new_puts[0].size == new_file.stat().st_size
    assert second.uploaded_bytes < first.uploaded_bytes + new_file.stat().st_size
    head = state.head_files(repo)
    assert set(head) == {".gitattributes", "README.md", "stats/quality.json",
                         "data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"}
    assert state.content(repo, "data/train-00000-of-00002.parquet") == old_data
    assert state.content(repo, "data/train-00001-of-00002.parquet") == new_file.read_bytes()
    assert state.repos[("dataset", repo)].tags == {"v1": first.commit, "v2": second.commit} and second.tag == "v2"
    assert second.records == _good_records(run_one_shard)

    # nothing changed: no commit, no upload, the version keeps its tag
    before = len(state.requests)
    third = publish_dataset(run_one_shard, repo, private=True)
    assert third.status == "unchanged" and third.tag == "v2" and third.commit == second.commit
    assert set(third.counts()) == {"unchanged"}
    assert not [c for c in state.requests[before:] if c.method == "PUT" or "/commit/" in c.path or "/tag/" in c.path]

    # a dry run compares with the hub and changes nothing
    dry = publish_dataset(run_one_shard, repo, dry_run=True)
    assert dry.status == "dry-run" and set(dry.counts()) == {"unchanged"}
    # another branch
    branch = publish_dataset(run_one_shard, repo, revision="staging", tag="staging-1")
    assert branch.revision == "staging" and branch.tag == "staging-1"
    assert state.repos[("dataset", repo)].branches["staging"] == branch.commit


def test_missing_token_is_a_clear_error_and_nothing_is_sent(hub, run_one_shard, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(PublishError, match="no Hugging Face token: set HF_TOKEN"):
        publish_dataset(run_one_shard, f"{USER}/ds")
    assert hub.state.requests == []


@pytest.mark.parametrize(("token", "message"), [
    ("hf_NotAValidToken0123456789abcdefgh", r"token was rejected .*401 Unauthorized"),
    (READ_TOKEN, "read-only"),
    (OTHER_TOKEN, r"may not write to vidthinker-org/ds \(403"),
])
def test_bad_tokens_are_clear_errors_without_the_token(hub, run_one_shard, monkeypatch, caplog, token, message):
    monkeypatch.setenv("HF_TOKEN", token)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PublishError, match=message) as raised:
        publish_dataset(run_one_shard, f"{ORG}/ds")
    assert token not in str(raised.value) and token not in caplog.text
    assert WRITE_TOKEN not in caplog.text
    assert ("dataset", f"{ORG}/ds") not in hub.state.repos


def test_the_stub_rejects_what_the_hub_rejects(hub, run_one_shard):
    import httpx

    url = hub.url
    assert httpx.get(f"{url}/api/whoami-v2").status_code == 401
    auth = {"Authorization": f"Bearer {WRITE_TOKEN}"}
    assert httpx.get(f"{url}/api/datasets/{ORG}/missing/revision/main", headers=auth).headers["X-Error-Code"] == "RepoNotFound"
    publish_dataset(run_one_shard, f"{ORG}/ds")
    commit = f"{url}/api/datasets/{ORG}/ds/commit/main"
    ndjson = {**auth, "Content-Type": "application/x-ndjson"}
    never = '{"key":"header","value":{"summary":"x"}}\n{"key":"lfsFile","value":{"path":"a.parquet","algo":"sha256","oid":"' + "0" * 64 + '"}}\n'
    assert httpx.post(commit, headers=ndjson, content=never).status_code == 422
    stale = '{"key":"header","value":{"summary":"x","parentCommit":"' + "1" * 40 + '"}}\n{"key":"deletedFile","value":{"path":"README.md"}}\n'
    assert httpx.post(commit, headers=ndjson, content=stale).status_code == 412
    assert httpx.post(f"{url}/api/datasets/{ORG}/ds/tag/main", headers=auth, json={"tag": "v1"}).status_code == 409
    batch = httpx.post(f"{url}/datasets/{ORG}/ds.git/info/lfs/objects/batch", json={"operation": "download"},
                       headers={**auth, "Accept": "application/vnd.git-lfs+json"})
    assert batch.status_code == 422


def test_cli_command(hub, run_one_shard):
    import typer
    from typer.testing import CliRunner

    from vidthinker.publish import publish

    app = typer.Typer()
    app.command()(publish)
    app.command("noop")(lambda: None)  # keep `publish` a subcommand, as in the vidthinker CLI
    runner = CliRunner()
    done = runner.invoke(app, ["publish", "--out", str(run_one_shard), "--repo-id", f"{USER}/cli-ds", "--public"])
    assert done.exit_code == 0, done.output
    assert "tag v1" in " ".join(done.output.split()) and hub.state.repos[("dataset", f"{USER}/cli-ds")].private is False
    failed = runner.invoke(app, ["publish", "--out", str(run_one_shard), "--repo-id", "not a repo"])
    assert failed.exit_code == 2 and "must look like" in failed.output


def test_publish_request_resolution(monkeypatch):
    monkeypatch.delenv("VIDTHINKER_PUBLISH__REPO_ID", raising=False)
    events = [{"out_dir": "/data/a"}, {"out_dir": "/data/b", "shards": ["x"]}]
    request = publish_request({"repo_id": "o/n", "private": False}, events)
    assert request["out"] == "/data/b" and request["repo_id"] == "o/n" and request["private"] is False
    assert publish_request({"repo_id": "o/n", "out_dir": "/x"}, events)["out"] == "/x"
    with pytest.raises(PublishError, match="no repository"):
        publish_request({"out_dir": "/x"})
    monkeypatch.setenv("VIDTHINKER_PUBLISH__REPO_ID", "env/repo")
    assert publish_request({"out_dir": "/x"})["repo_id"] == "env/repo"


def _synthetic_run(root: Path, shards: int = 24, per_shard: int = 30, answer: str = "a ball") -> Path:
    import datetime as dt

    from vidthinker.schema import Provenance, VideoITGRecord
    from vidthinker.shards import write_shard

    for s in range(shards):
        records = [VideoITGRecord(
            id=f"v{s}-{i // 3}/q{i % 3}", video=f"/videos/v{s}-{i // 3}.mp4", question=f"what happens {s} {i}?",
            answer=answer if s == 5 else "a ball", frame_num=[i % 7, 9], clip_num=[1], video_id=f"v{s}-{i // 3}",
            qa_id=f"q{i % 3}", provenance=Provenance(pipeline_version="0", clip_seconds=5, grid_fps=1,
                                                      created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))
            for i in range(per_shard)]
        write_shard(records, root / "shards" / f"shard-{s:05d}.parquet")
    return root


def test_shards_are_repacked_and_a_changed_shard_rewrites_only_its_file(hub, tmp_path):
    from vidthinker.publish import pack_shards

    run = _synthetic_run(tmp_path / "run")
    probe = build_layout(run, tmp_path / "probe", repo_id=f"{ORG}/x", data_file_bytes=1)
    mean = sum((Path(probe.root) / p).stat().st_size for p in probe.files if p.startswith("data/")) / len(probe.shards)
    size = int(3 * mean)
    repo = f"{ORG}/repacked"
    first = publish_dataset(run, repo, data_file_bytes=size)
    layout = build_layout(run, Path(first.layout), repo_id=repo, data_file_bytes=size)
    assert 1 < len(layout.packs) < len(layout.shards)
    assert [s for pack in layout.packs for s in pack] == layout.shards  # consecutive shards, in order
    loaded = ds.dataset(str(Path(layout.root) / "data"), format="parquet")
    assert loaded.count_rows() == first.records == _good_records(run)
    assert loaded.to_table(columns=["id"]).column("id").to_pylist() == [
        f"v{s}-{i // 3}/q{i % 3}" for s in range(24) for i in range(30)]

    # shard 5 rewritten with other answers (same length): only the data file holding it is uploaded
    _synthetic_run(run, answer="a cube")
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
