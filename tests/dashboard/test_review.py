"""The review flow as a reviewer does it, in real headless Chromium: open a run's review page, review five
records with clicks and keyboard shortcuts (marking a frame on the strip), see the figures update; the
reviews survive a restart of the app; a review of a record changed by a rerun shows as outdated.
Screenshots: tests/artifacts/dashboard/review.png, reviewed-figures.png, review-outdated.png."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.dashboard.conftest import CHROMIUM, CHROMIUM_ARGS, _free_port, _need_browser
from vidthinker.quality.run import compute_run_quality
from vidthinker.quality.runs import find_runs
from vidthinker.review import RunReview, read_reviews, record_hash, review_figures
from vidthinker.schema import VideoITGRecord, validate_row
from vidthinker.shards import read_shard_manifest, write_shard

READY_MS = 120_000


class App:
    """`vidthinker dashboard`'s Streamlit app over `root`, restartable (same port)."""

    def __init__(self, root: Path, log: Path):
        self.root, self.log, self.port, self.proc = root, log, _free_port(), None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from vidthinker.dashboard import streamlit_argv

        env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", "HOME": str(self.log.parent)}
        with self.log.open("a") as handle:
            self.proc = subprocess.Popen(streamlit_argv(self.root, port=self.port, python=sys.executable), stdout=handle,
                                         stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"dashboard exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"dashboard did not answer within 90 s:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


@pytest.fixture(scope="module")
def review_root(demo, tmp_path_factory) -> Path:
    """A private copy of the demo runs (reviews are written into it), quality figures stored (ground truth beside)."""
    _need_browser()
    root = tmp_path_factory.mktemp("review") / "runs"
    shutil.copytree(demo / "runs", root)
    for run in find_runs(root):
        compute_run_quality(run)
    return root


@pytest.fixture(scope="module")
def app(review_root, tmp_path_factory):
    server = App(review_root, tmp_path_factory.mktemp("review-app") / "streamlit.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def chromium(app):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def tab(chromium):
    context = chromium.new_context(viewport={"width": 1440, "height": 2200})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.page_errors = errors  # type: ignore[attr-defined]
    yield page
    context.close()


def _ready(page, view: str, **attrs) -> dict:
    selector = f'[data-testid="vt-ready"][data-page="{view}"]' + "".join(f'[data-{k}="{v}"]' for k, v in attrs.items())
    page.wait_for_selector(selector, state="attached", timeout=READY_MS)
    exceptions = page.locator('[data-testid="stException"]').all_inner_texts()
    assert not exceptions, f"{view} raised: {exceptions[0][:2000]}"
    assert not page.page_errors, page.page_errors
    return page.locator(selector).evaluate("e => Object.assign({}, e.dataset)")


def _part(page, name: str, **attrs) -> None:
    selector = f'[data-testid="vt-part"][data-part="{name}"]' + "".join(f'[data-{k}="{v}"]' for k, v in attrs.items())
    page.wait_for_selector(selector, state="attached", timeout=READY_MS)
    exceptions = page.locator('[data-testid="stException"]').all_inner_texts()
    assert not exceptions, f"{name} raised: {exceptions[0][:2000]}"


def _button(page, field: str, value: str):
    return page.locator(f'[class*="st-key-rv-{field}-{value}-"] button')


def _shot(page, artifacts: Path, name: str) -> None:
    path = artifacts / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


RUN_INDEX = -1  # the demo's last run


def _run(review_root: Path) -> Path:
    return find_runs(review_root)[RUN_INDEX]


def _expected_precision(figures: RunReview) -> float:
    return figures.groups["all"].frames.value


def test_review_five_records_with_clicks_and_keys(tab, app, review_root, artifacts):
    run = _run(review_root)
    page = tab
    page.goto(f"{app.url}/review?{urlencode({'run': run.name, 'reviewer': 'alice', 'n': 5, 'seed': 1})}")
    state = _ready(page, "review", pos=0)
    assert "0 of" in page.inner_text('[data-testid="stMetric"] >> nth=0')  # nothing reviewed yet
    page.evaluate("window.__sameDocument = 'yes'")  # survives reruns, not a page load
    # the strip highlights the record's frames, exactly as the record browser does
    first = state["record"]
    strip = page.locator('[data-testid="review-strip"] [data-testid="frame-strip"]')
    assert strip.get_attribute("data-record-id") == first
    selected = [int(x) for x in strip.locator("figure.selected").evaluate_all("els => els.map(e => e.dataset.frameId)")]
    assert selected and selected == sorted(selected)

    plan = [  # (frames, clips, type, by) per record; by = "click" or "keys"
        ("right", "right", "right", "click"),
        ("partly", "wrong", "wrong", "keys"),
        ("wrong", "right", "right", "click"),
        ("right", "right", "right", "keys"),
        ("partly", "right", "wrong", "keys"),
    ]
    keys = {"frames": {"right": "1", "partly": "2", "wrong": "3"}, "clips": {"right": "k", "wrong": "x"},
            "type": {"right": "t", "wrong": "f"}}
    seen = []
    marked = None
    for pos, (frames, clips, kind, by) in enumerate(plan):
        state = _ready(page, "review", pos=pos)
        seen.append(state["record"])
        if pos == 0:  # mark one selected frame wrong and one other frame missing, by clicking them on the strip
            strip = page.locator('[data-testid="review-strip"]')
            wrong = int(strip.locator("figure.selected").first.get_attribute("data-frame-id"))
            other = int(strip.locator("figure:not(.selected)").first.get_attribute("data-frame-id"))
            strip.locator(f'figure[data-frame-id="{wrong}"]').click()
            _part(page, "marks", marks=str(wrong))
            page.locator(f'[data-testid="review-strip"] figure[data-frame-id="{other}"]').click()
            _part(page, "marks", marks=",".join(map(str, sorted([wrong, other]))))
            assert page.locator(f'[data-testid="review-strip"] figure.marked-wrong[data-frame-id="{wrong}"]').count() == 1
            assert page.locator(f'[data-testid="review-strip"] figure.marked-missing[data-frame-id="{other}"]').count() == 1
            marked = (wrong, other)
        type_value = {"right": "True", "wrong": "False"}[kind]
        if by == "click":
            _button(page, "frames", frames).click()
            _part(page, "verdict", record=state["record"], frames=frames)
            _button(page, "clips", clips).click()
            _part(page, "verdict", record=state["record"], clips=clips)
            _button(page, "type_ok", kind).click()
            _part(page, "verdict", record=state["record"], type=type_value)
            if pos == 0:
                note = page.get_by_label("Note (optional)")
                note.fill("frame marks test")
                note.press("Enter")
                page.wait_for_timeout(500)
                _shot(page, artifacts, "review")
            page.locator('[class*="st-key-rv-save-"] button').click()
        else:
            page.locator("h1").first.click()  # focus the page, not an input
            page.keyboard.press(keys["frames"][frames])
            _part(page, "verdict", record=state["record"], frames=frames)
            page.keyboard.press(keys["clips"][clips])
            _part(page, "verdict", record=state["record"], clips=clips)
            page.keyboard.press(keys["type"][kind])
            _part(page, "verdict", record=state["record"], type=type_value)
            page.keyboard.press("n")
    _ready(page, "review", pos=5, saved=5)
    assert page.evaluate("window.__sameDocument") == "yes"  # every next record came without a page load
    assert len(set(seen)) == 5

    reviews = read_reviews(run)
    assert [r.record_id for r in reviews] == seen
    assert [(r.frames, r.clips, r.type_ok) for r in reviews] == [
        (f, c, t == "right") for f, c, t, _ in plan]
    assert (reviews[0].wrong_frames, reviews[0].missing_frames) == ([marked[0]], [marked[1]])
    assert reviews[0].note == "frame marks test"
    # the figures updated: on the review page and on the figures page
    page.wait_for_function("() => document.body.innerText.includes('5 of ')", timeout=30_000)
    figures = review_figures(run)
    assert figures.groups["all"].reviewed == 5
    assert figures.groups["all"].frames.value == pytest.approx((1 + 0.5 + 0 + 1 + 0.5) / 5)
    page.goto(f"{app.url}/reviewed?{urlencode({'run': run.name})}")
    state = _ready(page, "reviewed", run=run.name)
    assert state["reviewed"] == "5" and state["current"] == "5"
    assert float(state["frames"]) == pytest.approx(0.6)
    page.wait_for_timeout(1000)
    assert page.locator('[data-testid="stVegaLiteChart"]').count() >= 2
    body = page.inner_text("body")
    assert "Reviewed beside ground truth" in body and "Trend across runs" in body
    _shot(page, artifacts, "reviewed-figures")


def test_reviews_survive_a_restart_and_are_not_drawn_again(tab, app, review_root):
    run = _run(review_root)
    before = [r.record_id for r in read_reviews(run)]
    assert len(before) == 5, "runs after the five-record review"
    app.stop()
    app.start()
    page = tab
    page.goto(f"{app.url}/reviewed?{urlencode({'run': run.name})}")
    state = _ready(page, "reviewed", run=run.name)
    assert state["reviewed"] == "5" and float(state["frames"]) == pytest.approx(0.6)
    # the same reviewer, seed and size draw other records: the reviewed ones are not drawn again
    page.goto(f"{app.url}/review?{urlencode({'run': run.name, 'reviewer': 'alice', 'n': 5, 'seed': 1})}")
    drawn = []
    for pos in range(3):
        state = _ready(page, "review", pos=pos)
        drawn.append(state["record"])
        page.locator('[class*="st-key-rv-skip-"] button').click()
    assert not set(drawn) & set(before)


def test_a_review_of_a_record_changed_by_a_rerun_is_outdated(tab, app, review_root, artifacts):
    run = _run(review_root)
    reviewed = read_reviews(run)[0]
    # a rerun rewrites the record's shard: its frames changed
    shard = next(p for p in sorted((run / "shards").glob("*.parquet")) if p.name == reviewed.shard)
    import pyarrow.parquet as pq

    rows = pq.read_table(shard).to_pylist()
    records = [validate_row(VideoITGRecord, row, source=str(shard)) for row in rows]
    changed = []
    for record in records:
        if record.id == reviewed.record_id:
            frames = sorted(set(record.frame_num[1:]) | {max(record.frame_num) + 1})
            record = record.model_copy(update={"frame_num": frames})
            assert record_hash(record) != reviewed.record_hash
        changed.append(record)
    manifest = read_shard_manifest(shard)
    write_shard(changed, shard, shard_id=manifest.shard_id if manifest else None,
                video_ids=manifest.video_ids if manifest else None)
    figures = review_figures(run)
    assert (figures.outdated, figures.groups["all"].reviewed) == (1, 4)

    page = tab
    page.goto(f"{app.url}/review?{urlencode({'run': run.name, 'reviewer': 'bob', 'record': reviewed.record_id})}")
    _ready(page, "review", record=reviewed.record_id)
    earlier = page.locator('[data-testid="earlier-reviews"]')
    assert (earlier.get_attribute("data-outdated"), earlier.get_attribute("data-current")) == ("1", "0")
    assert "judged an older version of this record" in page.inner_text("body")  # the warning (the table is a canvas)
    _shot(page, artifacts, "review-outdated")
    page.goto(f"{app.url}/reviewed?{urlencode({'run': run.name})}")
    state = _ready(page, "reviewed", run=run.name)
    assert (state["outdated"], state["reviewed"]) == ("1", "4")


def test_bad_review_requests_are_named(tab, app, review_root):
    run = _run(review_root)
    page = tab
    page.goto(f"{app.url}/review?{urlencode({'run': run.name, 'reviewer': 'a b/c'})}")
    _ready(page, "review", error="reviewer")
    assert "Reviewer 'a b/c': use 1-64 letters" in page.inner_text("body")
    page.goto(f"{app.url}/review?{urlencode({'run': run.name, 'reviewer': 'carol', 'record': 'no-such/q1'})}")
    _ready(page, "review", error="record")
    assert f"record 'no-such/q1' is not a good record of run {run.name}" in page.inner_text("body")
    page.goto(f"{app.url}/review?{urlencode({'run': run.name, 'reviewer': 'carol', 'n': 'many', 'seed': 2})}")
    _ready(page, "review", pos=0)
    assert "URL parameter n='many' is not a whole number; using 20" in page.inner_text("body")
