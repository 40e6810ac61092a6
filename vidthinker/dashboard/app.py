"""The VidThinker quality dashboard (Streamlit): `vidthinker dashboard --out DIR`.

Pages: Overview (runs, trends), Distributions (one run's figures as plots, drift), Records (a paged,
filtered record browser with the frame strip and every stage's output), Failures (by stage, reason and error class).
Run as `streamlit run vidthinker/dashboard/app.py -- --out DIR`; the figures come from
`vidthinker.quality` (stored in `<run>/quality/`; when missing or stale, computed by a background
`vidthinker quality` process, never inside a page request).
"""

from __future__ import annotations

import argparse
import html
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from vidthinker.config import load_section
from vidthinker.dashboard import charts, review_page
from vidthinker.dashboard.data import (
    RecordFilter,
    fmt_time,
    get_record,
    list_runs,
    page_frame,
    quality_job,
    record_page,
    run_signature,
    shard_counts,
    stored_quality,
    warm_search,
)
from vidthinker.dashboard.frames import Thumbs, decode_thumbs, strip_html, video_key
from vidthinker.dashboard.stage_view import show_stage_outputs
from vidthinker.figures import error_class_name, error_stage_name
from vidthinker.quality.models import RunQuality
from vidthinker.schema import VideoITGRecord

PAGE_SIZES = (25, 50, 100, 200)
STATUS = ("all", "ok", "error")


def _root() -> Path:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--out", default=str(load_section("dashboard").out_dir))  # setting dashboard.out_dir
    args, _ = parser.parse_known_args(sys.argv[1:])
    return Path(args.out).expanduser().resolve()


# --------------------------------------------------------------------------- cached data


@st.cache_data(ttl=30, show_spinner=False)
def _runs(root: str) -> list[tuple[str, str]]:
    return [(str(r.path), r.name) for r in list_runs(root)]


class _Pending(Exception):
    """The run's figures are not stored yet (a background job computes them); never cached."""


@st.cache_data(max_entries=64, show_spinner=False)
def _stored_quality(run: str, signature: tuple, earlier: tuple[str, ...]) -> RunQuality:
    del signature  # part of the cache key only
    quality = stored_quality(Path(run), [Path(p) for p in earlier])
    if quality is None:
        raise _Pending(run)
    return quality


def _quality(run: str, signature: tuple, earlier: tuple[str, ...]) -> RunQuality | None:
    """The stored figures, or None while `vidthinker quality` computes them in the background."""
    try:
        return _stored_quality(run, signature, earlier)
    except _Pending:
        return None


def _wait_for_figures(runs: list[str]) -> None:
    """Say which runs' figures are being computed (or why they cannot be), and rerun the page shortly."""
    failed = False
    for run in runs:
        state = quality_job(Path(run)) or "running"
        if state.startswith("failed"):
            failed = True
            st.error(f"The quality figures of `{run}` could not be computed: {state.removeprefix('failed: ')}. "
                     f"Run `vidthinker quality --out {run}` to see why.")
        else:
            st.info(f"Computing the quality figures of `{run}` in the background (`vidthinker quality --out {run}`); "
                    "this page shows them once they are stored.")
    if not failed:
        time.sleep(1.0)
        st.rerun()


@st.cache_data(max_entries=48, show_spinner="decoding frames…")
def _thumbs(key: tuple, record_json: str) -> Thumbs:
    record = VideoITGRecord.model_validate_json(record_json)
    return decode_thumbs(key[0], record)


def all_qualities(runs: list[tuple[str, str]]) -> list[RunQuality | None]:
    out = []
    for i, (path, _) in enumerate(runs):
        earlier = tuple(p for p, _ in runs[max(0, i - 5):i])
        out.append(_quality(path, run_signature(Path(path)), earlier))
    return out


