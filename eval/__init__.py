"""Evaluation of frame selectors: grounding metrics, baselines behind one interface, downstream QA with a
Video-LLM, benchmark adapters and the comparison report (``vidthinker eval``)."""

from eval.items import EvalItem
from eval.metrics import (
    auc_roc,
    average_precision,
    paired_bootstrap,
    question_metrics,
    selection_metrics,
    wilson_interval,
)
from eval.predictions import PredictionsSelector
from eval.selectors import (
    AKSSelector,
    FrameSelector,
    Query,
    RandomSelector,
    SimilaritySelector,
    UniformSelector,
    VideoITGSelector,
    aks_select,
    select,
    top_k,
)

__all__ = [
    "AKSSelector",
    "EvalItem",
    "FrameSelector",
    "PredictionsSelector",
    "Query",
    "RandomSelector",
    "SimilaritySelector",
    "UniformSelector",
    "VideoITGSelector",
    "aks_select",
    "auc_roc",
    "average_precision",
    "paired_bootstrap",
    "question_metrics",
    "select",
    "selection_metrics",
    "top_k",
    "wilson_interval",
]
