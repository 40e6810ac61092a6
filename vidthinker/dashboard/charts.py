"""Altair charts of the quality figures (vidthinker.quality); pure functions of the pydantic models."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import altair as alt
import pandas as pd

from vidthinker.quality.distributions import Distribution
from vidthinker.quality.models import DriftCheck, RunQuality

TYPE_ORDER = ["semantic_only", "motion_only", "semantic_motion", "no_clues", "unknown"]
STAGE_COLOURS = {"probe": "#868e96", "decode": "#495057", "caption": "#1c7ed6", "retrieve": "#f08c00",
                 "localize": "#2f9e44", "unknown": "#adb5bd"}


def _bar(frame: pd.DataFrame, x: str, y: str, *, title: str, x_title: str | None = None, y_title: str | None = None,
         sort: Sequence[str] | None = None, colour: str = "#1c7ed6", height: int = 220) -> alt.Chart:
    return (
        alt.Chart(frame, title=title, height=height)
        .mark_bar(color=colour)
        .encode(
            x=alt.X(f"{x}:O", title=x_title or x, sort=list(sort) if sort else None),
            y=alt.Y(f"{y}:Q", title=y_title or y),
            tooltip=list(frame.columns),
        )
    )


def count_distribution(dist: Distribution, *, title: str, x_title: str, colour: str = "#1c7ed6") -> alt.Chart:
    """Exact integer distribution (frames / clips per QA, caption words) as a bar per value."""
    values = {int(k): v for k, v in (dist.values or {}).items()}
    if not values:
        values = {0: 0}
    lo, hi = min(values), max(values)
    if hi - lo <= 80:  # every integer on an ordinal axis, zeros included, so gaps show
        frame = pd.DataFrame({"value": list(range(lo, hi + 1)), "records": [values.get(v, 0) for v in range(lo, hi + 1)]})
        x = alt.X("value:O", title=x_title, axis=alt.Axis(labelOverlap=True, labelAngle=0))
    else:
        frame = pd.DataFrame({"value": list(values), "records": list(values.values())})
        x = alt.X("value:Q", title=x_title)
    return (
        alt.Chart(frame, title=title, height=220)
        .mark_bar(color=colour)
        .encode(x=x, y=alt.Y("records:Q", title="count"), tooltip=["value", "records"])
    )


def binned_distribution(dist: Distribution, *, title: str, x_title: str, colour: str = "#1c7ed6") -> alt.Chart:
    """Fixed-edge histogram (latency, tokens) with readable bin labels."""
    hist = dist.histogram
    labels, counts = [], []
    if hist is not None:
        for lo, hi, n in zip(hist.edges[:-1], hist.edges[1:], hist.counts):
            labels.append(f"{lo:g}–{hi:g}" if hi < 1e8 else f"≥{lo:g}")
            counts.append(n)
        # trim empty bins at both ends so the interesting part fills the chart
        nonzero = [i for i, n in enumerate(counts) if n]
        if nonzero:
            labels, counts = labels[nonzero[0]:nonzero[-1] + 1], counts[nonzero[0]:nonzero[-1] + 1]
    frame = pd.DataFrame({"bin": labels or ["–"], "count": counts or [0]})
    return _bar(frame, "bin", "count", title=title, x_title=x_title, sort=labels, colour=colour)


def type_mix(types: Mapping[str, int], *, title: str = "instruction types (good records)") -> alt.Chart:
    frame = pd.DataFrame({"type": list(types.keys()), "records": list(types.values())})
    return (
        alt.Chart(frame, title=title, height=220)
        .mark_bar()
        .encode(x=alt.X("type:N", sort=TYPE_ORDER, title=None), y=alt.Y("records:Q"),
                color=alt.Color("type:N", sort=TYPE_ORDER, legend=None), tooltip=["type", "records"])
    )


def errors_by_reason(quality: RunQuality) -> alt.Chart:
    frame = pd.DataFrame([{"stage": r.stage, "reason": f"{r.stage}: {r.reason}", "records": r.count}
                          for r in quality.errors_by_reason])
    if frame.empty:
        frame = pd.DataFrame({"stage": ["none"], "reason": ["no errors"], "records": [0]})
    stages = [s for s in STAGE_COLOURS if s in set(frame["stage"])] or ["none"]
    return (
        alt.Chart(frame, title="failed records by stage and reason", height=240)
        .mark_bar()
        .encode(
            x=alt.X("reason:N", title=None, sort="-y", axis=alt.Axis(labelAngle=-20, labelLimit=220)),
            y=alt.Y("records:Q"),
            color=alt.Color("stage:N", scale=alt.Scale(domain=stages, range=[STAGE_COLOURS.get(s, "#adb5bd") for s in stages])),
            tooltip=["stage", "reason", "records"],
        )
    )


def stage_costs(quality: RunQuality) -> alt.Chart:
    rows = []
    for stage, cost in quality.stages.items():
        rows.append({"stage": stage, "kind": "prompt tokens", "tokens": cost.prompt_tokens})
        rows.append({"stage": stage, "kind": "completion tokens", "tokens": cost.completion_tokens})
    frame = pd.DataFrame(rows or [{"stage": "-", "kind": "prompt tokens", "tokens": 0}])
    return (
        alt.Chart(frame, title="tokens by stage", height=220)
        .mark_bar()
        .encode(x=alt.X("stage:N", sort=list(STAGE_COLOURS), title=None), y=alt.Y("tokens:Q"),
                color=alt.Color("kind:N"), tooltip=["stage", "kind", "tokens"])
    )


def stage_latency(quality: RunQuality) -> alt.Chart:
    rows = []
    for stage, cost in quality.stages.items():
        q = cost.latency_per_record_s.quantiles
        if q:
            rows.append({"stage": stage, "p50 s": q.get("p50", 0.0), "p95 s": q.get("p95", 0.0),
                         "mean s": cost.latency_per_record_s.mean or 0.0})
    frame = pd.DataFrame(rows or [{"stage": "-", "p50 s": 0.0, "p95 s": 0.0, "mean s": 0.0}])
    long = frame.melt(id_vars="stage", var_name="statistic", value_name="seconds")
    return (
        alt.Chart(long, title="model latency per record, by stage", height=220)
        .mark_bar()
        .encode(x=alt.X("stage:N", sort=list(STAGE_COLOURS), title=None), xOffset="statistic:N",
                y=alt.Y("seconds:Q"), color="statistic:N", tooltip=["stage", "statistic", "seconds"])
    )


def drift_comparison(check: DriftCheck) -> alt.Chart:
    """Current vs baseline shares of one distribution check."""
    assert isinstance(check.current, dict) and isinstance(check.baseline, dict)
    rows = [{"bucket": k, "run": "this run", "share": v} for k, v in check.current.items()]
    rows += [{"bucket": k, "run": "baseline", "share": v} for k, v in check.baseline.items()]
    frame = pd.DataFrame(rows)
    order = list(check.current.keys())
    return (
        alt.Chart(frame, title=alt.TitleParams(check.metric.replace("_", " "),
                                               subtitle=f"PSI {check.psi:.3f} · JS {check.js:.3f} · {check.level}"), height=200)
        .mark_bar()
        .encode(x=alt.X("bucket:N", sort=order, title=None, axis=alt.Axis(labelAngle=0, labelOverlap=True)), xOffset="run:N", y=alt.Y("share:Q", axis=alt.Axis(format="%")),
                color=alt.Color("run:N", scale=alt.Scale(domain=["baseline", "this run"], range=["#adb5bd", "#1c7ed6"])),
                tooltip=["bucket", "run", alt.Tooltip("share:Q", format=".1%")])
    )


def trend_frame(runs: Sequence[RunQuality]) -> pd.DataFrame:
    rows = []
    for q in runs:
        agreement = (q.agreement or {}).get("all")
        rows.append({
            "run": q.name,
            "created": q.created_at,
            "records": q.records,
            "error rate": q.error_rate,
            "frames/QA p50": q.frames_per_qa.quantiles.get("p50"),
            "clips/QA p50": q.clips_per_qa.quantiles.get("p50"),
            "tokens/record": q.tokens_per_record.mean,
            "none share": q.retrieval.none_share,
            "all share": q.retrieval.all_share,
            "frame recall (GT)": agreement.frame_recall if agreement else None,
            "frame precision (GT)": agreement.frame_precision if agreement else None,
        })
    return pd.DataFrame(rows)


def trend(frame: pd.DataFrame, metrics: Sequence[str], *, title: str, percent: bool = False) -> alt.Chart:
    long = frame.melt(id_vars=["run"], value_vars=list(metrics), var_name="metric", value_name="value").dropna()
    axis = alt.Axis(format="%") if percent else alt.Axis()
    return (
        alt.Chart(long, title=title, height=220)
        .mark_line(point=True)
        .encode(x=alt.X("run:N", sort=list(frame["run"]), title=None, axis=alt.Axis(labelAngle=0, labelLimit=160)),
                y=alt.Y("value:Q", axis=axis, title=None),
                color="metric:N", tooltip=["run", "metric", "value"])
    )


def type_mix_trend(runs: Sequence[RunQuality]) -> alt.Chart:
    rows = [{"run": q.name, "type": t, "share": share} for q in runs for t, share in q.type_share.items()]
    frame = pd.DataFrame(rows or [{"run": "-", "type": "unknown", "share": 0.0}])
    return (
        alt.Chart(frame, title="instruction-type mix by run", height=220)
        .mark_bar()
        .encode(x=alt.X("run:N", sort=[q.name for q in runs], title=None, axis=alt.Axis(labelAngle=0, labelLimit=160)),
                y=alt.Y("share:Q", axis=alt.Axis(format="%"), stack="normalize"),
                color=alt.Color("type:N", sort=TYPE_ORDER), tooltip=["run", "type", alt.Tooltip("share:Q", format=".1%")])
    )
