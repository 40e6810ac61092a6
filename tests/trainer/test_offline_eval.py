"""bench/selector_offline.py: its metric helpers (the full run trains a 135M LM; it is not run here)."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "selector_offline.py"


def _module():
    spec = importlib.util.spec_from_file_location("selector_offline", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_topk_and_metrics():
    m = _module()
    # score desc, ties broken by the lower grid id
    assert m.topk_grid([0, 1, 2, 3], [0.1, 0.9, 0.9, 0.5], 2) == {1, 2}
    assert m.topk_grid([0, 1, 2, 3], [0.5, 0.5, 0.5, 0.5], 3) == {0, 1, 2}
    r, p = m.sel_metrics({1, 2, 3, 4}, {2, 4, 9}, 4)
    assert math.isclose(r, 2 / 3) and math.isclose(p, 2 / 4)


def test_aggregate_by_type():
    m = _module()
    rows = []
    for kind, value in (("semantic_only", 1.0), ("motion_only", 0.0), ("motion_only", 0.5)):
        entry = {"type": kind}
        for method in m.METHODS:
            entry[method] = {"R@4": value, "P@4": value / 2}
        rows.append(entry)
    table = m.aggregate(rows, [4])
    assert table["trained"]["overall"]["n"] == 3
    assert math.isclose(table["trained"]["overall"]["R@4"], 0.5)
    assert math.isclose(table["uniform"]["motion_only"]["P@4"], 0.125)
    assert table["random"]["no_clues"]["n"] == 0 and math.isnan(table["random"]["no_clues"]["R@4"])
    text = m.format_table(table, [4])
    assert "| motion_only | 2 | trained | 0.250 | 0.125 |" in text


def test_help():
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, check=True)
    assert "--train-videos" in out.stdout and "recall@K" in out.stdout