def selected_run(runs: list[tuple[str, str]]) -> tuple[str, RunQuality | None]:
    names = [name for _, name in runs]
    wanted = st.query_params.get("run") or st.session_state.get("run_choice") or names[-1]
    index = names.index(wanted) if wanted in names else len(names) - 1
    name = st.sidebar.selectbox("Run", names, index=index, key="run_select")
    st.session_state["run_choice"] = name
    if st.query_params.get("run") != name:
        st.query_params["run"] = name
    i = names.index(name)
    path = runs[i][0]
    earlier = tuple(p for p, _ in runs[max(0, i - 5):i])
    return path, _quality(path, run_signature(Path(path)), earlier)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _ready(page: str, **attrs: str) -> None:
    """An invisible marker written last on a page: browsers and tests wait for it."""
    extra = "".join(f' data-{k}="{html.escape(str(v))}"' for k, v in attrs.items())
    st.html(f'<div data-testid="vt-ready" data-page="{page}"{extra} style="display:none">ready</div>')


def _link(page: str, **params: str) -> str:
    return f"/{page}?{urlencode(params)}"


# --------------------------------------------------------------------------- pages


def overview() -> None:
    runs = _runs(str(ROOT))
    path, quality = selected_run(runs)
    qualities = all_qualities(runs)
    st.title("Annotation quality")
    pending = [p for (p, _), q in zip(runs, qualities) if q is None]
    if pending:
        _wait_for_figures(pending)
        return
    st.caption(f"{len(runs)} run(s) under `{ROOT}`")
    st.subheader(f"Run {quality.name}", anchor=False)
    st.caption(f"created {fmt_time(quality.created_at)} · {', '.join(quality.pipeline_versions)} · `{path}`")
    cols = st.columns(7)
    cols[0].metric("records", f"{quality.records:,}")
    cols[1].metric("error rate", _pct(quality.error_rate))
    cols[2].metric("videos", f"{quality.videos:,}")
    cols[3].metric("frames / QA (median)", _num(quality.frames_per_qa.quantiles.get("p50")))
    cols[4].metric("clips / QA (median)", _num(quality.clips_per_qa.quantiles.get("p50")))
    cols[5].metric("tokens / record", _num(quality.tokens_per_record.mean, 0))
    cols[6].metric("drift", quality.drift.level if quality.drift else "no baseline")
    agreement = (quality.agreement or {}).get("all")
    if agreement:
        st.caption(f"agreement with ground truth ({agreement.records} records): frame precision "
                   f"{agreement.frame_precision:.2f}, recall {agreement.frame_recall:.2f}; clip precision "
                   f"{agreement.clip_precision:.2f}, recall {agreement.clip_recall:.2f}; type accuracy {agreement.type_accuracy:.2f}")

    st.subheader("Runs", anchor=False)
    table = charts.trend_frame(qualities)
    table["drift"] = [q.drift.level if q.drift else "–" for q in qualities]
    table["errors"] = [q.errors for q in qualities]
    st.dataframe(table, hide_index=True, column_config={
        "error rate": st.column_config.NumberColumn(format="percent"),
        "none share": st.column_config.NumberColumn(format="percent"),
        "all share": st.column_config.NumberColumn(format="percent"),
        "tokens/record": st.column_config.NumberColumn(format="%.0f"),
    })
    st.subheader("Trends across runs", anchor=False)
    left, right = st.columns(2)
    left.altair_chart(charts.trend(table, ["error rate", "none share", "all share"], title="error rate and retrieval shares", percent=True))
    right.altair_chart(charts.type_mix_trend(qualities))
    left.altair_chart(charts.trend(table, ["frames/QA p50", "clips/QA p50"], title="frames and clips per QA (median)"))
    right.altair_chart(charts.trend(table, ["tokens/record"], title="tokens per record (mean)"))
    if table["frame recall (GT)"].notna().any():
        left.altair_chart(charts.trend(table, ["frame precision (GT)", "frame recall (GT)"], title="agreement with ground truth"))
    _ready("overview", run=quality.name)


