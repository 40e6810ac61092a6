"""Publishing: the upload goes through huggingface_hub to a strict hub stub, a second publish sends only
the new shard's bytes, versions are tagged, and token problems are clear errors that never show the token."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.publish.conftest import (
    ORG,
    OTHER_TOKEN,
    READ_TOKEN,
    USER,
    WRITE_TOKEN,
    add_later_shards,
    good_records,
)
from vidthinker.publish.errors import PublishError
from vidthinker.publish.upload import publish_dataset


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
    add_later_shards(run_one_shard)
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
    assert second.records == good_records(run_one_shard)

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
