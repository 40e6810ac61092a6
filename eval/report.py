"""The evaluation report: one table that says whether a selector beats uniform sampling and the last best.

``build_report`` assembles the figures (grounding metrics overall and by instruction type, QA accuracy,
paired deltas with bootstrap intervals, the verdict); ``write_report`` writes ``report.json`` (everything,
including per-question values so a later run can pair against this one), ``report.md`` and PNG plots.

Verdicts: a delta is "better" when its 95 % bootstrap interval (resampling videos) lies above 0, "worse"
when below, else "no significant difference".
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from eval.harness import SelectionRun
from eval.items import EvalItem
from eval.metrics import MetricTable, paired_bootstrap
from eval.qa import Answer, qa_paired_diff, qa_table
from vidthinker.io import atomic_write_text

REPORT_VERSION = 1
SHORT = {
    "recall": "R",
    "precision": "P",
    "f1": "F1",
    "nrecall": "nR",
    "hit": "Hit",
    "recall_tol": "R±",
    "precision_tol": "P±",
    "f1_tol": "F1±",
    "auc": "AUC",
    "ap": "mAP",
    "covered": "coverage",
}


def _clean(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def load_previous(path: str | Path) -> tuple[str, dict[str, dict[str, float]]]:
    """(selector name, per-question values) of the candidate (or champion) of an earlier ``report.json``."""
    data = json.loads(Path(path).read_text())
    name = (data.get("verdict") or {}).get("candidate") or data.get("champion")
    per_q = data.get("per_question") or {}
    if not name or name not in per_q:
        if len(per_q) == 1:
            name = next(iter(per_q))
        else:
            raise ValueError(f"{path}: no candidate selector with per-question values to compare against")
    return str(name), {
        d: {m: (math.nan if v is None else float(v)) for m, v in vals.items()}
        for d, vals in per_q[name].items()
    }


def _compare(
    a: Mapping[str, float], b: Mapping[str, float], videos: Mapping[str, str], *, n_boot: int, seed: int
) -> dict[str, Any]:
    common = [d for d in a if d in b and not math.isnan(a[d]) and not math.isnan(b[d])]
    diff = paired_bootstrap(
        [a[d] for d in common],
        [b[d] for d in common],
        [videos.get(d, d) for d in common],
        n_boot=n_boot,
        seed=seed,
    )
    out = diff.as_dict()
    out["candidate_mean"] = _clean(sum(a[d] for d in common) / len(common)) if common else None
    out["reference_mean"] = _clean(sum(b[d] for d in common) / len(common)) if common else None
    return out


def build_report(
    *,
    items: Sequence[EvalItem],
    run: SelectionRun,
    tables: Mapping[str, MetricTable],
    ks: Sequence[int],
    tolerance: int,
    primary: str,
    candidate: str | None = None,
    reference: str = "uniform",
    previous: tuple[str, Mapping[str, Mapping[str, float]]] | None = None,
    answers: Sequence[Answer] | None = None,
    qa_k: Sequence[int] | None = None,
    meta: Mapping[str, Any] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    videos = {i.doc_id: i.video for i in items}
    names = list(run.scored)
    report: dict[str, Any] = {
        "version": REPORT_VERSION,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **dict(meta or {}),
        "questions": len(items),
        "questions_with_truth": sum(i.gt_frames is not None for i in items),
        "questions_with_options": sum(i.answer is not None for i in items),
        "videos": len({i.video for i in items}),
        "failed_videos": dict(run.failed_videos),
        "ks": list(ks),
        "tolerance_s": tolerance,
        "primary": primary,
        "selectors": {
            n: {**run.selectors.get(n, {}), "seconds": round(run.seconds.get(n, 0.0), 3)} for n in names
        },
        "grounding": {},
        "qa": None,
        "comparisons": [],
        "verdict": {"candidate": candidate},
        "per_question": {},
    }
    for name in names:
        table = tables.get(name)
        if table is None or not table.rows:
            continue
        report["grounding"][name] = {
            "overall": {m: s.as_dict() for m, s in table.overall().items()},
            "by_group": {g: {m: s.as_dict() for m, s in ms.items()} for g, ms in table.by_group().items()},
        }
        report["per_question"][name] = {
            str(r["doc_id"]): {k: _clean(v) for k, v in r.items() if k not in ("doc_id", "group", "video")}
            for r in table.rows
        }
    # deltas of every selector against uniform sampling on the main Top-K metrics. Uniform's scores carry no
    # relevance, so a score-curve metric (AUC, AP) is compared with random scores instead when present.
    pk = _primary_k(primary, ks)
    delta_metrics = list(dict.fromkeys([primary, f"f1@{pk}", f"recall_tol@{pk}", "ap"]))

    def reference_for(metric: str) -> str:
        if metric.split("@")[0] in ("auc", "ap") and "random" in tables:
            return "random"
        return reference

    for metric in delta_metrics:
        ref = reference_for(metric)
        if ref not in tables or (metric == "ap" and metric != primary and ref != "random"):
            continue
        for name in names:
            if (
                (name == reference and metric.split("@")[0] in ("auc", "ap"))
                or name == ref
                or name not in tables
            ):
                continue  # uniform's score curve is not a relevance ranking
            comp = _compare(
                tables[name].values(metric), tables[ref].values(metric), videos, n_boot=n_boot, seed=seed
            )
            report["comparisons"].append({"candidate": name, "reference": ref, "metric": metric, **comp})
    if candidate and candidate in tables:
        verdict = report["verdict"]
        ref = reference_for(primary)
        if ref in tables and candidate != ref:
            verdict["vs_uniform"] = _compare(
                tables[candidate].values(primary),
                tables[ref].values(primary),
                videos,
                n_boot=n_boot,
                seed=seed,
            ) | {"reference": ref, "metric": primary}
        if previous is not None:
            prev_name, prev_values = previous
            verdict["vs_previous_best"] = _compare(
                tables[candidate].values(primary),
                {d: float(v.get(primary, math.nan)) for d, v in prev_values.items()},
                videos,
                n_boot=n_boot,
                seed=seed,
            ) | {"reference": prev_name, "metric": primary}
    if answers:
        table = qa_table(answers)
        report["qa"] = {n: {str(k): _clean(v) for k, v in cells.items()} for n, cells in table.items()}
        qa_comps = []
        for k in qa_k or sorted({a.k for a in answers}):
            for name in table:
                if name != reference and reference in table:
                    d = qa_paired_diff(answers, name, reference, k, n_boot=n_boot, seed=seed).as_dict()
                    qa_comps.append({"candidate": name, "reference": reference, "k": k, **d})
        report["qa_comparisons"] = qa_comps
        if candidate:
            report["verdict"]["qa_vs_uniform"] = [c for c in qa_comps if c["candidate"] == candidate]
        report["qa_answers"] = [_clean(a.as_dict()) for a in answers]
    return _clean(report)


def _primary_k(primary: str, ks: Sequence[int]) -> int:
    if "@" in primary:
        return int(primary.split("@", 1)[1])
    return sorted(ks)[len(ks) // 2] if ks else 8


# --------------------------------------------------------------------------- markdown


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _signed(x: Any) -> str:
    if x is None:
        return "–"
    return f"{x:+.3f}"


def _metric_label(metric: str, tolerance: int) -> str:
    name, _, k = metric.partition("@")
    short = SHORT.get(name, name)
    if name.endswith("_tol"):
        short = f"{SHORT[name].rstrip('±')}±{tolerance}s"
    return f"{short}@{k}" if k else short


def _verdict_line(label: str, comp: Mapping[str, Any], tolerance: int) -> str:
    if not comp or comp.get("n", 0) == 0:
        return f"- {label}: no paired questions"
    return (
        f"- {label} on {_metric_label(comp['metric'], tolerance)}: {_fmt(comp.get('candidate_mean'))} vs "
        f"{_fmt(comp.get('reference_mean'))}, Δ {_signed(comp.get('diff'))} "
        f"[95% CI {_signed(comp.get('low'))}, {_signed(comp.get('high'))}], n={comp['n']} questions / "
        f"{comp['clusters']} videos → **{comp['verdict']}**"
        + (" (fewer than 10 videos: treat the interval as rough)" if comp["clusters"] < 10 else "")
    )


def render_markdown(report: Mapping[str, Any], plots: Mapping[str, str] | None = None) -> str:
    tol = int(report.get("tolerance_s", 1))
    ks = list(report.get("ks", []))
    primary = str(report.get("primary"))
    pk = _primary_k(primary, ks)
    lines = ["# Selector evaluation", ""]
    src = report.get("manifest") or report.get("benchmark_file") or ""
    lines.append(
        f"Set: `{src}` ({report.get('benchmark', '')}); {report['questions']} questions over {report['videos']} videos "
        f"({report['questions_with_truth']} with truth frames, {report['questions_with_options']} multiple-choice); "
        f"{len(report.get('failed_videos') or {})} videos failed. Candidates: the 1-fps grid"
        f" (≤ {report.get('num_candidates', '–')} per video). K = {', '.join(map(str, ks))}; tolerance ±{tol} s. "
        f"Created {report['created_at']}."
    )
    lines.append("")
    verdict = report.get("verdict") or {}
    cand = verdict.get("candidate")
    lines += ["## Verdict", ""]
    if cand:
        lines.append(f"Candidate: **{cand}**; primary metric {_metric_label(primary, tol)}.")
        lines.append("")
        if verdict.get("vs_uniform"):
            lines.append(
                _verdict_line(f"vs {verdict['vs_uniform']['reference']}", verdict["vs_uniform"], tol)
            )
        if verdict.get("vs_previous_best"):
            lines.append(
                _verdict_line(
                    f"vs previous best ({verdict['vs_previous_best']['reference']})",
                    verdict["vs_previous_best"],
                    tol,
                )
            )
        for c in verdict.get("qa_vs_uniform") or []:
            lines.append(
                f"- QA ITG-{c['k']} vs UNI-{c['k']}: Δ accuracy {_signed(c.get('diff'))} "
                f"[95% CI {_signed(c.get('low'))}, {_signed(c.get('high'))}], n={c['n']} → **{c['verdict']}**"
            )
    else:
        lines.append("No candidate selector named: comparison table only.")
    lines.append("")
    grounding = report.get("grounding") or {}
    if grounding:
        cols = ["covered", "auc", "ap"] + [f"recall@{k}" for k in ks]
        cols += [f"{m}@{pk}" for m in ("precision", "f1", "nrecall", "recall_tol", "f1_tol", "hit")]
        lines += ["## Grounding (all questions with truth frames)", ""]
        lines.append("| selector | " + " | ".join(_metric_label(c, tol) for c in cols) + " | s |")
        lines.append("|---|" + "---:|" * (len(cols) + 1))
        for name, g in grounding.items():
            o = g["overall"]
            cells = [_fmt((o.get(c) or {}).get("mean")) for c in cols]
            secs = (report.get("selectors") or {}).get(name, {}).get("seconds")
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {_fmt(secs, 1)} |")
        lines.append("")
        undefined = {
            m: (next(iter(grounding.values()))["overall"].get(m) or {}).get("undefined", 0)
            for m in ("auc", "ap", primary)
        }
        lines.append(
            "Means over the questions where a metric is defined; left out (undefined): "
            + ", ".join(f"{_metric_label(m, tol)} {v}" for m, v in undefined.items())
            + ". Coverage = share of questions the selector returned scores for. Uniform's scores are a"
            " coarse-to-fine order, not relevance: its AUC/mAP are those of a relevance-blind ranking."
        )
        lines.append("")
        comps = report.get("comparisons") or []
        if comps:
            lines += ["## Δ vs uniform (paired bootstrap over videos, 95% CI)", ""]
            lines.append("| selector | metric | value | reference | reference value | Δ | 95% CI | verdict |")
            lines.append("|---|---|---:|---|---:|---:|---|---|")
            for c in comps:
                lines.append(
                    f"| {c['candidate']} | {_metric_label(c['metric'], tol)} | {_fmt(c.get('candidate_mean'))} | "
                    f"{c['reference']} | {_fmt(c.get('reference_mean'))} | {_signed(c.get('diff'))} | "
                    f"[{_signed(c.get('low'))}, {_signed(c.get('high'))}] | {c['verdict']} |"
                )
            lines.append("")
        groups = sorted({grp for g in grounding.values() for grp in g["by_group"]})
        if groups:
            for metric in dict.fromkeys([primary, "ap"]):
                lines += [f"## By instruction type: {_metric_label(metric, tol)}", ""]
                lines.append("| selector | " + " | ".join(groups) + " |")
                lines.append("|---|" + "---:|" * len(groups))
                for name, g in grounding.items():
                    cells = [
                        _fmt(((g["by_group"].get(grp) or {}).get(metric) or {}).get("mean")) for grp in groups
                    ]
                    lines.append(f"| {name} | " + " | ".join(cells) + " |")
                first = next(iter(grounding.values()))["by_group"]
                lines.append(
                    "| n | "
                    + " | ".join(
                        str(((first.get(grp) or {}).get(metric) or {}).get("n", 0)) for grp in groups
                    )
                    + " |"
                )
                lines.append("")
    qa = report.get("qa")
    if qa:
        lines += ["## Downstream QA (Video-LLM on the selected frames)", ""]
        lines.append("| selector | K | protocol | accuracy | 95% CI (Wilson) | n | unparsed | failed |")
        lines.append("|---|---:|---|---:|---|---:|---:|---:|")
        for name, cells in qa.items():
            for k, c in sorted(cells.items(), key=lambda x: int(x[0])):
                proto = f"UNI-{k}" if name == "uniform" else f"ITG-{k}"
                lines.append(
                    f"| {name} | {k} | {proto} | {_fmt(c['accuracy'])} | [{_fmt(c['low'])}, {_fmt(c['high'])}] | "
                    f"{c['n']} | {c['unparsed']} | {c['failed']} |"
                )
        lines.append("")
        qcomps = report.get("qa_comparisons") or []
        if qcomps:
            lines.append("| selector | K | Δ accuracy vs uniform | 95% CI | verdict |")
            lines.append("|---|---:|---:|---|---|")
            for c in qcomps:
                lines.append(
                    f"| {c['candidate']} | {c['k']} | {_signed(c.get('diff'))} | [{_signed(c.get('low'))}, "
                    f"{_signed(c.get('high'))}] | {c['verdict']} |"
                )
            lines.append("")
    if plots:
        lines += ["## Plots", ""]
        for title, rel in plots.items():
            lines.append(f"![{title}]({rel})")
        lines.append("")
    lines += ["## Selectors", ""]
    for name, info in (report.get("selectors") or {}).items():
        rest = ", ".join(f"{k}={v}" for k, v in info.items() if k not in ("name",))
        lines.append(f"- **{name}**: {rest}")
    failed = report.get("failed_videos") or {}
    if failed:
        lines += ["", "## Failed videos", ""]
        for video, err in failed.items():
            lines.append(f"- `{video}`: {err}")
    lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- plots


def make_plots(report: Mapping[str, Any], out_dir: Path) -> dict[str, str]:
    """PNG plots (matplotlib, Agg); returns {title: path relative to out_dir}."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plots_dir = out_dir / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    made: dict[str, str] = {}
    grounding = report.get("grounding") or {}
    ks = list(report.get("ks", []))
    tol = int(report.get("tolerance_s", 1))
    primary = str(report.get("primary"))
    if grounding and ks:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
        for name, g in grounding.items():
            for ax, metric in zip(axes, ("recall", "recall_tol")):
                ys = [(g["overall"].get(f"{metric}@{k}") or {}).get("mean") for k in ks]
                ax.plot(ks, [math.nan if y is None else y for y in ys], marker="o", label=name)
        axes[0].set_title("recall@K")
        axes[1].set_title(f"recall@K within ±{tol} s")
        for ax in axes:
            ax.set_xscale("log", base=2)
            ax.set_xticks(ks, [str(k) for k in ks])
            ax.set_xlabel("K (frames selected)")
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("mean over questions")
        axes[1].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(plots_dir / "recall_at_k.png", dpi=110)
        plt.close(fig)
        made["recall@K curves"] = "plots/recall_at_k.png"

        groups = sorted({grp for g in grounding.values() for grp in g["by_group"]})
        if groups:
            import numpy as np

            fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(groups) + 2), 4))
            width = 0.8 / max(1, len(grounding))
            x = np.arange(len(groups))
            for i, (name, g) in enumerate(grounding.items()):
                ys = [((g["by_group"].get(grp) or {}).get(primary) or {}).get("mean") for grp in groups]
                ax.bar(x + i * width, [0 if y is None else y for y in ys], width, label=name)
            ax.set_xticks(x + width * (len(grounding) - 1) / 2, groups)
            ax.set_ylabel(_metric_label(primary, tol))
            ax.set_title(f"{_metric_label(primary, tol)} by instruction type")
            ax.legend(fontsize=8)
            ax.grid(axis="y", alpha=0.3)
            fig.tight_layout()
            fig.savefig(plots_dir / "by_type.png", dpi=110)
            plt.close(fig)
            made["per-type bars"] = "plots/by_type.png"
    qa = report.get("qa")
    if qa:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, cells in qa.items():
            kk = sorted(int(k) for k in cells)
            acc = [cells[str(k)]["accuracy"] for k in kk]
            lo = [a - cells[str(k)]["low"] for a, k in zip(acc, kk)]
            hi = [cells[str(k)]["high"] - a for a, k in zip(acc, kk)]
            ax.errorbar(kk, acc, yerr=[lo, hi], marker="o", capsize=3, label=name)
        ax.set_xlabel("K (frames shown to the Video-LLM)")
        ax.set_ylabel("accuracy (95% Wilson CI)")
        ax.set_title("Downstream QA")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(plots_dir / "qa_accuracy.png", dpi=110)
        plt.close(fig)
        made["QA accuracy"] = "plots/qa_accuracy.png"
    return made


def write_report(report: dict[str, Any], out_dir: str | Path, *, plots: bool = True) -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    made = make_plots(report, out_dir) if plots else {}
    report = dict(report)
    report["plots"] = made
    paths = {"json": out_dir / "report.json", "md": out_dir / "report.md"}
    for key, text in (
        ("json", json.dumps(report, indent=1, allow_nan=False)),
        ("md", render_markdown(report, made)),
    ):
        atomic_write_text(paths[key], text)
    for rel in made.values():
        paths[rel] = out_dir / rel
    return paths
