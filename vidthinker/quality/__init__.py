"""Annotation quality: figures computed per shard and per run, stored next to the shards.

`compute_run_quality(run_dir)` reads a run's record shards batch by batch with column projection
(never whole records into Python) and writes

    <run>/quality/<shard stem>.json   ShardQuality: one shard's figures (reused while its content hash holds)
    <run>/quality/run.json            RunQuality: the shards merged, plus ground-truth agreement,
                                      repeated questions across videos and drift against previous runs

Figures: records and error rate by stage and by reason; frames and clips per QA (histogram, quantiles);
instruction-type mix; share of retrievals that returned no clip / every clip; caption length; tokens,
calls and latency per stage; agreement with ground truth where the manifest has it (synthetic sets);
near-duplicate questions of one video (normalised text, token Jaccard); drift against previous runs
(PSI and Jensen-Shannon divergence of the type mix and of frames/clips per QA, error-rate change).

The modules, one job each (each imports only those above it in this list):

* `agreement`: frame/clip precision and recall and type accuracy against ground truth
  (`ground_truth_agreement(records, manifest)`, record-level API).
* `distributions`: `Distribution` and the accumulator behind it; they merge across shards.
* `models`: the report models (`QualityFigures`, `ShardQuality`, `RunQuality`, `DriftReport`, ...).
* `questions`: normalised question text, near-duplicate groups of one video, the question hash.
* `merge`: errors by stage, reason and class tabulated; shard figures merged (`merge_figures`).
* `shard`: reading a shard column-wise and one shard's figures (`compute_shard_quality`).
* `drift`: PSI, Jensen-Shannon divergence and the drift report of a run against earlier ones.
* `runs`: run discovery (`find_runs`, `previous_runs`) and a run's stored figures.
* `run`: a run's figures with the cross-shard run pass and the per-shard caches (`compute_run_quality`),
  the figures and agreement of some shards of a folder (`figures_of_shards`, `agreement_of_shards`).
* `command`: the `vidthinker quality` command (registered in `vidthinker.cli`; not imported here).
"""

import importlib

# Public names and the module that defines each, imported on first use (PEP 562): importing a submodule
# (`quality.command` at `vidthinker` start) loads no pyarrow.
_EXPORTS = {
    "Agreement": "vidthinker.quality.agreement",
    "ground_truth_agreement": "vidthinker.quality.agreement",
    "Distribution": "vidthinker.quality.distributions",
    "Histogram": "vidthinker.quality.distributions",
    "merge_distributions": "vidthinker.quality.distributions",
    "drift_report": "vidthinker.quality.drift",
    "js_divergence": "vidthinker.quality.drift",
    "psi": "vidthinker.quality.drift",
    "merge_figures": "vidthinker.quality.merge",
    "DriftCheck": "vidthinker.quality.models",
    "DriftReport": "vidthinker.quality.models",
    "QualityFigures": "vidthinker.quality.models",
    "RunQuality": "vidthinker.quality.models",
    "ShardQuality": "vidthinker.quality.models",
    "ShardRef": "vidthinker.quality.models",
    "StageCost": "vidthinker.quality.models",
    "agreement_of_shards": "vidthinker.quality.run",
    "compute_run_quality": "vidthinker.quality.run",
    "figures_of_shards": "vidthinker.quality.run",
    "shard_drift": "vidthinker.quality.run",
    "shard_figures": "vidthinker.quality.run",
    "RUN_FILE": "vidthinker.quality.runs",
    "find_runs": "vidthinker.quality.runs",
    "fresh_run_quality": "vidthinker.quality.runs",
    "load_run_quality": "vidthinker.quality.runs",
    "previous_runs": "vidthinker.quality.runs",
    "quality_dir": "vidthinker.quality.runs",
    "shard_folder": "vidthinker.quality.runs",
    "shard_paths": "vidthinker.quality.runs",
    "SHARD_COLUMNS": "vidthinker.quality.shard",
    "compute_shard_quality": "vidthinker.quality.shard",
}

__all__ = [
    "RUN_FILE", "SHARD_COLUMNS", "Agreement", "Distribution", "DriftCheck", "DriftReport", "Histogram",
    "QualityFigures", "RunQuality", "ShardQuality", "ShardRef", "StageCost", "agreement_of_shards",
    "compute_run_quality", "compute_shard_quality", "drift_report", "figures_of_shards", "find_runs", "fresh_run_quality", "ground_truth_agreement",
    "js_divergence", "load_run_quality", "merge_distributions", "merge_figures", "previous_runs", "psi",
    "quality_dir", "shard_drift", "shard_figures", "shard_folder", "shard_paths",
]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
