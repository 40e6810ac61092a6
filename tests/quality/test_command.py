"""`vidthinker quality`: the summary it prints, the files it stores, exit 2 for a missing run folder."""

from __future__ import annotations

import shutil

from tests.demo_support import copy_run
from vidthinker.quality.runs import load_run_quality


def test_quality_command(runs, tmp_path):
    import typer
    from typer.testing import CliRunner

    from vidthinker.quality.command import quality_command

    app = typer.Typer()
    app.command("quality")(quality_command)
    app.command("noop")(lambda: None)
    run = copy_run(runs[2], tmp_path / "runs" / runs[2].name)
    copy_run(runs[0], tmp_path / "runs" / runs[0].name)
    shutil.rmtree(run / "quality", ignore_errors=True)
    done = CliRunner().invoke(app, ["quality", "--out", str(run)])
    assert done.exit_code == 0, done.output
    text = " ".join(done.output.split())
    assert "36 records" in text and "drift vs run-01" in text and (run / "quality" / "run.json").is_file()
    by_class = load_run_quality(run).errors_by_class
    assert by_class and "errors by class: " + ", ".join(f"{k} {n}" for k, n in by_class.items()) in text
    missing = CliRunner().invoke(app, ["quality", "--out", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no such run folder" in " ".join(missing.output.split())