def distributions() -> None:
    runs = _runs(str(ROOT))
    path, q = selected_run(runs)
    if q is None:
        st.title(f"Distributions · {Path(path).name}")
        _wait_for_figures([path])
        return
    st.title(f"Distributions · {q.name}")
    left, right = st.columns(2)
    left.altair_chart(charts.count_distribution(q.frames_per_qa, title="frames per QA (good records)", x_title="frames"))
    right.altair_chart(charts.count_distribution(q.clips_per_qa, title="clips per QA (good records)", x_title="clips", colour="#2f9e44"))
    left.altair_chart(charts.type_mix(q.instruction_types))
    right.altair_chart(charts.count_distribution(q.captions.words, title="caption length (words)", x_title="words", colour="#7048e8"))
    left.altair_chart(charts.stage_costs(q))
    right.altair_chart(charts.stage_latency(q))
    left.altair_chart(charts.binned_distribution(q.tokens_per_record, title="tokens per record (all stages)", x_title="tokens"))
    right.altair_chart(charts.binned_distribution(q.latency_per_record_s, title="model latency per record (all stages)", x_title="seconds", colour="#f08c00"))

    st.subheader("Retrieval", anchor=False)
    cols = st.columns(4)
    cols[0].metric("no clip retrieved", _pct(q.retrieval.none_share), help=f"{q.retrieval.none} of {q.retrieval.records} good records")
    cols[1].metric("every clip retrieved", _pct(q.retrieval.all_share), help=f"{q.retrieval.all} of {q.retrieval.records} good records")
    cols[2].metric("empty captions", f"{q.captions.empty} / {q.captions.captions}")
    cols[3].metric("near-duplicate questions", f"{q.near_duplicates.records_in_groups}", help=f"share {_pct(q.near_duplicates.share)}")

    st.subheader("Cost by stage", anchor=False)
    st.dataframe(pd.DataFrame([
        {"stage": s, "records": c.records, "traces": c.traces, "calls": c.calls, "cached/free": c.cached_or_free,
         "prompt tokens": c.prompt_tokens, "completion tokens": c.completion_tokens, "model s": round(c.latency_s, 1),
         "trace errors": c.trace_errors, "tokens/record p50": c.tokens_per_record.quantiles.get("p50"),
         "latency/record p95 s": c.latency_per_record_s.quantiles.get("p95")}
        for s, c in q.stages.items()]), hide_index=True)

    if q.agreement:
        st.subheader("Agreement with ground truth", anchor=False)
        st.caption(f"manifest: `{q.ground_truth_manifest}`")
        st.dataframe(pd.DataFrame([{"type": k, **v.model_dump()} for k, v in q.agreement.items()]), hide_index=True)

    st.subheader("Drift against previous runs", anchor=False)
    if q.drift is None:
        st.info("No earlier run to compare with.")
    else:
        st.caption(f"baseline: {', '.join(q.drift.baseline_runs)} ({q.drift.baseline_records} records) · "
                   f"PSI ≥ {q.drift.thresholds['psi_warn']} warn, ≥ {q.drift.thresholds['psi_alert']} alert")
        st.dataframe(pd.DataFrame([{"metric": c.metric, "level": c.level, "PSI": c.psi, "JS": c.js,
                                    "change (pp)": c.delta_pp, "note": c.note} for c in q.drift.checks]), hide_index=True)
        dist_checks = [c for c in q.drift.checks if c.kind == "distribution"]
        cols = st.columns(len(dist_checks) or 1)
        for col, check in zip(cols, dist_checks):
            col.altair_chart(charts.drift_comparison(check))

    st.subheader("Near-duplicate questions (same video)", anchor=False)
    if q.near_duplicates.groups:
        st.dataframe(pd.DataFrame([{"video": g.video_id, "kind": g.kind, "similarity": g.similarity,
                                    "qa_ids": ", ".join(g.qa_ids), "questions": " | ".join(g.questions)}
                                   for g in q.near_duplicates.groups]), hide_index=True)
    else:
        st.caption("none")
    st.subheader("Most repeated questions (across videos)", anchor=False)
    st.dataframe(pd.DataFrame([t.model_dump() for t in q.repeated_questions.top]), hide_index=True)
    st.subheader("Shards", anchor=False)
    st.dataframe(pd.DataFrame([s.model_dump() for s in q.shards]), hide_index=True,
                 column_config={"error_rate": st.column_config.NumberColumn(format="percent")})
    _ready("distributions", run=q.name)


