"""Retrain-and-evaluate: everything `dags/vidthinker_train_eval.py` does, as plain functions (no Airflow).

Triggered by the `vidthinker_shards` Asset (each annotate run that added shards) or by hand:

    freeze      all record shards → a content-addressed, frozen copy `<root>/datasets/<version>/`
                (version = the trainer's data version: sha256 of shard names + bytes; the same data gives the
                same version, so a rerun reuses the copy and a model's metadata names exactly what it saw)
    train       `trainer.train.train` on the frozen copy → `<root>/runs/<run_key>/model/`   (GPU pool)
    select      `eval.lmms_select.select_manifest` on every evaluation set, for the new model and — once per
                evaluation set, kept in the registry — for the current best                (GPU pool)
    evaluate    `eval.evaluate.evaluate` per evaluation set: new model vs uniform/random baselines vs the
                current best, paired bootstrap over videos → `<root>/runs/<run_key>/eval/<set>/report.md`
    promote     `decide`: promote only if better (see `decide`); promotion copies the model into the
                registry `<root>/registry/models/<model_id>/` (checkpoint, metadata.json, predictions)
                and makes it `best` in `<root>/registry/registry.json` (with a history of every decision)
    emit        an asset event on `vidthinker_selector` with the new best (only when promoted)

Settings: the DAG params (a manual run can override each), defaulting to the `train_eval` section of
`vidthinker.config.Settings` (file `[train_eval]`, variables `VIDTHINKER_TRAIN_EVAL__<KEY>`): root (default
`<airflow.out_dir>/train_eval`), shards_dir (default `<airflow.out_dir>/shards`), eval_sets (comma-separated
manifests/benchmark files), config (train config file), preset, primary (recall@8), ks (4,8,16,32), baselines
(uniform,random), device, nproc_per_node (1; more trains under torchrun on that many local GPUs, and the train
task then takes as many slots of the GPU pool), num_frames, n_boot, promotion, config_overrides (JSON).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from vidthinker.config import TrainEvalSettings, load_section
from vidthinker.io import atomic_write_text
from vidthinker.redact import redacted_io

log = logging.getLogger(__name__)

DAG_ID = "vidthinker_train_eval"
GPU_POOL = "vidthinker_gpu"
CANDIDATE = "candidate"


# --------------------------------------------------------------------------- settings and params


def _default_out_dir() -> Path:
    return load_section("airflow").out_dir.expanduser().absolute()


class TrainEvalParams(TrainEvalSettings):
    """One run's settings: the DAG params over the `train_eval` section's defaults."""

    root: Path = Field(default_factory=lambda: _default_out_dir() / "train_eval")

    @property
    def shards(self) -> Path:
        return self.shards_dir or _default_out_dir() / "shards"


def param_defaults() -> dict[str, Any]:
    """The DAG params' defaults: the `train_eval` settings section (file, VIDTHINKER_TRAIN_EVAL__* variables),
    its root resolved against airflow.out_dir."""
    section = load_section("train_eval")
    return TrainEvalParams.model_validate(section.model_dump(exclude_none=True)).model_dump(mode="json")


def params_of(params: dict[str, Any]) -> TrainEvalParams:
    p = TrainEvalParams.model_validate({k: v for k, v in params.items() if v is not None})
    if not p.eval_sets:
        raise ValueError("no evaluation set: set the param `eval_sets` (or the setting train_eval.eval_sets, VIDTHINKER_TRAIN_EVAL__EVAL_SETS)")
    missing = [s for s in p.eval_sets if not Path(s).exists()]
    if missing:
        raise FileNotFoundError(f"evaluation sets not found: {missing}")
    return p


def run_key(run_id: str) -> str:
    from vidthinker.orchestration.tasks import run_key as annotate_run_key

    return annotate_run_key(run_id)


def run_dir(p: TrainEvalParams, run_id: str) -> Path:
    return p.root / "runs" / run_key(run_id)


def _write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, default=str))


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- freeze


def version_dir_name(version: str) -> str:
    return version.replace(":", "-")


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@redacted_io  # XCom and task errors leave the process: vidthinker.redact
def freeze(params: dict[str, Any], run_id: str, event_extras: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """Freeze the current shards (every valid parquet shard under the shards folder; the triggering events
    name the folder when they come from an annotate run with another out_dir) into a versioned copy."""
    from trainer.data import data_version

    p = params_of(params)
    datasets = p.root / "datasets"
    if p.dataset_version:
        folder = datasets / version_dir_name(p.dataset_version)
        if not (folder / "dataset.json").is_file():
            known = sorted(d.name for d in datasets.iterdir()) if datasets.is_dir() else []
            raise FileNotFoundError(f"dataset version {p.dataset_version!r} is not frozen here; known: {known}")
        return json.loads((folder / "dataset.json").read_text()) | {"reused": True}
    sources = [p.shards]
    for extra in event_extras:
        if extra.get("out_dir"):
            sources.append(Path(extra["out_dir"]) / "shards")
        for shard in extra.get("shards") or []:
            sources.append(Path(shard).parent)
    files: dict[str, Path] = {}
    for source in dict.fromkeys(sources):
        if source.is_dir():
            for f in sorted(source.glob("*.parquet")):
                if not f.name.startswith((".", "_")):
                    files.setdefault(f.name, f)
    if not files:
        raise FileNotFoundError(f"no parquet shards in {[str(s) for s in dict.fromkeys(sources)]}")
    datasets.mkdir(parents=True, exist_ok=True)
    staging = datasets / f".staging-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        for name, src in files.items():
            _link_or_copy(src, staging / name)
        version = data_version(staging)
        folder = datasets / version_dir_name(version)
        if (folder / "dataset.json").is_file():
            return json.loads((folder / "dataset.json").read_text()) | {"reused": True}
        info = {
            "version": version,
            "dir": str(folder),
            "shards": [{"name": n, "bytes": (staging / n).stat().st_size, "source": str(src)} for n, src in files.items()],
            "records": _count_records(staging),
            "frozen_at": _now(),
            "run_id": run_id,
            "note": "videos are referenced by the records' paths, not copied",
        }
        _write_json(staging / "dataset.json", info)
        if folder.exists():  # a half-made folder of an earlier crash
            shutil.rmtree(folder)
        os.replace(staging, folder)
        return info | {"reused": False}
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _count_records(folder: Path) -> dict[str, int]:
    import pyarrow.parquet as pq

    total = ok = 0
    for f in folder.glob("*.parquet"):
        if "error" in pq.read_schema(f).names:
            errors = pq.read_table(f, columns=["error"]).column("error")
            total += len(errors)
            ok += len(errors) - len(errors.drop_null())
        else:
            rows = pq.read_metadata(f).num_rows
            total += rows
            ok += rows
    return {"total": total, "ok": ok}


# --------------------------------------------------------------------------- train


@redacted_io  # XCom and task errors leave the process: vidthinker.redact
def train_model(frozen: dict[str, Any], params: dict[str, Any], run_id: str) -> dict[str, Any]:
    from trainer.config import load_train_config, preset_config
    from trainer.train import train

    p = params_of(params)
    out = run_dir(p, run_id) / "model"
    overrides = dict(p.config_overrides)
    overrides.setdefault("progress", False)
    cfg = load_train_config(p.config, **overrides)
    if p.preset:
        cfg.model = preset_config(p.preset)
    if p.nproc_per_node > 1:
        return train_distributed(frozen["dir"], out, cfg, p.nproc_per_node, p.device)
    result = train(frozen["dir"], out, cfg, device=p.device)
    if not result.completed:
        raise RuntimeError(f"training stopped at step {result.step} of {result.total_steps}")
    return {
        "checkpoint": str(result.out_dir),
        "data_version": result.data_version,
        "steps": result.step,
        "final_loss": result.losses[-1] if result.losses else None,
        "samples": result.samples,
        "elapsed_s": round(result.elapsed_s, 2),
    }


def train_distributed(shards: str | Path, out: Path, cfg, nproc: int, device: str | None) -> dict[str, Any]:
    """`vidthinker train` under `torchrun --standalone` with `nproc` processes on this node.

    The resolved TrainConfig goes to the processes as a file, so what they train is exactly what a
    one-process run would (presets and overrides applied here). Their output is streamed to this log;
    the result is read from the saved model's metadata, which only a completed run writes.
    """
    import subprocess
    import sys
    import time

    out.mkdir(parents=True, exist_ok=True)
    config_file = out.parent / "train_config.json"
    _write_json(config_file, cfg.to_dict())
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "vidthinker.cli", "train", str(shards), "--out", str(out), "--config", str(config_file),
               "--no-progress"]
    if device:
        command += ["--device", device]
    log.info("training on %d processes: %s", nproc, " ".join(command))
    # plain tracebacks from the processes: their last line ("[rankN]: SomeError: why") is the cause
    # `python -m torch.distributed.run -m vidthinker.cli`: fixed entries, never the task's `airflow`
    # script, and without the task's Airflow variables or API keys (see vidthinker/childproc.py)
    from vidthinker.childproc import child_environment

    env = child_environment(extra={"_TYPER_STANDARD_TRACEBACK": "1"})
    cause = re.compile(r"^\[rank(\d+)\]:\s*((?:\w+\.)*\w*(?:Error|Exception)\b.*)$")
    started = time.perf_counter()
    tail: list[str] = []
    causes: dict[str, str] = {}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            log.info("%s", line)
            tail = (tail + [line])[-20:]
            found = cause.match(line)
            if found and ":" in found.group(2):
                causes[found.group(1)] = found.group(2)  # the last one of each rank is its exception
    if proc.returncode != 0:
        why = "; ".join(f"rank {rank}: {text}" for rank, text in sorted(causes.items())) or "see the log above"
        raise RuntimeError(f"torchrun training exited with {proc.returncode} ({why}); last lines:\n" + "\n".join(tail))
    meta_file = out / "config.json"
    if not meta_file.is_file():
        raise RuntimeError(f"torchrun training finished without a model in {out}; last lines:\n" + "\n".join(tail))
    meta = json.loads(meta_file.read_text()).get("metadata", {})
    return {
        "checkpoint": str(out),
        "data_version": meta.get("data_version"),
        "steps": meta.get("steps"),
        "final_loss": meta.get("final_loss"),
        "samples": meta.get("train_samples"),
        "elapsed_s": round(time.perf_counter() - started, 2),
        "world_size": meta.get("world_size"),
    }


# --------------------------------------------------------------------------- registry


def registry_dir(p: TrainEvalParams) -> Path:
    return p.root / "registry"


def load_registry(p: TrainEvalParams) -> dict[str, Any]:
    path = registry_dir(p) / "registry.json"
    if path.is_file():
        return json.loads(path.read_text())
    return {"best": None, "models": {}, "history": []}


def best_model(p: TrainEvalParams) -> dict[str, Any] | None:
    reg = load_registry(p)
    return reg["models"].get(reg["best"]) if reg.get("best") else None


def eval_set_key(path: str | Path) -> str:
    """`<stem>-<hash of the file (or folder listing)>`: predictions are reused only for the same set."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
    for f in files:
        digest.update(f.name.encode())
        digest.update(f.read_bytes())
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem if path.is_file() else path.name)
    if stem == "manifest":
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", path.parent.name) or stem
    return f"{stem}-{digest.hexdigest()[:10]}"


