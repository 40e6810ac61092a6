"""Grounding metrics and intervals on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eval.metrics import (
    MetricTable,
    auc_roc,
    average_precision,
    paired_bootstrap,
    question_metrics,
    selection_metrics,
    wilson_interval,
)


def test_selection_metrics_exact_and_with_tolerance():
    # S = {1,2,3,4}, G = {3..8}: 2 hits
    m = selection_metrics([4, 2, 3, 1, 3], [8, 7, 6, 5, 4, 3], tolerance=0)
    assert m["recall"] == pytest.approx(2 / 6)
    assert m["precision"] == pytest.approx(2 / 4)
    assert m["f1"] == pytest.approx(0.4)  # 2 * (1/2 * 1/3) / (1/2 + 1/3)
    assert m["nrecall"] == pytest.approx(2 / 4)  # 2 / min(4, 6)
    assert m["hit"] == 1.0
    assert (m["recall_tol"], m["precision_tol"]) == (m["recall"], m["precision"])  # N = 0 is exact
    t = selection_metrics([1, 2, 3, 4], [3, 4, 5, 6, 7, 8], tolerance=1)
    assert t["precision_tol"] == pytest.approx(3 / 4)  # 2 (next to 3), 3, 4; not 1
    assert t["recall_tol"] == pytest.approx(3 / 6)  # 3, 4, 5 (next to 4); not 6, 7, 8
    assert t["f1_tol"] == pytest.approx(0.6)
    assert t["recall"] == pytest.approx(2 / 6)  # exact metrics unchanged by the tolerance


def test_hit_needs_the_tolerance():
    assert selection_metrics([10], [12], tolerance=1)["hit"] == 0.0
    assert selection_metrics([10], [12], tolerance=2)["hit"] == 1.0
    assert selection_metrics([10], [12], tolerance=2)["recall"] == 0.0


def test_empty_truth_is_undefined_and_empty_selection_is_zero():
    assert all(math.isnan(v) for v in selection_metrics([1, 2], []).values())
    assert all(math.isnan(v) for v in selection_metrics(None, [1]).values())  # not available for this K
    assert all(v == 0.0 for v in selection_metrics([], [1, 2]).values())
    with pytest.raises(ValueError):
        selection_metrics([1], [1], tolerance=-1)


def test_auc_hand_computed_with_ties_and_one_class():
    # positives 0.9, 0.7 vs negatives 0.8, 0.6: 3 of 4 pairs ordered right
    assert auc_roc([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx(0.75)
    # a tie counts one half: (0.5 + 1) / 2
    assert auc_roc([0.5, 0.5, 0.2], [1, 0, 0]) == pytest.approx(0.75)
    assert auc_roc([0.1, 0.2, 0.3], [1, 1, 1]) != auc_roc([0.1, 0.2, 0.3], [1, 1, 1])  # NaN
    assert math.isnan(auc_roc([0.1, 0.2], [0, 0]))
    assert auc_roc([3, 2, 1], [1, 1, 0]) == 1.0 and auc_roc([1, 2, 3], [1, 1, 0]) == 0.0


def test_average_precision_hand_computed():
    # ranks 1 (P=1, R=.5) and 3 (P=2/3, R=1)
    assert average_precision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx(0.5 + 0.5 * 2 / 3)
    # tied frames enter together: one threshold with P = 1/2, R = 1
    assert average_precision([0.5, 0.5, 0.2], [0, 1, 0]) == pytest.approx(0.5)
    assert average_precision([1, 1, 1, 1], [1, 0, 0, 0]) == pytest.approx(0.25)  # flat scores: prevalence
    assert math.isnan(average_precision([0.3, 0.2], [0, 0]))
    assert average_precision([0.3, 0.2], [1, 1]) == 1.0


def test_question_metrics_on_candidates():
    # truth frame 1 is not a candidate: AUC/AP rank the candidates only; recall still counts it
    m = question_metrics(
        [0, 2, 4, 6], [0.1, 0.9, 0.3, 0.2], {1: [2], 2: [2, 4], 8: None}, [1, 2], tolerance=0
    )
    assert m["auc"] == 1.0 and m["ap"] == 1.0
    assert m["recall@1"] == 0.5 and m["precision@1"] == 1.0
    assert m["recall@2"] == 0.5 and m["precision@2"] == 0.5
    assert math.isnan(m["recall@8"])
    empty = question_metrics([0, 1], [0.5, 0.5], {4: [0, 1]}, [])
    assert all(math.isnan(v) for v in empty.values())


def test_table_means_skip_undefined_and_group():
    t = MetricTable(
        rows=[
            {"doc_id": "a", "group": "semantic_only", "video": "v1", "auc": 1.0, "recall@4": 0.5},
            {"doc_id": "b", "group": "semantic_only", "video": "v1", "auc": float("nan"), "recall@4": 1.0},
            {"doc_id": "c", "group": "no_clues", "video": "v2", "auc": 0.5, "recall@4": 0.0},
        ]
    )
    overall = t.overall()
    assert (
        overall["auc"].mean == pytest.approx(0.75) and overall["auc"].n == 2 and overall["auc"].undefined == 1
    )
    assert overall["recall@4"].mean == pytest.approx(0.5)
    by = t.by_group()
    assert list(by) == ["no_clues", "semantic_only"]
    assert by["semantic_only"]["recall@4"].mean == pytest.approx(0.75)
    assert by["semantic_only"]["auc"].as_dict() == {"mean": 1.0, "n": 1, "undefined": 1}


def test_wilson_interval():
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_paired_bootstrap():
    b = np.linspace(0, 1, 40)
    better = paired_bootstrap(b + 0.1, b, clusters=[i // 4 for i in range(40)], n_boot=500)
    assert (
        better.diff == pytest.approx(0.1)
        and better.low == pytest.approx(0.1)
        and better.high == pytest.approx(0.1)
    )
    assert better.verdict == "better" and better.clusters == 10 and better.n == 40 and better.p_value == 0.0
    rng = np.random.default_rng(0)
    noise = rng.normal(size=60)
    same = paired_bootstrap(noise, np.zeros(60), n_boot=1000)
    assert same.low < 0 < same.high and same.verdict == "no significant difference" and 0 < same.p_value <= 1
    assert paired_bootstrap(b - 0.2, b).verdict == "worse"
    # pairs with a NaN are dropped; nothing left: no data
    assert paired_bootstrap([float("nan")], [1.0]).verdict == "no data"
    # the same seed gives the same interval
    assert (
        paired_bootstrap(noise, np.zeros(60), seed=3).low == paired_bootstrap(noise, np.zeros(60), seed=3).low
    )
