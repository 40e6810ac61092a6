"""One shard's figures: what the column-wise shard pass computes equals the record-level truth."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from vidthinker.formats import iter_records
from vidthinker.quality import shard as Q
from vidthinker.quality.runs import shard_paths
from vidthinker.quality.shard import compute_shard_quality
from vidthinker.worker.summary import summarise


def test_shard_figures_match_the_records(runs, monkeypatch):
    monkeypatch.setattr(Q, "BATCH_ROWS", 7)  # several batches per shard
    run = runs[1]
    for path in shard_paths(run):
        figures = compute_shard_quality(path)
        records = list(iter_records(path))
        good = [r for r in records if r.ok]
        assert figures.records == len(records) and figures.ok == len(good)
        assert figures.videos == len({r.video_id for r in records})
        assert figures.frames_per_qa.values == dict(sorted(Counter(len(r.frame_num) for r in good).items()))
        assert figures.clips_per_qa.values == dict(sorted(Counter(len(r.clip_num) for r in good).items()))
        assert figures.instruction_types == dict(sorted(Counter(r.instruction_type or "unknown" for r in good).items()))
        summary = summarise("x", records, 0.0, {})
        assert {k: v.errors for k, v in figures.errors_by_stage.items()} == summary.errors_by_stage
        assert {f"{r.stage}:{r.reason}": r.count for r in figures.errors_by_reason} == summary.errors_by_reason
        for stage, stats in summary.stages.items():
            cost = figures.stages[stage]
            assert (cost.calls, cost.prompt_tokens, cost.completion_tokens) == (
                stats.calls, stats.prompt_tokens, stats.completion_tokens)
            assert cost.latency_s == pytest.approx(stats.model_latency_s, abs=1e-6)
        words = [len(c.caption.split()) for r in records for c in r.captions]
        assert figures.captions.captions == len(words) and figures.captions.words.values == dict(sorted(Counter(words).items()))
        none = sum(1 for r in good if r.captions and not r.clip_num)
        every = sum(1 for r in good if r.captions and r.clip_num and len(r.clip_num) >= len(r.captions))
        assert (figures.retrieval.none, figures.retrieval.all) == (none, every)
        tokens = [sum(t.usage.prompt_tokens + t.usage.completion_tokens for t in
                      [c.trace for c in r.captions] + [x.trace for x in (r.retrieval, r.localization) if x])
                  for r in records]
        assert figures.tokens_per_record.sum == sum(tokens)
        if good:
            assert figures.frames_per_qa.quantiles["p50"] == pytest.approx(np.quantile([len(r.frame_num) for r in good], 0.5))
        else:  # the shard of the broken upload: every record failed at probe
            assert figures.frames_per_qa.count == 0 and figures.errors_by_stage["probe"].errors == len(records)
