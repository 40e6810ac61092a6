"""The retrain-and-evaluate logic without Airflow: params, dataset freezing, the promotion rule."""

from __future__ import annotations

import pytest

from vidthinker.orchestration import train_eval as te


def evaluation(**verdicts):
    sets = {}
    for key, (vs_best, vs_uniform) in verdicts.items():
        sets[key] = {
            "vs_previous_best": None
            if vs_best is None
            else {"verdict": vs_best, "diff": 0.01, "low": -0.01, "high": 0.03},
            "vs_uniform": {"verdict": vs_uniform, "diff": 0.1, "low": 0.05, "high": 0.15},
        }
    return {"sets": sets}


def test_promotion_rule():
    # against a current best: the first set decides, no set may be significantly worse
    assert te.decide(evaluation(a=("better", "better")), has_best=True)[0] is True
    ok, why = te.decide(evaluation(a=("no significant difference", "better")), has_best=True)
    assert not ok and why.startswith("not significantly better than the current best on a")
    ok, why = te.decide(evaluation(a=("better", "better"), b=("worse", "better")), has_best=True)
    assert not ok and "worse than the current best on b" in why
    assert (
        te.decide(
            evaluation(a=("no significant difference", "better"), b=("better", "better")), has_best=True
        )[0]
        is False
    )
    # the first model: promoted unless significantly worse than uniform sampling
    assert te.decide(evaluation(a=(None, "no significant difference")), has_best=False)[0] is True
    ok, why = te.decide(evaluation(a=(None, "better"), b=(None, "worse")), has_best=False)
    assert not ok and "worse than uniform" in why
    # forced
    assert te.decide(evaluation(a=("worse", "worse")), has_best=True, promotion="always") == (
        True,
        "promotion=always",
    )
    assert te.decide(evaluation(a=("better", "better")), has_best=True, promotion="never")[0] is False
    assert te.decide({"sets": {}}, has_best=False)[0] is False


def test_params_need_existing_eval_sets(tmp_path):
    with pytest.raises(ValueError, match="eval_sets"):
        te.params_of({"root": str(tmp_path)})
    with pytest.raises(FileNotFoundError):
        te.params_of({"root": str(tmp_path), "eval_sets": [str(tmp_path / "missing.jsonl")]})
    m = tmp_path / "m.jsonl"
    m.write_text("{}\n")
    p = te.params_of(
        {"root": str(tmp_path), "eval_sets": str(m), "ks": "4, 8", "baselines": "uniform", "preset": "none"}
    )
    assert p.eval_sets == [str(m)] and p.ks == [4, 8] and p.baselines == ["uniform"] and p.preset is None


def test_env_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("VIDTHINKER_TRAIN_EVAL__EVAL_SETS", "a.jsonl,b.json")
    monkeypatch.setenv("VIDTHINKER_TRAIN_EVAL__CONFIG_OVERRIDES", '{"max_steps": 10}')
    monkeypatch.setenv("VIDTHINKER_AIRFLOW__OUT_DIR", str(tmp_path))
    d = te.param_defaults()
    assert d["eval_sets"] == ["a.jsonl", "b.json"] and d["config_overrides"] == {"max_steps": 10}
    assert d["root"] == str(tmp_path / "train_eval") and d["promotion"] == "auto"


def test_freeze_is_content_addressed_and_reusable(tmp_path, synthetic_set):
    from vidthinker.formats import read_manifest, records_from_ground_truth
    from vidthinker.schema import VideoITGRecord, write_parquet

    records = records_from_ground_truth(read_manifest(synthetic_set))
    shards = tmp_path / "shards"
    write_parquet(records[:5], VideoITGRecord, shards / "a.parquet")
    params = {"root": str(tmp_path / "te"), "shards_dir": str(shards), "eval_sets": [str(synthetic_set)]}
    first = te.freeze(params, "manual__1")
    assert first["reused"] is False and first["records"] == {"total": 5, "ok": 5}
    again = te.freeze(params, "manual__2")
    assert again["reused"] is True and again["version"] == first["version"]
    # new shards (named by an asset event from another out_dir) make a new version
    other = tmp_path / "other" / "shards"
    write_parquet(records[5:9], VideoITGRecord, other / "b.parquet")
    grown = te.freeze(
        params, "manual__3", [{"out_dir": str(tmp_path / "other"), "shards": [str(other / "b.parquet")]}]
    )
    assert grown["version"] != first["version"] and grown["records"]["total"] == 9
    # retraining on an old version by hand
    old = te.freeze({**params, "dataset_version": first["version"]}, "manual__4")
    assert old["dir"] == first["dir"] and old["reused"] is True
    with pytest.raises(FileNotFoundError, match="not frozen"):
        te.freeze({**params, "dataset_version": "sha256:nope"}, "manual__5")
    with pytest.raises(FileNotFoundError, match="no parquet"):
        te.freeze({**params, "shards_dir": str(tmp_path / "empty")}, "manual__6")


def test_eval_set_key_follows_content(tmp_path):
    a = tmp_path / "set" / "manifest.jsonl"
    a.parent.mkdir()
    a.write_text("one\n")
    key = te.eval_set_key(a)
    assert key.startswith("set-") and te.eval_set_key(a) == key
    a.write_text("two\n")
    assert te.eval_set_key(a) != key