# --------------------------------------------------------------------------- select


@redacted_io  # XCom and task errors leave the process: vidthinker.redact
def select_sets(trained: dict[str, Any], params: dict[str, Any], run_id: str) -> dict[str, Any]:
    """lmms-eval files of the new model on every evaluation set (and of the best, when not kept yet)."""
    from eval.lmms_select import select_manifest
    from trainer.inference import Selector

    p = params_of(params)
    k = max(p.ks)
    out: dict[str, Any] = {"sets": {}}
    candidate = Selector.from_pretrained(trained["checkpoint"], device=p.device)
    best = best_model(p)
    best_selector = None
    for manifest in p.eval_sets:
        key = eval_set_key(manifest)
        folder = run_dir(p, run_id) / "select" / key
        report = select_manifest(candidate, manifest, folder / CANDIDATE, k=k, num_frames=p.num_frames)
        entry: dict[str, Any] = {"manifest": manifest, "predictions": str(folder), "queries": report.queries,
                                 "failed_videos": len(report.failed_videos), "best_predictions": None}
        if best is not None:
            kept = Path(best["dir"]) / "predictions" / key
            # Folders written before integer lmms-eval doc ids (no doc_ids.jsonl) hold string ids that
            # VideoITG's readers drop: select them again rather than evaluate unreadable files.
            if not (kept / "results.jsonl").is_file() or not (kept / "doc_ids.jsonl").is_file():
                if best_selector is None:
                    best_selector = Selector.from_pretrained(best["checkpoint"], device=p.device)
                select_manifest(best_selector, manifest, kept, k=k, num_frames=p.num_frames)
            entry["best_predictions"] = str(kept)
        out["sets"][key] = entry
    return out


