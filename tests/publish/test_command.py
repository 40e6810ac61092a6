"""The `vidthinker publish` command: options, output and exit codes."""

from __future__ import annotations

from tests.publish.conftest import USER


def test_cli_command(hub, run_one_shard):
    import typer
    from typer.testing import CliRunner

    from vidthinker.publish.command import publish

    app = typer.Typer()
    app.command()(publish)
    app.command("noop")(lambda: None)  # keep `publish` a subcommand, as in the vidthinker CLI
    runner = CliRunner()
    done = runner.invoke(app, ["publish", "--out", str(run_one_shard), "--repo-id", f"{USER}/cli-ds", "--public"])
    assert done.exit_code == 0, done.output
    assert "tag v1" in " ".join(done.output.split()) and hub.state.repos[("dataset", f"{USER}/cli-ds")].private is False
    failed = runner.invoke(app, ["publish", "--out", str(run_one_shard), "--repo-id", "not a repo"])
    assert failed.exit_code == 2 and "must look like" in failed.output


def test_data_file_size_comes_from_the_settings_and_the_flag_wins(hub, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from tests.publish.conftest import synthetic_run
    from vidthinker.cli import app

    monkeypatch.delenv("VIDTHINKER_PUBLISH__DATA_FILE_MB", raising=False)
    run = synthetic_run(tmp_path / "run", shards=3, per_shard=3)

    def data_files(*args: str) -> list[str]:
        done = CliRunner().invoke(app, [*args, "--out", str(run), "--repo-id", f"{USER}/sizes", "--dry-run"])
        assert done.exit_code == 0, done.output
        return sorted(p.name for p in (run / "_hf" / f"{USER}__sizes" / "data").iterdir())

    assert len(data_files("publish")) == 1  # 256 MB: every shard in one file
    assert len(data_files("--set", "publish.data_file_mb=0.000001", "publish")) == 3  # one byte: a file per shard
    monkeypatch.setenv("VIDTHINKER_PUBLISH__DATA_FILE_MB", "0.000001")
    assert len(data_files("publish")) == 3
    assert len(data_files("publish", "--data-file-mb", "256")) == 1
    monkeypatch.setenv("VIDTHINKER_PUBLISH__DATA_FILE_MB", "lots")
    bad = CliRunner().invoke(app, ["publish", "--out", str(run), "--repo-id", f"{USER}/sizes", "--dry-run"])
    assert bad.exit_code == 2 and "publish.data_file_mb = 'lots'" in bad.output
    assert "VIDTHINKER_PUBLISH__DATA_FILE_MB" in bad.output
