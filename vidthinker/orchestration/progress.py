"""What a shard task tells its operator: one line per finished video, the models in use, and a WARNING
summary of why records failed.

The lines are written in the task's own process (the engine's driver) from the per-video callback of
`vidthinker.engine.run_shards`, which both engines call there: the local engine directly, the Ray engine
from the per-video events its actors stream back. So the log reads the same with either engine and
does not depend on forwarding Ray workers' stdout (`engine.log_to_driver`). Everything passes through
`vidthinker.redact.redact` (no key or URL credential can reach the log).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from vidthinker.figures import error_reason, error_stage_name
from vidthinker.redact import redact

log = logging.getLogger("vidthinker.orchestration.tasks")

REASON_CHARS = 160


def _stage_seconds(records: Sequence[Any]) -> dict[str, float]:
    """Model call time per stage: the traces' latencies summed over the video's calls (concurrent calls
    overlap, so the sum can exceed the wall time; 0 for cache hits)."""
    out = {"caption": 0.0, "retrieve": 0.0, "localize": 0.0}
    seen_captions: set[tuple] = set()
    for record in records:
        for caption in record.captions or []:
            trace = caption.trace
            key = (getattr(caption, "clip_id", None), trace.latency_s, getattr(trace, "raw_output", None))
            if key not in seen_captions:  # caption_mode=shared: every record carries a copy of the same call
                seen_captions.add(key)
                out["caption"] += trace.latency_s
        if record.retrieval is not None:
            out["retrieve"] += record.retrieval.trace.latency_s
        if record.localization is not None:
            out["localize"] += record.localization.trace.latency_s
    return out


def describe_models(settings: Any) -> str:
    """Endpoint and model names (never keys): what the operator needs to find the server in question."""
    m = settings.models
    if m.backend == "openai":
        models = {"caption": m.caption_model, "retrieval": m.retrieval_model or m.caption_model}
        if settings.annotate.verify_frames:
            models["verify"] = m.verify_model or m.caption_model
        names = ", ".join(f"{stage}={name}" for stage, name in models.items())
        text = f"endpoint {m.base_url} ({names}), embedder {m.embedder}"
    else:
        text = (f"offline models: {m.offline_llm} behind a llama.cpp server on 127.0.0.1 (a free port per worker: "
                f"the shard's last line names it), embedder {m.embedder}")
    if settings.annotate.oracle_captions:
        text += "; stage 1 from the manifest's clip descriptions (oracle)"
    return str(redact(text))


class ShardProgress:
    """`on_video_done` for one shard: logs `video k/n <id>: q questions, ok, errors (reasons), stage model
    times, wall time since the shard started`; `finish()` logs the failure summary at WARNING."""

    def __init__(self, shard_id: str, videos: int, logger: logging.Logger | None = None) -> None:
        self.shard_id = shard_id
        self.videos = videos
        self.done = 0
        self.records = 0
        self.failed: Counter[str] = Counter()
        self.examples: dict[str, str] = {}
        self.log = logger or log
        self.started = time.perf_counter()

    def video_done(self, row: Any, records: Sequence[Any]) -> None:
        self.done += 1
        self.records += len(records)
        errors = [r for r in records if r.error]
        reasons: Counter[str] = Counter()
        for record in errors:
            reason = error_reason(record.error)
            stage = error_stage_name(record.error_stage)
            key = f"{reason} in {stage}"
            reasons[key] += 1
            self.failed[key] += 1
            self.examples.setdefault(key, str(record.error)[:REASON_CHARS])
        times = _stage_seconds(records)
        stage_text = ", ".join(f"{k} {v:.1f} s" for k, v in times.items())
        line = (f"shard {self.shard_id} video {self.done}/{self.videos} {row.video_id}: {len(row.qa)} questions, "
                f"{len(records) - len(errors)} ok, {len(errors)} failed; model call time {stage_text}; "
                f"{time.perf_counter() - self.started:.1f} s into the shard")
        if errors:
            first = str(errors[0].error)[:REASON_CHARS]
            line += f"; errors: {', '.join(f'{k} x{n}' for k, n in reasons.items())} (first: {first})"
        self.log.info("%s", redact(line))

    def finish(self) -> None:
        """WARNING with every failure reason and an example, when any record of the shard failed."""
        if not self.failed:
            return
        total = sum(self.failed.values())
        parts = [f"{key} x{n} (e.g. {self.examples[key]})" for key, n in self.failed.most_common()]
        self.log.warning("%s", redact(f"shard {self.shard_id}: {total} of {self.records} records failed: " + "; ".join(parts)))