# --------------------------------------------------------------------------- evaluate


@redacted_io  # XCom and task errors leave the process: vidthinker.redact
def evaluate_sets(selected: dict[str, Any], params: dict[str, Any], run_id: str) -> dict[str, Any]:
    from eval.evaluate import evaluate

    p = params_of(params)
    results: dict[str, Any] = {}
    for key, entry in selected["sets"].items():
        out = run_dir(p, run_id) / "eval" / key
        result = evaluate(
            entry["manifest"],
            out,
            predictions=entry["predictions"],
            baselines=p.baselines,
            ks=p.ks,
            primary=p.primary,
            candidate=CANDIDATE,
            previous_best=entry["best_predictions"],
            n_boot=p.n_boot,
            write_k=max(p.ks),
        )
        verdict = result.report.get("verdict") or {}
        results[key] = {
            "report": str(result.paths["md"]),
            "json": str(result.paths["json"]),
            "primary": p.primary,
            "candidate_mean": (result.report["grounding"].get(CANDIDATE, {}).get("overall", {}).get(p.primary) or {}).get("mean"),
            "vs_uniform": _slim(verdict.get("vs_uniform")),
            "vs_previous_best": _slim(verdict.get("vs_previous_best")),
        }
    return {"sets": results}


def _slim(comp: dict[str, Any] | None) -> dict[str, Any] | None:
    if not comp:
        return None
    return {k: comp.get(k) for k in ("verdict", "diff", "low", "high", "n", "clusters", "candidate_mean", "reference_mean")}


