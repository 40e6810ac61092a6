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
* `run`: a run's figures with the cross-shard run pass and the per-shard caches (`compute_run_quality`).
* `command`: the `vidthinker quality` command (registered in `vidthinker.cli`; not imported here).
"""

from vidthinker.quality.agreement import Agreement, ground_truth_agreement
from vidthinker.quality.distributions import Distribution, Histogram, merge_distributions
from vidthinker.quality.drift import drift_report, js_divergence, psi
from vidthinker.quality.merge import merge_figures
from vidthinker.quality.models import (
    DriftCheck,
    DriftReport,
    QualityFigures,
    RunQuality,
    ShardQuality,
    ShardRef,
    StageCost,
)
from vidthinker.quality.run import compute_run_quality, shard_drift, shard_figures
from vidthinker.quality.runs import (
    RUN_FILE,
    find_runs,
    fresh_run_quality,
    load_run_quality,
    previous_runs,
    quality_dir,
    shard_folder,
    shard_paths,
)
from vidthinker.quality.shard import SHARD_COLUMNS, compute_shard_quality

__all__ = [
    "RUN_FILE", "SHARD_COLUMNS", "Agreement", "Distribution", "DriftCheck", "DriftReport", "Histogram",
    "QualityFigures", "RunQuality", "ShardQuality", "ShardRef", "StageCost", "compute_run_quality",
    "compute_shard_quality", "drift_report", "find_runs", "fresh_run_quality", "ground_truth_agreement",
    "js_divergence", "load_run_quality", "merge_distributions", "merge_figures", "previous_runs", "psi",
    "quality_dir", "shard_drift", "shard_figures", "shard_folder", "shard_paths",
]
