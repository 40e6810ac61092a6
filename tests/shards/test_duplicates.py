"""The duplicate-record-id check decides from the shard manifests and reads ids only where they may meet."""

from __future__ import annotations

import shutil

import pytest

import vidthinker.shards.duplicates as duplicates
from tests.shards.shard_records import FP, record, write_finished
from vidthinker.shards import DuplicateRecordsError, check_duplicate_ids, shard_file, shards_dir, write_shard


def no_id_reads(monkeypatch) -> None:
    def refuse(path):
        raise AssertionError(f"read the record ids of {path}")

    monkeypatch.setattr(duplicates, "_read_ids", refuse)


def test_a_clean_folder_is_checked_from_its_manifests_alone(tmp_path, monkeypatch):
    for videos in (["a", "b"], ["c"], ["d", "e"]):
        write_finished(tmp_path, videos, FP)
    files = sorted(shards_dir(tmp_path).glob("*.parquet"))
    no_id_reads(monkeypatch)
    assert check_duplicate_ids(files) == {}
    assert check_duplicate_ids(files, drop=True) == {}


def test_shards_whose_manifests_share_a_video_are_read_and_the_duplicate_found(tmp_path, monkeypatch):
    write_finished(tmp_path, ["a", "b"], FP)
    write_finished(tmp_path, ["b", "c"], FP)  # another run, other shard size: video b twice
    write_finished(tmp_path, ["d"], FP)
    files = sorted(shards_dir(tmp_path).glob("*.parquet"))
    by_videos = {tuple(duplicates.read_shard_manifest(f).video_ids): f for f in files}
    read = []
    real = duplicates._read_ids
    monkeypatch.setattr(duplicates, "_read_ids", lambda path: read.append(path) or real(path))
    with pytest.raises(DuplicateRecordsError, match=r"record id 'b/q0' is in two shard files: .* \(1 duplicate record\(s\) in all"):
        check_duplicate_ids(files)
    assert by_videos[("d",)] not in read and set(read) == {by_videos[("a", "b")], by_videos[("b", "c")]}
    first, second = [f for f in files if f != by_videos[("d",)]]  # `files` order: the first copy is kept
    assert check_duplicate_ids(files, drop=True) == {second: [1 if second == by_videos[("a", "b")] else 0]}


def test_a_copied_shard_without_a_manifest_is_compared_by_its_ids(tmp_path):
    spec = write_finished(tmp_path, ["a", "b"], FP)
    write_finished(tmp_path, ["c"], FP)
    copy = shards_dir(tmp_path) / "zz-copied.parquet"
    shutil.copy(shard_file(tmp_path, spec.shard_id), copy)  # parquet only, as `cp *.parquet` leaves it
    files = sorted(shards_dir(tmp_path).glob("*.parquet"))
    with pytest.raises(DuplicateRecordsError) as caught:
        check_duplicate_ids(files)
    assert str(shard_file(tmp_path, spec.shard_id)) in str(caught.value) and str(copy) in str(caught.value)
    assert "(2 duplicate record(s) in all" in str(caught.value)
    assert check_duplicate_ids(files, drop=True) == {copy: [0, 1]}


def test_video_ids_with_a_slash_are_compared_by_their_first_part(tmp_path):
    # 'a' + 'b/q0' and 'a/b' + 'q0' make the same record id 'a/b/q0'
    one = record("a").model_copy(update={"id": "a/b/q0", "qa_id": "b/q0"})
    two = record("a/b")
    write_shard([one], shard_file(tmp_path, "shard-one"), video_ids=["a"], settings_fingerprint=FP)
    write_shard([two], shard_file(tmp_path, "shard-two"), video_ids=["a/b"], settings_fingerprint=FP)
    with pytest.raises(DuplicateRecordsError, match="'a/b/q0'"):
        check_duplicate_ids(sorted(shards_dir(tmp_path).glob("*.parquet")))


def test_the_same_file_twice_and_an_id_twice_in_one_file_are_duplicates(tmp_path):
    spec = write_finished(tmp_path, ["a"], FP)
    path = shard_file(tmp_path, spec.shard_id)
    assert check_duplicate_ids([path, path], drop=True) == {path: [0]}
    twice = shards_dir(tmp_path) / "twice.parquet"
    write_shard([record("x"), record("x")], twice)
    (shards_dir(tmp_path) / "twice.parquet.manifest.json").unlink()  # without a manifest its ids are read
    assert check_duplicate_ids([twice], drop=True) == {twice: [1]}
