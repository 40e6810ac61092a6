"""vidthinker.io: the one atomic-write helper every writer uses."""

from __future__ import annotations

import os
import stat

import pytest

from vidthinker import io


def test_atomic_write_text_creates_parents_and_uses_umask_mode(tmp_path):
    target = tmp_path / "a" / "b" / "summary.json"
    old = os.umask(0o027)
    try:
        io.atomic_write_text(target, "{}\n")
    finally:
        os.umask(old)
    assert target.read_text() == "{}\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # 0o666 & ~0o027, not mkstemp's 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["summary.json"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "shard.parquet"
    target.write_bytes(b"old")

    def half_write(tmp):
        tmp.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        io.atomic_write_bytes(target, half_write)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["shard.parquet"]


def test_atomic_path_replaces_only_when_the_block_ends(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("before")
    with io.atomic_path(target, fsync=True) as tmp:
        tmp.write_text("after")
        assert target.read_text() == "before"  # readers still see the old file
    assert target.read_text() == "after"
