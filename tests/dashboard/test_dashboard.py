"""Each dashboard view loads on synthetic runs in a real browser, its plots draw, and the record browser
highlights exactly the record's frames and clips. A screenshot of each view is saved under
tests/artifacts/dashboard/ (VIDTHINKER_TEST_ARTIFACTS overrides the folder)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

from vidthinker.quality.runs import find_runs, load_run_quality, shard_paths

READY_TIMEOUT_MS = 120_000

# What each chart drew: Vega renders SVG here (marks under g.role-mark) or canvas (non-background pixels).
DRAWN_CHARTS = """
() => Array.from(document.querySelectorAll('[data-testid="stVegaLiteChart"]')).map(chart => {
  const svg = chart.querySelector('svg');
  if (svg) {
    const box = svg.getBoundingClientRect();
    const marks = svg.querySelectorAll('g.role-mark > path, g.role-mark > rect, g.role-mark > line, g.role-mark > circle');
    return box.width > 0 && box.height > 0 ? marks.length : 0;
  }
  const canvas = chart.querySelector('canvas');
  if (canvas && canvas.width > 0 && canvas.height > 0) {
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let ink = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] > 0 && (data[i] < 235 || data[i + 1] < 235 || data[i + 2] < 235)) ink++;
    }
    return ink > 200 ? ink : 0;
  }
  return 0;
})
"""


def _open(page, url: str, view: str, **attrs: str) -> None:
    page.goto(url)
    selector = f'[data-testid="vt-ready"][data-page="{view}"]' + "".join(f'[data-{k}="{v}"]' for k, v in attrs.items())
    page.wait_for_selector(selector, state="attached", timeout=READY_TIMEOUT_MS)
    page.wait_for_timeout(800)  # let vega-embed paint
    exceptions = page.locator('[data-testid="stException"]').all_inner_texts()
    assert not exceptions, f"{view} raised: {exceptions[0][:2000]}"
    assert not page.page_errors, f"{view} page errors: {page.page_errors}"


def _shot(page, artifacts: Path, name: str) -> Path:
    path = artifacts / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def _wait_charts(page, at_least: int) -> list[int]:
    page.wait_for_function(
        f"() => document.querySelectorAll('[data-testid=\"stVegaLiteChart\"] canvas, [data-testid=\"stVegaLiteChart\"] svg').length >= {at_least}",
        timeout=30_000,
    )
    page.wait_for_timeout(500)
    return page.evaluate(DRAWN_CHARTS)


@pytest.fixture(scope="module")
def runs(demo):
    return find_runs(demo / "runs")


def test_overview_shows_runs_and_trends(page, dashboard_url, runs, artifacts):
    _open(page, dashboard_url + "/", "overview")
    drawn = _wait_charts(page, 5)
    assert len(drawn) >= 5 and all(n > 0 for n in drawn), drawn
    body = page.inner_text("body")
    for run in runs:
        quality = load_run_quality(run)  # the app stored it while drawing the page
        assert quality is not None
        assert quality.name in body
    assert "Trends across runs" in body
    _shot(page, artifacts, "overview")


def test_distributions_plots_and_drift(page, dashboard_url, runs, artifacts):
    latest = runs[-1]
    _open(page, f"{dashboard_url}/distributions?{urlencode({'run': latest.name})}", "distributions")
    drawn = _wait_charts(page, 8)
    assert len(drawn) >= 8 and all(n > 0 for n in drawn), drawn
    body = page.inner_text("body")
    assert "frames per QA" in body and "instruction types" in body
    quality = load_run_quality(latest)
    assert quality.drift is not None and quality.drift.level == "alert"  # the demo's last run drifts
    assert "Drift against previous runs" in body and "alert" in body
    assert "Near-duplicate questions" in body
    groups = quality.near_duplicates.groups
    assert {g.kind for g in groups} == {"exact", "near"}, groups  # the demo asks one question twice, reworded
    assert page.locator('[data-testid="stDataFrame"]').count() >= 5
    page.set_viewport_size({"width": 1440, "height": 3600})  # the whole page in one screenshot
    page.wait_for_timeout(500)
    _shot(page, artifacts, "distributions")


def _pick_record(run: Path, **where) -> dict:
    dataset = ds.dataset([str(p) for p in shard_paths(run)], format="parquet")
    expression = None
    for column, value in where.items():
        term = pc.field(column).is_null() if value is None else pc.field(column) == value
        expression = term if expression is None else expression & term
    table = dataset.to_table(filter=expression, columns=["id", "frame_num", "clip_num", "localization"])
    rows = [r for r in table.to_pylist() if r["localization"] and r["localization"]["duplicate_frame_ids"]] or table.to_pylist()
    return rows[0]


def test_record_browser_highlights_the_records_frames(page, dashboard_url, runs, artifacts):
    run = runs[-1]
    record = _pick_record(run, error=None, instruction_type="semantic_only")
    _open(page, f"{dashboard_url}/records?{urlencode({'run': run.name, 'record': record['id']})}", "records",
          record=record["id"])
    strip = page.locator('[data-testid="frame-strip"]')
    assert strip.count() == 1
    assert strip.get_attribute("data-record-id") == record["id"]
    selected = [int(x) for x in strip.locator("figure.selected").evaluate_all("els => els.map(e => e.dataset.frameId)")]
    assert selected == record["frame_num"]
    retrieved = [int(x) for x in strip.locator(".vt-clip.retrieved").evaluate_all("els => els.map(e => e.dataset.clipId)")]
    assert retrieved == record["clip_num"]
    duplicates = [int(x) for x in strip.locator("figure.duplicate").evaluate_all("els => els.map(e => e.dataset.frameId)")]
    assert duplicates == record["localization"]["duplicate_frame_ids"]
    # every thumbnail decoded to a real image, on a timeline with one tick per selected frame
    sizes = strip.locator("img").evaluate_all("els => els.map(e => e.naturalWidth * e.naturalHeight)")
    assert sizes and all(s > 0 for s in sizes)
    ticks = page.locator('[data-testid="frame-timeline"] .vt-tick').evaluate_all("els => els.map(e => +e.dataset.frameId)")
    assert ticks == record["frame_num"]
    body = page.inner_text("body")
    assert "Stage 1 · clip captions" in body and "Stage 2 · retrieval" in body and "Stage 3 · localization" in body
    assert record["localization"]["policy"] in body
    _shot(page, artifacts, "records")


def test_record_browser_search_and_a_broken_video(page, dashboard_url, runs, artifacts):
    run = runs[-1]
    broken = _pick_record(run, video_id="broken-upload")
    _open(page, f"{dashboard_url}/records?{urlencode({'run': run.name, 'record': broken['id']})}", "records",
          record=broken["id"])
    strip = page.locator('[data-testid="frame-strip"]')
    assert strip.get_attribute("data-error") == "1"
    assert "Cannot show frames" in strip.inner_text()
    assert "failed at probe" in page.inner_text("body")
    # typing a search narrows the listing (a real widget interaction and rerun)
    box = page.get_by_label("question contains")
    box.fill("colour")
    box.press("Enter")
    page.wait_for_function("() => /\\d+ matching records/.test(document.body.innerText) && "
                           "!document.body.innerText.includes('36 matching records')", timeout=30_000)
    dataset = ds.dataset([str(p) for p in shard_paths(run)], format="parquet")
    expected = dataset.count_rows(filter=pc.match_substring(pc.field("question"), "colour", ignore_case=True))
    page.wait_for_function(f"() => document.body.innerText.includes('{expected} matching records')", timeout=30_000)
    _shot(page, artifacts, "records-broken-video")


def test_failure_browser_filters_by_stage_and_reason(page, dashboard_url, runs, artifacts):
    run = runs[-1]
    quality = load_run_quality(run)
    reason = next(r for r in quality.errors_by_reason if r.stage == "caption")
    _open(page, f"{dashboard_url}/failures?{urlencode({'run': run.name, 'stage': 'caption', 'reason': reason.reason})}",
          "failures", stage="caption", reason=reason.reason)
    shown = int(page.locator('[data-testid="vt-ready"][data-page="failures"]').get_attribute("data-shown"))
    assert shown == reason.count
    drawn = _wait_charts(page, 1)
    assert drawn and all(n > 0 for n in drawn), drawn
    body = page.inner_text("body")
    assert f"{reason.count} matching records" in body
    # error classes: the metric row shows each, and the class filter narrows the list to that class
    assert reason.classes == {"transient": reason.count}  # the demo's caption timeouts
    assert set(quality.errors_by_class) == {"transient", "permanent"}
    words = " ".join(body.split())
    assert all(f"{kind} errors {n:,}" in words for kind, n in quality.errors_by_class.items()), words[:2000]
    _shot(page, artifacts, "failures")
    _open(page, f"{dashboard_url}/failures?{urlencode({'run': run.name, 'class': 'permanent'})}", "failures",
          error_class="permanent")
    shown = int(page.locator('[data-testid="vt-ready"][data-page="failures"]').get_attribute("data-shown"))
    assert shown == quality.errors_by_class["permanent"] < quality.errors
    # unfiltered: every failed record of the run
    _open(page, f"{dashboard_url}/failures?{urlencode({'run': run.name})}", "failures", stage="", reason="")
    assert int(page.locator('[data-testid="vt-ready"][data-page="failures"]').get_attribute("data-shown")) == quality.errors