def _filters(prefix: str, run: str, signature: tuple, *, failures: bool) -> RecordFilter:
    qp = st.query_params
    cols = st.columns(5)
    if failures:
        quality = st.session_state["_quality"]
        stages = [""] + sorted(quality.errors_by_stage)
        stage = cols[0].selectbox("stage", stages, index=stages.index(qp.get("stage", "")) if qp.get("stage", "") in stages else 0,
                                  format_func=lambda s: s or "any", key=f"{prefix}-stage")
        reasons = [""] + sorted({r.reason for r in st.session_state["_quality"].errors_by_reason if not stage or r.stage == stage})
        reason = cols[1].selectbox("reason", reasons, index=reasons.index(qp.get("reason", "")) if qp.get("reason", "") in reasons else 0,
                                   format_func=lambda s: s or "any", key=f"{prefix}-reason")
        classes = ["", *quality.errors_by_class]
        kind = cols[2].selectbox("error class", classes, index=classes.index(qp.get("class", "")) if qp.get("class", "") in classes else 0,
                                 format_func=lambda s: s or "any", key=f"{prefix}-class")
        search = cols[3].text_input("question contains", qp.get("q", ""), key=f"{prefix}-q")
        video = cols[4].text_input("video id", qp.get("video", ""), key=f"{prefix}-video")
        return RecordFilter(status="error", stage=stage or None, reason=reason or None, error_class=kind or None,
                            search=search or None, video_id=video or None)
    status = cols[0].selectbox("status", STATUS, index=STATUS.index(qp.get("status", "all")) if qp.get("status", "all") in STATUS else 0,
                               key=f"{prefix}-status")
    quality = st.session_state["_quality"]
    types = [""] + sorted(t for t in (quality.instruction_types if quality else {}) if t != "unknown") + ["unknown"]
    kind = cols[1].selectbox("instruction type", types, index=types.index(qp.get("type", "")) if qp.get("type", "") in types else 0,
                             format_func=lambda s: s or "any", key=f"{prefix}-type")
    search = cols[2].text_input("question contains", qp.get("q", ""), key=f"{prefix}-q")
    video = cols[3].text_input("video id", qp.get("video", ""), key=f"{prefix}-video")
    cols[4].write("")
    return RecordFilter(status=status, instruction_type=kind or None, search=search or None, video_id=video or None)


