"""What a shard's records say and what they depend on, as hashes: `records_hash` (the manifest's
content hash, equal for a rerun that says the same) and `row_identity` (a video's QA pairs and file,
compared by `vidthinker.shards.state.shard_state` to find shards that are stale by content).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable

from vidthinker.schema import ManifestRow, VideoITGRecord

# Fields that say how a record was made this time, not what it says: left out of the content hash so
# that a rerun (new run id, cache replays with other latencies and zero billable calls) compares equal.
_TRACE_VOLATILE = {"latency_s": True, "usage": {"calls"}}
_HASH_EXCLUDE = {
    "provenance": {"created_at", "run_id"},
    "captions": {"__all__": {"trace": _TRACE_VOLATILE}},
    "retrieval": {"trace": _TRACE_VOLATILE},
    "localization": {"trace": _TRACE_VOLATILE},
}


def row_identity(row: ManifestRow) -> str:
    """What a video's records depend on besides the settings: its QA pairs (ids, questions, answers,
    options, ground truth), its oracle clip descriptions, and the video file's identity (size and
    modification time in ns; a file that cannot be stat'ed, or a URL, is named by its path).

    An edited, added or removed question, or a replaced video, changes it, so the shard holding the
    video is stale by content and redone (unchanged model calls replay from the request cache).
    """
    video = row.video.removeprefix("file://")
    try:
        info = os.stat(video)
        file_id = f"{info.st_size}:{info.st_mtime_ns}"
    except (OSError, ValueError) as error:
        file_id = f"unstat:{type(error).__name__}:{row.video}"
    doc = {
        "qa": [qa.model_dump(mode="json") for qa in row.qa],
        "clip_descriptions": row.clip_descriptions,
        "file": file_id,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def row_identities(rows: Iterable[ManifestRow]) -> dict[str, str]:
    return {row.video_id: row_identity(row) for row in rows}


def records_hash(records: Iterable[VideoITGRecord]) -> str:
    """Hash of what the records say, in order.

    Leaves out when and by which run they were made (`provenance.created_at/run_id`) and what each model
    call cost this time (trace `latency_s` and `usage.calls`, which are 0 for a cache replay), so an
    interrupted-and-resumed run compares equal to an uninterrupted one. Token counts, raw model outputs
    and errors are kept.
    """
    digest = hashlib.sha256()
    for record in records:
        data = record.model_dump(mode="json", exclude=_HASH_EXCLUDE)
        digest.update(json.dumps(data, sort_keys=True).encode())
    return digest.hexdigest()
