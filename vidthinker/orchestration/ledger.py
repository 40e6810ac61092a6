"""The ledger beside the shards: which manifest entries are annotated, in which shard, by which run.

It is the watermark of the scheduled DAG: a run annotates only manifest rows whose `video_id` is not in
the ledger. It is written atomically (temp file + rename) under an exclusive lock, and updating it
with the same shards again changes nothing, so a retried or repeated ledger task is harmless.
A row whose questions changed after it was annotated is reported as `changed`, not annotated again
(that would give the video two sets of records); annotate it with a fresh out_dir or remove its entry.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import BaseModel, Field

from vidthinker.io import atomic_write_text
from vidthinker.schema import ManifestRow

LEDGER_FILE = "ledger.json"
LEDGER_VERSION = 1


def qa_hash(row: ManifestRow) -> str:
    """What the annotation of a row depends on besides settings: a hash of its questions and answers
    (not the settings' `vidthinker.fingerprint.annotation_fingerprint`)."""
    data = [pair.model_dump(mode="json", exclude={"ground_truth"}) for pair in row.qa]
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


class VideoEntry(BaseModel):
    shard: str
    run: str
    fingerprint: str = Field(description="qa_hash of the row when annotated (the ledger file's field name)")
    records: int
    errors: int = 0


class ShardEntry(BaseModel):
    run: str
    path: str
    videos: int
    records: int
    ok: int
    errors: int
    content_hash: str
    added_at: dt.datetime


class Ledger(BaseModel):
    version: int = LEDGER_VERSION
    videos: dict[str, VideoEntry] = Field(default_factory=dict)
    shards: dict[str, ShardEntry] = Field(default_factory=dict)

    def split(self, rows: Iterable[ManifestRow]) -> tuple[list[ManifestRow], list[ManifestRow], list[ManifestRow]]:
        """(pending, done, changed) rows of a manifest."""
        pending, done, changed = [], [], []
        for row in rows:
            entry = self.videos.get(row.video_id)
            if entry is None:
                pending.append(row)
            elif entry.fingerprint != qa_hash(row):
                changed.append(row)
            else:
                done.append(row)
        return pending, done, changed


def ledger_path(out_dir: Path) -> Path:
    return Path(out_dir) / LEDGER_FILE


def load_ledger(out_dir: Path) -> Ledger:
    path = ledger_path(out_dir)
    if not path.is_file():
        return Ledger()
    ledger = Ledger.model_validate_json(path.read_text())
    if ledger.version != LEDGER_VERSION:
        raise ValueError(f"{path}: ledger version {ledger.version}, this code reads {LEDGER_VERSION}")
    return ledger


@contextlib.contextmanager
def locked_ledger(out_dir: Path) -> Iterator[Ledger]:
    """Load the ledger under an exclusive lock; what the block leaves in it is written atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / (LEDGER_FILE + ".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            ledger = load_ledger(out_dir)
            before = ledger.model_dump_json()
            yield ledger
            if ledger.model_dump_json() != before:
                atomic_write_text(ledger_path(out_dir), ledger.model_dump_json(indent=1) + "\n", fsync=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
