"""The reviews table: one reviewer's verdicts on one record, appended as a file and read back (cached).

Reviews are data, kept next to the run and never edited in place:

    <run>/reviews/<UTC time>-<reviewer>-<random>.json   one `Review` (one JSON object, written atomically)

A reviewer who changes their mind writes a new review; the newest review of a (record, reviewer) wins.
Every review carries the record's content hash (`record_hash`: the record's output fields — `video,
question, answer, frame_num, clip_num, instruction_type` — canonically serialised, like
`shards.records_hash` does for whole records). When a later rerun changes what the record says, the
hash differs and the review is *outdated*: shown as such, and left out of the figures. A review of a
record that is no longer in the run (or now failed) is *gone*.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import os
import re
import tempfile
import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from vidthinker.config import load_section
from vidthinker.schema import VideoITGRecord

REVIEWS_DIR = "reviews"
HASH_FIELDS = ("video", "question", "answer", "frame_num", "clip_num", "instruction_type")

FrameVerdict = Literal["right", "partly", "wrong"]
BinaryVerdict = Literal["right", "wrong"]


class ReviewError(ValueError):
    """A review or a review request is not valid (the message names the input and why)."""


def record_hash(record: VideoITGRecord | Mapping) -> str:
    """Content hash of what a reviewer judges: the record's output fields, canonical JSON, sha256[:16]."""
    data = record.model_dump(mode="json") if isinstance(record, VideoITGRecord) else record
    doc = {name: data.get(name) for name in HASH_FIELDS}
    doc["frame_num"] = [int(v) for v in doc["frame_num"] or []]
    doc["clip_num"] = [int(v) for v in doc["clip_num"] or []]
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


class Review(BaseModel):
    """One reviewer's verdicts on one record at one content hash."""

    review_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    reviewer: str
    reviewed_at: dt.datetime = Field(default_factory=lambda: dt.datetime.now(dt.UTC))
    record_id: str
    record_hash: str
    instruction_type: str | None = Field(None, description="the record's type when reviewed")
    shard: str = ""
    frames: FrameVerdict | None = None
    wrong_frames: list[int] = Field(default_factory=list, description="selected frames marked wrong")
    missing_frames: list[int] = Field(default_factory=list, description="frames not selected but marked as needed")
    clips: BinaryVerdict | None = None
    type_ok: bool | None = None
    note: str = ""

    @field_validator("reviewer")
    @classmethod
    def _reviewer(cls, value: str) -> str:
        value = value.strip()
        if not re.fullmatch(r"[\w.@+-]{1,64}", value):
            raise ValueError(f"reviewer {value!r}: use 1-64 letters, digits or . _ @ + -")
        return value


def reviews_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / REVIEWS_DIR


def default_reviewer() -> str:
    """The setting review.reviewer (VIDTHINKER_REVIEW__REVIEWER), else the login name, made a valid reviewer name."""
    configured = load_section("review").reviewer
    try:
        return re.sub(r"[^\w.@+-]", "_", configured or getpass.getuser())[:64] or "reviewer"
    except Exception:  # noqa: BLE001 - no login name (containers)
        return "reviewer"


def append_review(run_dir: str | Path, review: Review) -> Path:
    """Add one review to the run's table (a new file, written atomically; existing files are never touched)."""
    if not review.frames and not review.clips and review.type_ok is None:
        raise ReviewError(f"review of {review.record_id}: give at least one verdict (frames, clips or type)")
    folder = reviews_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = review.reviewed_at.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"{stamp}-{review.reviewer}-{review.review_id[:8]}.json"
    fd, tmp = tempfile.mkstemp(prefix=".review.", dir=folder)
    with os.fdopen(fd, "w") as handle:
        handle.write(review.model_dump_json() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.link(tmp, path)  # fails rather than replace an existing file
    os.unlink(tmp)
    return path


def review_file_names(run_dir: Path) -> tuple:
    folder = reviews_dir(run_dir)
    try:
        return tuple(sorted(p.name for p in folder.iterdir() if p.suffix == ".json" and not p.name.startswith(".")))
    except FileNotFoundError:
        return ()


_review_cache: OrderedDict[tuple, list[Review]] = OrderedDict()
_lock = threading.Lock()


def read_reviews(run_dir: str | Path) -> list[Review]:
    """Every review of the run, oldest first (files are immutable: cached by the folder's listing)."""
    run_dir = Path(run_dir)
    names = review_file_names(run_dir)
    key = (str(run_dir.resolve()), names)
    with _lock:
        if key in _review_cache:
            return _review_cache[key]
    out = []
    for name in names:
        path = reviews_dir(run_dir) / name
        try:
            out.append(Review.model_validate_json(path.read_text()))
        except ValidationError as error:
            raise ReviewError(f"{path}: not a review: {error.errors()[0]['msg']}") from None
    out.sort(key=lambda r: (r.reviewed_at, r.review_id))
    with _lock:
        _review_cache[key] = out
        while len(_review_cache) > 32:
            _review_cache.popitem(last=False)
    return out