def _paged(run: str, flt: RecordFilter, prefix: str) -> pd.DataFrame:
    controls = st.columns([1, 1, 4])
    size = controls[0].selectbox("page size", PAGE_SIZES, index=1, key=f"{prefix}-size")
    quality = st.session_state.get("_quality")  # stored figures of the current shards, or None
    warm_search(Path(run))  # questions read in the background: a search click then matches in memory
    total = sum(shard_counts(Path(run), flt, quality)[1])
    pages = max(1, -(-total // size))
    page_no = controls[1].number_input(f"page (of {pages})", min_value=1, max_value=pages,
                                       value=min(pages, int(st.query_params.get("page", 1) or 1)), key=f"{prefix}-page")
    page = record_page(Path(run), flt, (page_no - 1) * size, size, quality=quality)
    controls[2].caption(f"{page.total:,} matching records · showing {page.offset + 1 if page.total else 0}–"
                        f"{page.offset + page.table.num_rows}")
    return page_frame(page)


def _record_detail(run: str, record: VideoITGRecord) -> None:
    st.divider()
    head = st.container()
    head.subheader(record.question, anchor=False)
    head.caption(f"`{record.id}` · video `{record.video}` · type **{record.instruction_type or 'unknown'}** · "
                 f"motion {record.motion} · existence {record.existence}")
    if record.error:
        head.error(f"failed at **{error_stage_name(record.error_stage)}** ({error_class_name(record.error_class)} error): {record.error}")
    thumbs = _thumbs(video_key(record.video), record.model_dump_json())
    st.html(strip_html(record, thumbs))

    def answer() -> None:
        st.markdown(f"**Answer:** {record.answer or '–'}")
        st.markdown(f"**frame_num** ({len(record.frame_num)}): `{record.frame_num}`  \n**clip_num**: `{record.clip_num}`")

    show_stage_outputs(record, detail=True, lead=answer)


def records() -> None:
    runs = _runs(str(ROOT))
    run, quality = selected_run(runs)
    st.session_state["_quality"] = quality  # None while computed in the background: the listing works without
    name = quality.name if quality else Path(run).name
    st.title(f"Records · {name}")
    signature = run_signature(Path(run))
    flt = _filters("rec", run, signature, failures=False)
    frame = _paged(run, flt, "rec")
    st.caption("Click a row (or pick an id below) to open a record.")
    event = st.dataframe(frame, hide_index=True, height=min(420, 38 + 35 * len(frame)), on_select="rerun",
                         selection_mode="single-row", key="rec-table",
                         column_order=["id", "question", "instruction_type", "frames", "frame_num", "clip_num", "error_stage", "error"])
    ids = frame["id"].tolist()
    picked = [ids[i] for i in event.selection.rows if i < len(ids)]
    if picked and picked[0] != st.session_state.get("rec-last-pick"):
        st.session_state["rec-last-pick"] = picked[0]
        st.query_params["record"] = picked[0]
    wanted = st.query_params.get("record") or (ids[0] if ids else None)
    if wanted is None:
        st.info("No record matches.")
        _ready("records", record="")
        return
    options = ids if wanted in ids else [wanted] + ids
    choice = st.selectbox("record", options, index=options.index(wanted))
    if st.query_params.get("record") != choice:
        st.query_params["record"] = choice
    record = get_record(Path(run), choice)
    if record is None:
        st.warning(f"record {choice!r} is not in run {name}")
        _ready("records", record="")
        return
    _record_detail(run, record)
    _ready("records", record=record.id)


def failures() -> None:
    runs = _runs(str(ROOT))
    run, quality = selected_run(runs)
    st.session_state["_quality"] = quality
    if quality is None:
        st.title(f"Failures · {Path(run).name}")
        _wait_for_figures([run])
        return
    st.title(f"Failures · {quality.name}")
    cols = st.columns(4)
    cols[0].metric("failed records", f"{quality.errors:,}")
    cols[1].metric("error rate", _pct(quality.error_rate))
    for col, (stage, e) in zip(cols[2:], list(quality.errors_by_stage.items())[:2]):
        col.metric(f"{stage} errors", e.errors)
    if quality.errors_by_class:  # transient: a rerun repairs it; permanent: the input or the model's reply
        for col, (kind, n) in zip(st.columns(len(quality.errors_by_class)), quality.errors_by_class.items()):
            col.metric(f"{kind} errors", f"{n:,}")
    st.altair_chart(charts.errors_by_reason(quality))
    st.dataframe(pd.DataFrame([{**r.model_dump(), "classes": ", ".join(f"{k} {n}" for k, n in r.classes.items())}
                               for r in quality.errors_by_reason]), hide_index=True,
                 column_config={"rate": st.column_config.NumberColumn(format="percent")})
    signature = run_signature(Path(run))
    flt = _filters("fail", run, signature, failures=True)
    frame = _paged(run, flt, "fail")
    frame["open"] = [_link("records", run=quality_run_key(run), record=i) for i in frame["id"]]
    st.dataframe(frame, hide_index=True, column_order=["open", "id", "error_stage", "error_class", "error", "question", "video_id"],
                 column_config={"open": st.column_config.LinkColumn("open", display_text="open ↗"),
                                "error": st.column_config.TextColumn(width="large")})
    _ready("failures", run=quality.name, stage=flt.stage or "", reason=flt.reason or "", error_class=flt.error_class or "",
           shown=len(frame))


def quality_run_key(run: str) -> str:
    return Path(run).name


# --------------------------------------------------------------------------- main

ROOT = _root()
st.set_page_config(page_title="VidThinker · annotation quality", layout="wide")
try:
    _found = _runs(str(ROOT))
except Exception as error:  # noqa: BLE001 - shown to the user instead of a traceback
    st.error(f"Cannot read runs under {ROOT}: {error}")
    st.stop()
if not _found:
    st.error(f"No runs under {ROOT} (a run is a folder with shards/*.parquet).")
    st.stop()
navigation = st.navigation([
    st.Page(overview, title="Overview", default=True),
    st.Page(distributions, title="Distributions", url_path="distributions"),
    st.Page(records, title="Records", url_path="records"),
    st.Page(failures, title="Failures", url_path="failures"),
    st.Page(review_page.review, title="Review", url_path="review"),  # human review: vidthinker/dashboard/review_page.py
    st.Page(review_page.figures_page, title="Reviewed quality", url_path="reviewed"),
])
navigation.run()