# --------------------------------------------------------------------------- decide and promote


def decide(evaluation: dict[str, Any], *, has_best: bool, promotion: str = "auto") -> tuple[bool, str]:
    """Promote the new model?

    ``always`` / ``never`` force it. ``auto``: with a current best, promote only when the new model is
    significantly better than the best on the first evaluation set (95 % bootstrap interval of the paired
    difference above 0 on the primary metric) and significantly worse on none. Without a best (the first
    model), promote unless it is significantly worse than uniform sampling on some evaluation set.
    """
    if promotion == "always":
        return True, "promotion=always"
    if promotion == "never":
        return False, "promotion=never"
    sets = list(evaluation["sets"].items())
    if not sets:
        return False, "nothing was evaluated"
    if has_best:
        worse = [k for k, e in sets if (e.get("vs_previous_best") or {}).get("verdict") == "worse"]
        if worse:
            return False, f"significantly worse than the current best on {', '.join(worse)}"
        first_key, first = sets[0]
        comp = first.get("vs_previous_best") or {}
        if comp.get("verdict") == "better":
            return True, f"better than the current best on {first_key}: Δ {comp['diff']:+.4f} [{comp['low']:+.4f}, {comp['high']:+.4f}]"
        diff = comp.get("diff")
        shown = f"Δ {diff:+.4f} [{comp['low']:+.4f}, {comp['high']:+.4f}]" if diff is not None else "no paired data"
        return False, f"not significantly better than the current best on {first_key} ({shown})"
    worse = [k for k, e in sets if (e.get("vs_uniform") or {}).get("verdict") == "worse"]
    if worse:
        return False, f"first model, but significantly worse than uniform sampling on {', '.join(worse)}"
    return True, "first model: not significantly worse than uniform sampling"


