"""`eval_command` end to end: predictions folders + baselines + previous best + QA → report files."""

from __future__ import annotations

import json

import pytest

from eval.commands import eval_command
from eval.evaluate import evaluate
from eval.harness import run_selection, write_predictions
from eval.selectors import RandomSelector
from tests.eval.conftest import OracleSelector
from tests.servers.openai_stub import StubServer
from vidthinker.models.openai_compat import OpenAICompatChat, OpenAIEndpoint

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def predictions(tmp_path_factory, items, store):
    """lmms-eval files of two 'trained' selectors: one that knows the truth and a weak one."""
    root = tmp_path_factory.mktemp("predictions")
    run = run_selection(
        items, [OracleSelector(items, "new-selector"), RandomSelector(7, "last-best")], [8], store=store
    )
    write_predictions(root / "new-selector", run.scored["new-selector"], store, 8, items=items)
    write_predictions(root / "last-best" / "files", run.scored["last-best"], store, 8, items=items)
    return root


def test_eval_command_writes_the_comparison(tmp_path, synthetic_set, predictions, capsys):
    out = tmp_path / "report"
    eval_command(
        manifest=synthetic_set,
        out=out,
        predictions=predictions,
        baselines="uniform,random",
        k="2,4,8",
        previous_best=predictions / "last-best" / "files",
        bootstrap=300,
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["candidate"] == "new-selector"  # the first non-baseline selector
    assert summary["vs_uniform"] == "better" and summary["vs_previous_best"] == "better"
    report = json.loads((out / "report.json").read_text())
    assert set(report["grounding"]) == {"new-selector", "uniform", "random", "previous_best"}
    g = report["grounding"]["new-selector"]["overall"]
    assert g["covered"]["mean"] == 1.0 and g["precision@2"]["mean"] == 1.0  # the truth has >= 2 frames
    assert g["auc"]["mean"] == 1.0 and g["ap"]["mean"] == 1.0
    assert g["auc"]["undefined"] > 0  # whole-video questions: every frame is truth, AUC undefined
    types = set(report["grounding"]["uniform"]["by_group"])
    assert types == {"semantic_only", "motion_only", "semantic_motion", "no_clues"}
    v = report["verdict"]
    assert (
        v["vs_uniform"]["metric"] == "recall@8" and v["vs_uniform"]["diff"] > 0 and v["vs_uniform"]["low"] > 0
    )
    assert v["vs_previous_best"]["reference"] == "previous_best"
    comps = {(c["candidate"], c["metric"]) for c in report["comparisons"]}
    assert (
        ("new-selector", "recall@8") in comps
        and ("random", "f1@8") in comps
        and ("random", "recall_tol@8") in comps
    )
    assert set(report["per_question"]["new-selector"]) == {i for i in report["per_question"]["uniform"]}
    # baselines' predictions are written for lmms-eval; the read ones are not rewritten
    assert set(report["predictions_written"]) == {"uniform", "random"}
    assert (out / "predictions" / "uniform" / "frame_indices.jsonl").is_file()
    md = (out / "report.md").read_text()
    assert (
        "| selector | coverage | AUC | mAP | R@2 | R@4 | R@8 | P@8 | F1@8 | nR@8 | R±1s@8 | F1±1s@8 | Hit@8 | s |"
        in md
    )
    for name in ("new-selector", "uniform", "random", "previous_best"):
        assert f"| {name} |" in md
    assert "vs uniform on R@8" in md and "→ **better**" in md
    assert "## By instruction type: R@8" in md and "| n |" in md
    for png in ("recall_at_k.png", "by_type.png"):
        assert (out / "plots" / png).read_bytes()[:8] == PNG
        assert f"(plots/{png})" in md
    # a later run pairs against this report's per-question values
    again = evaluate(
        synthetic_set,
        tmp_path / "again",
        predictions=predictions / "new-selector",
        baselines=["uniform"],
        ks=[8],
        previous_best=out / "report.json",
        n_boot=300,
        plots=False,
    )
    prev = again.report["verdict"]["vs_previous_best"]
    assert (
        prev["reference"] == "new-selector"
        and prev["diff"] == 0
        and prev["verdict"] == "no significant difference"
    )


def test_evaluate_with_downstream_qa(tmp_path, synthetic_set, predictions):
    with StubServer(models=["video-llm"]) as server:
        server.state.responder = lambda body: "The best answer is B."
        chat = OpenAICompatChat(OpenAIEndpoint(base_url=server.base_url, model="video-llm", api_key=None))
        result = evaluate(
            synthetic_set,
            tmp_path / "qa",
            predictions=predictions / "new-selector",
            baselines=["uniform"],
            ks=[4],
            chat=chat,
            qa_k=[2, 4],
            qa_max_side=64,
            n_boot=200,
        )
        n_requests = server.count
    report = result.report
    n = report["questions_with_options"]
    assert n_requests == 2 * 2 * n  # 2 selectors x 2 K
    for name in ("new-selector", "uniform"):
        for k in ("2", "4"):
            cell = report["qa"][name][k]
            assert cell["n"] == n and cell["unparsed"] == 0 and cell["failed"] == 0
            assert cell["correct"] == sum(
                1
                for a in report["qa_answers"]
                if a["selector"] == name and a["k"] == int(k) and a["gold"] == "B"
            )
    assert {c["k"] for c in report["qa_comparisons"]} == {2, 4}
    md = (tmp_path / "qa" / "report.md").read_text()
    assert "| uniform | 2 | UNI-2 |" in md and "| new-selector | 4 | ITG-4 |" in md
    assert "QA ITG-2 vs UNI-2" in md
    assert (tmp_path / "qa" / "plots" / "qa_accuracy.png").read_bytes()[:8] == PNG


def test_score_curve_metrics_are_compared_with_random_not_uniform(tmp_path, synthetic_set, predictions):
    result = evaluate(
        synthetic_set,
        tmp_path / "ap",
        predictions=predictions / "new-selector",
        baselines=["uniform", "random"],
        ks=[8],
        primary="ap",
        n_boot=200,
        plots=False,
    )
    v = result.report["verdict"]["vs_uniform"]
    assert v["reference"] == "random" and v["metric"] == "ap" and v["verdict"] == "better"
    refs = {(c["metric"], c["reference"]) for c in result.report["comparisons"]}
    assert ("ap", "random") in refs and ("f1@8", "uniform") in refs and ("ap", "uniform") not in refs


def test_eval_command_registers_with_typer(tmp_path, synthetic_set, predictions):
    import typer
    from typer.testing import CliRunner

    app = typer.Typer()
    app.command("eval")(eval_command)
    app.command("noop")(lambda: None)  # two commands: `eval` is a subcommand, as in vidthinker's app
    runner = CliRunner()
    help_text = runner.invoke(app, ["eval", "--help"]).output
    for option in ("--predictions", "--manifest", "--out", "--baselines", "--previous-best", "--qa-base-url"):
        assert option in help_text
    result = runner.invoke(
        app,
        [
            "eval",
            "--manifest",
            str(synthetic_set),
            "--out",
            str(tmp_path / "cli"),
            "--predictions",
            str(predictions),
            "--baselines",
            "uniform",
            "-k",
            "4,8",
            "--bootstrap",
            "200",
            "--candidate",
            "new-selector",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["vs_uniform"] == "better"
    assert (tmp_path / "cli" / "report.md").is_file()
