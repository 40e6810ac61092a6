"""What a release reads from the reviews: the gate on reviewed frame precision and the dataset card's section."""

from __future__ import annotations

from pathlib import Path

from vidthinker.review.figures import review_figures
from vidthinker.review.table import review_file_names


def review_gate_failure(run_dir: str | Path, threshold: float | None) -> str | None:
    """Why a release of the run is refused: the Wilson 95% lower bound of its reviewed frame precision is
    under `threshold`, or nothing is reviewed (one line, naming the figure); None when it passes or the
    gate is off (`threshold` None: nothing is read)."""
    if threshold is None:
        return None
    figures = review_figures(run_dir)
    frames = figures.groups["all"].frames
    setting = f"publish.min_reviewed_frame_precision = {threshold:g}"
    if not frames.n:
        return (f"reviewed frame precision of {Path(run_dir).name}: no current review of the frames "
                f"({figures.outdated} outdated), so it cannot meet {setting}; review a sample in the dashboard")
    if frames.low < threshold:
        return (f"reviewed frame precision of {Path(run_dir).name}: Wilson 95% lower bound {frames.low:.3f} "
                f"({frames.value:.3f} over {frames.n} reviewed records) is under {setting}")
    return None


def card_section(run_dir: str | Path) -> str:
    """The dataset card's "Reviewed quality" section ('' when the run has no reviews)."""
    if not review_file_names(Path(run_dir)):
        return ""
    figures = review_figures(run_dir)
    rows = "\n".join(
        f"| {group} | {g.reviewed} of {g.records} ({100 * g.share_reviewed:.1f}%) | {g.frames.text()} | {g.clips.text()} | "
        f"{g.type_accuracy.text()} |" for group, g in figures.groups.items() if g.reviewed or group == "all")
    kappa = ", ".join(f"{k} {v:.2f}" for k, v in figures.kappa.items() if v is not None) or "not measured"
    return (
        "\n### Reviewed quality\n\n"
        f"Human review of a seeded, stratified sample ({figures.current} current reviews by {len(figures.reviewers)} "
        f"reviewer(s); {figures.outdated} reviews of records changed since are left out). Value [Wilson 95% interval] "
        "(n = reviewed records); frames: right = 1, partly = 0.5, wrong = 0.\n\n"
        "| instruction type | reviewed | frame precision | clip precision | type accuracy |\n"
        "| --- | --- | --- | --- | --- |\n"
        f"{rows}\n\n"
        f"Agreement between reviewers (Cohen's kappa, {figures.double_reviewed} records reviewed twice): {kappa}.\n"
    )