@redacted_io  # XCom and task errors leave the process: vidthinker.redact
def promote(
    trained: dict[str, Any],
    frozen: dict[str, Any],
    selected: dict[str, Any],
    evaluation: dict[str, Any],
    params: dict[str, Any],
    run_id: str,
) -> dict[str, Any]:
    """Decide, and on promotion copy the model into the registry and make it the best. Every decision is
    appended to the registry's history; the run folder gets `decision.json`."""
    p = params_of(params)
    reg = load_registry(p)
    previous = reg.get("best")
    promoted, reason = decide(evaluation, has_best=previous is not None, promotion=p.promotion)
    model_id = f"selector-{run_key(run_id)}"
    decision: dict[str, Any] = {
        "run_id": run_id,
        "model_id": model_id if promoted else None,
        "candidate_checkpoint": trained["checkpoint"],
        "promoted": promoted,
        "reason": reason,
        "previous_best": previous,
        "data_version": trained.get("data_version") or frozen["version"],
        "decided_at": _now(),
        "evaluation": evaluation["sets"],
    }
    if promoted:
        target = registry_dir(p) / "models" / model_id
        staging = target.with_name(f".{model_id}.staging")
        if staging.exists():
            shutil.rmtree(staging)
        shutil.copytree(
            trained["checkpoint"], staging / "checkpoint", ignore=shutil.ignore_patterns("checkpoints", "feature_cache", "*.tmp")
        )
        for key, entry in selected["sets"].items():
            shutil.copytree(Path(entry["predictions"]) / CANDIDATE, staging / "predictions" / key)
        meta = {
            "model_id": model_id,
            "dir": str(target),
            "checkpoint": str(target / "checkpoint"),
            "data_version": decision["data_version"],
            "dataset": {k: frozen.get(k) for k in ("version", "dir", "records")},
            "train": {k: trained.get(k) for k in ("steps", "final_loss", "samples", "elapsed_s")},
            "params": p.model_dump(mode="json"),
            "evaluation": evaluation["sets"],
            "reason": reason,
            "previous_best": previous,
            "run_id": run_id,
            "promoted_at": decision["decided_at"],
        }
        _write_json(staging / "metadata.json", meta)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
        reg["models"][model_id] = meta
        reg["best"] = model_id
        decision["checkpoint"] = meta["checkpoint"]
    reg.setdefault("history", []).append(
        {k: decision[k] for k in ("run_id", "model_id", "promoted", "reason", "previous_best", "data_version", "decided_at")}
    )
    _write_json(registry_dir(p) / "registry.json", reg)
    _write_json(run_dir(p, run_id) / "decision.json", decision)
    return decision


@redacted_io  # XCom and task errors leave the process: vidthinker.redact
def asset_extra(decision: dict[str, Any]) -> dict[str, Any] | None:
    """The `vidthinker_selector` event's extra, or None (no event) when nothing was promoted."""
    if not decision.get("promoted"):
        return None
    return {
        "model_id": decision["model_id"],
        "checkpoint": decision["checkpoint"],
        "data_version": decision["data_version"],
        "previous_best": decision["previous_best"],
        "reason": decision["reason"],
        "metrics": {k: v.get("candidate_mean") for k, v in decision["evaluation"].items()},
    }
