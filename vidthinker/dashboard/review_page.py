"""The dashboard's Review and Reviewed-quality pages (registered in app.py); data and figures in vidthinker.review.

Review (`/review?run=RUN&reviewer=NAME&n=20&seed=0`, or `&record=ID` for one record): a seeded,
stratified sample of the run's good records, one at a time — question, answer, the frame strip of the
record browser (selected frames and retrieved clips highlighted), each stage's output, earlier reviews
of the record (outdated ones marked) — and the verdicts: frames right / partly / wrong (keys 1 2 3),
clips right / wrong (K X; Streamlit reserves C), instruction type right / wrong (T F), frames marked
wrong or missing by clicking them on the strip, a note; "Save & next" (N) appends the review and shows
the next record in place (a Streamlit rerun over the open websocket, not a page load). Shortcuts are
Streamlit's own (`st.button(shortcut=...)`, Streamlit ≥ 1.5x).

Reviewed quality (`/reviewed?run=RUN`): the run's reviewed figures per instruction type with Wilson 95%
intervals, share reviewed, Cohen's kappa, outdated reviews, ground-truth figures beside them on
synthetic sets, and the trend across runs.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from vidthinker.config import load_section
from vidthinker.dashboard.frames import Thumbs, decode_thumbs, strip_html
from vidthinker.dashboard.stage_view import show_stage_outputs
from vidthinker.quality.runs import find_runs
from vidthinker.review import (
    Review,
    ReviewError,
    RunReview,
    SampleItem,
    append_review,
    default_reviewer,
    draw_sample,
    fetch_records,
    ground_truth_beside,
    read_reviews,
    record_hash,
    review_figures,
    review_trend,
    reviewed_ids,
    run_index,
)
from vidthinker.schema import VideoITGRecord

FRAME_KEYS = {"right": "1", "partly": "2", "wrong": "3"}
CLIP_KEYS = {"right": "K", "wrong": "X"}
TYPE_KEYS = {True: "T", False: "F"}
NEXT_KEY = "N"

# A click on a frame of the review strip clicks that frame's pill in the "marked frames" widget (the
# strip is plain HTML, the pills are the widget whose value Streamlit keeps). Delegated on the
# document once, so it survives reruns.
CLICK_SCRIPT = """
<div style="display:none" data-testid="vt-review-clicks"></div>
<script>
if (!window.__vtReviewClicks) {
  window.__vtReviewClicks = true;
  document.addEventListener('click', (event) => {
    const tile = event.target.closest('[data-testid="review-strip"] figure[data-frame-id]');
    if (!tile) return;
    const box = document.querySelector('.st-key-review-marks');
    if (!box) return;
    const id = tile.dataset.frameId;
    const pill = Array.from(box.querySelectorAll('button')).find(b => b.innerText.trim() === id);
    if (pill) pill.click();
  });
}
</script>
"""


def _root() -> Path:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--out", default=str(load_section("dashboard").out_dir))  # setting dashboard.out_dir
    args, _ = parser.parse_known_args(sys.argv[1:])
    return Path(args.out).expanduser().resolve()


def _ready(page: str, **attrs: object) -> None:
    extra = "".join(f' data-{k}="{html.escape(str(v))}"' for k, v in attrs.items())
    st.html(f'<div data-testid="vt-ready" data-page="{page}"{extra} style="display:none">ready</div>')


# The record and its thumbnails, loaded in a background thread: the next record of the sample is
# prefetched while the reviewer judges this one, so "next" does not wait for a video decode.
_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vt-review-prefetch")
_ahead: OrderedDict[tuple, Future] = OrderedDict()
_ahead_lock = threading.Lock()


def _load(item: SampleItem) -> tuple[VideoITGRecord, Thumbs]:
    record = fetch_records([item])[0]
    return record, decode_thumbs(record.video, record)


def _loading(item: SampleItem) -> Future:
    try:
        stamp = item.shard.stat().st_mtime_ns
    except OSError:
        stamp = -1
    key = (str(item.shard), stamp, item.row, item.record_id)
    with _ahead_lock:
        if key not in _ahead:
            _ahead[key] = _pool.submit(_load, item)
            while len(_ahead) > 16:
                _ahead.popitem(last=False)
        return _ahead[key]


def _int_param(name: str, default: int, low: int, high: int) -> int:
    """An integer URL parameter within [low, high]; a bad one falls back to the default (and says so)."""
    raw = st.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        st.sidebar.warning(f"URL parameter {name}={raw!r} is not a whole number; using {default}")
        return default
    return min(high, max(low, value))


def _pick_run(key: str) -> Path:
    runs = find_runs(_root())
    names = [r.name for r in runs]
    wanted = st.query_params.get("run") or names[-1]
    name = st.sidebar.selectbox("Run", names, index=names.index(wanted) if wanted in names else len(names) - 1, key=key)
    if st.query_params.get("run") != name:
        st.query_params["run"] = name
    return runs[names.index(name)]


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _interval(p) -> str:
    return "–" if not p.n else f"{p.value:.2f} [{p.low:.2f}, {p.high:.2f}]"


def _value(p) -> str:
    return "–" if not p.n else f"{p.value:.2f}"


def _intervals_caption(g) -> None:
    st.caption(" · ".join(f"{name} {_interval(p)} (n={p.n})" for name, p in
                          (("frame precision", g.frames), ("clip precision", g.clips), ("type accuracy", g.type_accuracy)))
               + " — value [Wilson 95% interval]")


# --------------------------------------------------------------------------- review


def _state() -> dict:
    return st.session_state.setdefault("vt-review", {"key": None, "items": [], "pos": 0, "gen": 0, "verdicts": {},
                                                     "saved": 0, "message": ""})


def _draw(run: Path, reviewer: str, size: int, seed: int, record: str | None) -> list[SampleItem]:
    index = run_index(run)
    if record:
        where = index.locate([record])
        if record not in where:
            raise ReviewError(f"record {record!r} is not a good record of run {run.name}")
        h = where[record]
        return [SampleItem(record, str(index.types[h]), index.shards[int(index.shard_no[h])], int(index.row_no[h]))]
    return draw_sample(index, size, seed, exclude=reviewed_ids(run, reviewer, index))


def _verdict_buttons(label: str, options: dict, field: str, verdict: dict, gen: int, pos: int) -> None:
    cols = st.columns([1.3] + [1] * len(options) + [3])
    cols[0].markdown(f"**{label}**")
    for col, (value, key) in zip(cols[1:], options.items()):
        text = {True: "right", False: "wrong"}.get(value, value) if isinstance(value, bool) else value

        def choose(value=value) -> None:
            verdict[field] = value

        col.button(text, key=f"rv-{field}-{text}-{gen}-{pos}", shortcut=key, on_click=choose,  # Streamlit shows the key
                   type="primary" if verdict.get(field) == value else "secondary", use_container_width=True)


def _save(run: Path, reviewer: str, record: VideoITGRecord, item: SampleItem, marks_key: str, note_key: str) -> None:
    state = _state()
    verdict = state["verdicts"].setdefault(record.id, {})
    marks = [int(m) for m in st.session_state.get(marks_key) or []]
    selected = set(record.frame_num)
    review = Review(reviewer=reviewer, record_id=record.id, record_hash=record_hash(record),
                    instruction_type=record.instruction_type, shard=item.shard.name, frames=verdict.get("frames"),
                    wrong_frames=sorted(f for f in marks if f in selected),
                    missing_frames=sorted(f for f in marks if f not in selected),
                    clips=verdict.get("clips"), type_ok=verdict.get("type_ok"), note=(st.session_state.get(note_key) or "").strip())
    if review.frames is None:
        state["message"] = "Give the frames verdict (1 right · 2 partly · 3 wrong) before saving."
        return
    append_review(run, review)
    state["saved"] += 1
    state["pos"] += 1
    state["message"] = ""


def _skip() -> None:
    state = _state()
    state["pos"] += 1
    state["message"] = ""


def _marked_strip(record: VideoITGRecord, thumbs: Thumbs, marks: list[int]) -> str:
    body = strip_html(record, thumbs)
    selected = set(record.frame_num)

    def mark(match: re.Match) -> str:
        frame = int(match.group(2))
        extra = "" if frame not in marks else (" marked-wrong" if frame in selected else " marked-missing")
        return f'<figure class="{match.group(1)}{extra}" data-frame-id="{frame}"'

    body = re.sub(r'<figure class="([^"]*)" data-frame-id="(\d+)"', mark, body)
    css = ("<style>[data-testid=review-strip] figure[data-frame-id]{cursor:pointer}"
           "[data-testid=review-strip] figure.marked-wrong{outline:3px solid #c92a2a;outline-offset:1px}"
           "[data-testid=review-strip] figure.marked-wrong::after{content:'✗';position:absolute;top:2px;right:4px;"
           "color:#c92a2a;font:bold 16px sans-serif;line-height:16px}"
           "[data-testid=review-strip] figure.marked-missing{outline:3px dashed #2f9e44;outline-offset:1px}"
           "[data-testid=review-strip] figure.marked-missing::after{content:'+';position:absolute;top:2px;right:4px;"
           "color:#2f9e44;font:bold 18px sans-serif;line-height:16px}</style>")
    return f'{css}<div data-testid="review-strip">{body}</div>'


def _earlier(run: Path, record: VideoITGRecord) -> None:
    mine = [r for r in read_reviews(run) if r.record_id == record.id]
    if not mine:
        return
    current = record_hash(record)
    st.markdown("##### Earlier reviews of this record")
    rows = [{"reviewer": r.reviewer, "time": r.reviewed_at.strftime("%Y-%m-%d %H:%M:%S"),
             "status": "current" if r.record_hash == current else "outdated (the record changed since)",
             "frames": r.frames, "clips": r.clips, "type": {True: "right", False: "wrong", None: None}[r.type_ok],
             "wrong frames": str(r.wrong_frames), "missing frames": str(r.missing_frames), "note": r.note} for r in mine]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    outdated = sum(1 for r in mine if r.record_hash != current)
    st.html(f'<div data-testid="earlier-reviews" data-current="{len(mine) - outdated}" data-outdated="{outdated}"></div>')
    if outdated:
        st.warning(f"{outdated} earlier review(s) judged an older version of this record (changed by a rerun): "
                   "they are shown as outdated and left out of the figures.")


def review() -> None:
    run = _pick_run("review-run")
    qp = st.query_params
    reviewer = st.sidebar.text_input("Reviewer", qp.get("reviewer") or default_reviewer(), key="review-reviewer").strip()
    size = int(st.sidebar.number_input("Sample size", 1, 1000, _int_param("n", 20, 1, 1000), key="review-n"))
    seed = int(st.sidebar.number_input("Seed", 0, 2**31 - 1, _int_param("seed", 0, 0, 2**31 - 1), key="review-seed"))
    record_param = qp.get("record") or None
    st.title(f"Review · {run.name}")
    try:
        Review(reviewer=reviewer, record_id="-", record_hash="-")
    except ValueError:
        st.error(f"Reviewer {reviewer!r}: use 1-64 letters, digits or . _ @ + - (the name is stored with each review).")
        _ready("review", record="", error="reviewer")
        return
    if qp.get("reviewer") != reviewer:
        qp["reviewer"] = reviewer
    state = _state()
    key = (str(run), reviewer, size, seed, record_param)
    if state["key"] != key or st.sidebar.button("Draw a new sample", key="review-redraw"):
        try:
            state.update(key=key, items=_draw(run, reviewer, size, seed, record_param), pos=0, gen=state["gen"] + 1,
                         verdicts={}, message="")
        except ReviewError as error:
            st.error(str(error))
            _ready("review", record="", error="record")
            return
    items, pos, gen = state["items"], state["pos"], state["gen"]
    st.caption(f"reviewer **{reviewer}** · seeded sample (seed {seed}) of {len(items)} good record(s), stratified by "
               "instruction type and shard; records you already reviewed are not drawn · keys: frames 1 right, 2 partly, "
               "3 wrong · clips K right, X wrong · type T right, F wrong · N save & next · click frames on the strip to mark them")
    _summary(run)
    if pos >= len(items):
        st.success(f"Sample done: {state['saved']} review(s) saved in this session. Draw a new sample for more."
                   if items else "Nothing left to draw: you reviewed every good record of this run.")
        _ready("review", record="", pos=pos, saved=state["saved"])
        return
    item = items[pos]
    try:
        with st.spinner("loading the record and its frames…"):
            record, thumbs = _loading(item).result()
    except ReviewError as error:
        st.error(str(error))
        _ready("review", record="", error="fetch")
        return
    st.subheader(f"{pos + 1} / {len(items)} · {record.question}", anchor=False)
    st.caption(f"`{record.id}` · shard `{item.shard.name}` · video `{record.video}` · type **{record.instruction_type or 'unknown'}**")
    st.markdown(f"**Answer:** {record.answer or '–'}  \n**frame_num** ({len(record.frame_num)}): `{record.frame_num}` · "
                f"**clip_num**: `{record.clip_num}`")
    if pos + 1 < len(items):
        _loading(items[pos + 1])  # prefetch the next one
    st.html(CLICK_SCRIPT, unsafe_allow_javascript=True)
    marks_key = f"marks-{gen}-{pos}"
    _strip_part(record, thumbs, marks_key)
    _verdict_part(run, reviewer, record, item, marks_key, gen, pos)
    _earlier(run, record)
    st.divider()
    show_stage_outputs(record, detail=False)
    _ready("review", record=record.id, pos=pos, saved=state["saved"])


def _part(name: str, **attrs: object) -> None:
    """A marker written last in a fragment (a fragment's rerun does not rewrite the page's vt-ready)."""
    extra = "".join(f' data-{k}="{html.escape(str(v))}"' for k, v in attrs.items())
    st.html(f'<div data-testid="vt-part" data-part="{name}"{extra} style="display:none"></div>')


# Verdict clicks and frame marks rerun only their fragment (not the strip's thumbnails or the stages):
# on a large run under load that is what keeps a click fast.
@st.fragment
def _strip_part(record: VideoITGRecord, thumbs: Thumbs, marks_key: str) -> None:
    marks = [int(m) for m in st.session_state.get(marks_key) or []]
    st.html(_marked_strip(record, thumbs, marks))
    frames_shown = sorted(set(thumbs.jpegs) | set(record.frame_num))
    with st.container(key="review-marks"):
        st.pills("Frames marked: selected → wrong, not selected → missing (click them on the strip or here)",
                 [str(f) for f in frames_shown], selection_mode="multi", key=marks_key)
    _part("marks", record=record.id, marks=",".join(map(str, marks)))


@st.fragment
def _verdict_part(run: Path, reviewer: str, record: VideoITGRecord, item: SampleItem, marks_key: str, gen: int, pos: int) -> None:
    state = _state()
    verdict = state["verdicts"].setdefault(record.id, {})
    _verdict_buttons("Frames", FRAME_KEYS, "frames", verdict, gen, pos)
    _verdict_buttons("Clips", CLIP_KEYS, "clips", verdict, gen, pos)
    _verdict_buttons(f"Type `{record.instruction_type or 'unknown'}`", TYPE_KEYS, "type_ok", verdict, gen, pos)
    note_key = f"rv-note-{gen}-{pos}"
    st.text_input("Note (optional)", key=note_key)
    cols = st.columns([1.3, 1, 1, 4])
    saved = cols[1].button("Save & next", key=f"rv-save-{gen}-{pos}", shortcut=NEXT_KEY, type="primary", on_click=_save,
                           args=(run, reviewer, record, item, marks_key, note_key), use_container_width=True)
    skipped = cols[2].button("Skip", key=f"rv-skip-{gen}-{pos}", on_click=_skip, use_container_width=True)
    if (saved or skipped) and not state["message"]:
        st.rerun()  # the whole page: the next record
    if state["message"]:
        st.error(state["message"])
    _part("verdict", record=record.id, frames=verdict.get("frames") or "", clips=verdict.get("clips") or "",
          type=verdict.get("type_ok", ""))


def _summary(run: Path) -> None:
    figures = review_figures(run)
    g = figures.groups["all"]
    cols = st.columns(5)
    cols[0].metric("reviewed records", f"{g.reviewed:,} of {g.records:,}", help=f"share {_pct(g.share_reviewed)}")
    cols[1].metric("frame precision", _value(g.frames), help="right = 1, partly = 0.5, wrong = 0")
    cols[2].metric("clip precision", _value(g.clips))
    cols[3].metric("type accuracy", _value(g.type_accuracy))
    cols[4].metric("outdated reviews", f"{figures.outdated}")
    _intervals_caption(g)


# --------------------------------------------------------------------------- figures


def _group_frame(figures: RunReview) -> pd.DataFrame:
    rows = []
    for group, g in figures.groups.items():
        for name, p in (("frame precision", g.frames), ("clip precision", g.clips), ("type accuracy", g.type_accuracy)):
            rows.append({"type": group, "figure": name, "value": p.value, "low": p.low, "high": p.high, "n": p.n})
    return pd.DataFrame(rows)


def interval_chart(frame: pd.DataFrame, x: str, title: str) -> alt.Chart:
    """Point estimates with their Wilson 95% intervals, one panel colour per figure."""
    data = frame.dropna(subset=["value"])
    if data.empty:
        data = pd.DataFrame([{x: "–", "figure": "frame precision", "value": 0.0, "low": 0.0, "high": 0.0, "n": 0}])
    base = alt.Chart(data, title=title, height=240).encode(
        x=alt.X(f"{x}:N", title=None, axis=alt.Axis(labelAngle=0)),
        xOffset="figure:N", color=alt.Color("figure:N", title=None))
    rule = base.mark_rule(strokeWidth=2).encode(y=alt.Y("low:Q", title="reviewed (95% interval)", scale=alt.Scale(domain=[0, 1])),
                                                y2="high:Q")
    point = base.mark_point(filled=True, size=70).encode(y="value:Q", tooltip=[x, "figure", "value", "low", "high", "n"])
    return rule + point


def figures_page() -> None:
    run = _pick_run("reviewed-run")
    st.title(f"Reviewed quality · {run.name}")
    figures = review_figures(run)
    g = figures.groups["all"]
    st.caption(f"{figures.reviews} review(s) by {', '.join(figures.reviewers) or 'nobody yet'}: {figures.current} current, "
               f"{figures.outdated} outdated (the record changed on a rerun), {figures.gone} of records no longer in the run. "
               "Frames: right = 1, partly = 0.5, wrong = 0; a record reviewed by several reviewers counts once (their mean). "
               "Intervals: Wilson 95%.")
    cols = st.columns(6)
    cols[0].metric("reviewed records", f"{g.reviewed:,}", help=f"of {g.records:,} good records")
    cols[1].metric("share reviewed", _pct(g.share_reviewed))
    cols[2].metric("frame precision", _value(g.frames))
    cols[3].metric("clip precision", _value(g.clips))
    cols[4].metric("type accuracy", _value(g.type_accuracy))
    kappa = figures.kappa.get("frames")
    cols[5].metric("kappa (frames)", "–" if kappa is None else f"{kappa:.2f}", help=f"{figures.double_reviewed} records reviewed twice")
    _intervals_caption(g)
    table = pd.DataFrame([{
        "type": group, "records": x.records, "reviewed": x.reviewed, "share reviewed": x.share_reviewed,
        "frame precision": x.frames.value, "frame low": x.frames.low, "frame high": x.frames.high,
        "clip precision": x.clips.value, "clip low": x.clips.low, "clip high": x.clips.high, "clips n": x.clips.n,
        "type accuracy": x.type_accuracy.value, "type low": x.type_accuracy.low, "type high": x.type_accuracy.high,
    } for group, x in figures.groups.items()])
    st.subheader("By instruction type", anchor=False)
    st.dataframe(table, hide_index=True, key="reviewed-table",
                 column_config={"share reviewed": st.column_config.NumberColumn(format="percent")})
    left, right = st.columns(2)
    left.altair_chart(interval_chart(_group_frame(figures), "type", "reviewed figures by instruction type"))
    st.subheader("Agreement between reviewers", anchor=False)
    st.caption(f"Cohen's kappa on {figures.double_reviewed} record(s) reviewed by two or more reviewers (the first two of each).")
    st.dataframe(pd.DataFrame([{"verdict": k, "kappa": v} for k, v in figures.kappa.items()]), hide_index=True)
    beside = ground_truth_beside(run, figures)
    if beside:
        st.subheader("Reviewed beside ground truth (synthetic set)", anchor=False)
        st.dataframe(pd.DataFrame(beside), hide_index=True)
    st.subheader("Trend across runs", anchor=False)
    trend = review_trend(_root())
    rows = []
    for r in trend:
        a = r.groups["all"]
        for name, p in (("frame precision", a.frames), ("clip precision", a.clips), ("type accuracy", a.type_accuracy)):
            rows.append({"run": r.run, "figure": name, "value": p.value, "low": p.low, "high": p.high, "n": p.n})
    trend_frame = pd.DataFrame(rows, columns=["run", "figure", "value", "low", "high", "n"])
    right.altair_chart(interval_chart(trend_frame, "run", "reviewed figures across runs"))
    st.dataframe(pd.DataFrame([{"run": r.run, "reviews": r.current, "outdated": r.outdated,
                                "reviewed records": r.groups["all"].reviewed,
                                "frame precision": _interval(r.groups["all"].frames),
                                "clip precision": _interval(r.groups["all"].clips),
                                "type accuracy": _interval(r.groups["all"].type_accuracy)} for r in trend]), hide_index=True)
    _ready("reviewed", run=run.name, current=figures.current, outdated=figures.outdated, reviewed=g.reviewed,
           frames_n=g.frames.n, frames=g.frames.value if g.frames.n else "", frames_low=g.frames.low if g.frames.n else "")

