"""Evaluation of frame selectors: grounding metrics, baselines behind one interface, downstream QA with a
Video-LLM, benchmark adapters and the comparison report (``vidthinker eval``)."""

import importlib

# Public names and the module that defines each, imported on first use (PEP 562): `import eval` (at every
# `vidthinker` start) loads no selector, PyAV or torch.
_EXPORTS = {
    "EvalItem": "eval.items",
    "auc_roc": "eval.metrics",
    "average_precision": "eval.metrics",
    "paired_bootstrap": "eval.metrics",
    "question_metrics": "eval.metrics",
    "selection_metrics": "eval.metrics",
    "wilson_interval": "eval.metrics",
    "PredictionsSelector": "eval.predictions",
    "AKSSelector": "eval.selectors",
    "FrameSelector": "eval.selectors",
    "Query": "eval.selectors",
    "RandomSelector": "eval.selectors",
    "SimilaritySelector": "eval.selectors",
    "UniformSelector": "eval.selectors",
    "VideoITGSelector": "eval.selectors",
    "aks_select": "eval.selectors",
    "select": "eval.selectors",
    "top_k": "eval.selectors",
}

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


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
