"""`vidthinker`: the command line. Commands stay thin: they parse, validate settings, show progress,
and call the library. This package, by job:

- `__init__`: the app, its global options (--config, --set, --version), redacted tracebacks and the
  registration of every command, in the order `vidthinker --help` lists them;
- `common`: what the commands share: consoles, exit codes (`ExitCode`), the one-line error exit,
  settings loading, the progress bar;
- `annotate`: synth, probe, plan, annotate, demo;
- `data`: import, export, validate;
- `config`: config show.

Train, select, eval, quality, dashboard, serve-args, publish and airflow live beside their code. Every
command module imports typer, rich and the standard library at the top and its library (pyarrow, PyAV,
torch, Ray, Airflow, pydantic settings) inside the command, so `vidthinker --help` answers at once
(tests/test_cli.py checks what `import vidthinker.cli` loads)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from eval.commands import eval_command, select_command
from trainer.commands import train_command
from vidthinker import __version__
from vidthinker.cli import annotate as annotate_commands
from vidthinker.cli import data as data_commands
from vidthinker.cli.common import ExitCode, out
from vidthinker.cli.config import config_app
from vidthinker.dashboard import dashboard
from vidthinker.orchestration.local_stack import app as airflow_app
from vidthinker.publish.command import publish
from vidthinker.quality.command import quality_command
from vidthinker.redact import install_log_redaction, redact_exception
from vidthinker.serving import serve_args_command

__all__ = ["ExitCode", "app"]


class _RedactingTyper(typer.Typer):
    """typer.Typer whose uncaught exceptions (printed by typer as a traceback ending in their message)
    are redacted first, with their causes (vidthinker.redact)."""

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except Exception as error:
            seen, link = set(), error
            while link is not None and id(link) not in seen:
                seen.add(id(link))
                redact_exception(link)
                link = link.__cause__ or link.__context__
            raise


app = _RedactingTyper(
    name="vidthinker",
    help=(
        "Build instruction-grounded video datasets (VideoITG format) and train/benchmark the VideoITG "
        "frame selector.\n\nSettings come from --config FILE (TOML/YAML), VIDTHINKER_SECTION__KEY "
        "environment variables and --set section.key=value, in rising priority. "
        "Run `vidthinker config show` to see the values in force."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
app.add_typer(config_app, name="config")


def _version(value: bool) -> None:
    if value:
        out.print(f"vidthinker {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[
        Optional[Path], typer.Option("--config", "-c", help="Settings file (.toml/.yaml). Env: VIDTHINKER_CONFIG.")
    ] = None,
    set_: Annotated[
        Optional[list[str]],
        typer.Option("--set", "-s", help="Override one setting, e.g. --set video.clip_seconds=4 (repeatable)."),
    ] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    install_log_redaction()  # every log line of every command (and library) goes through vidthinker.redact
    ctx.obj = {"config": config, "overrides": set_ or []}


app.command()(annotate_commands.synth)
app.command()(annotate_commands.probe)
app.command()(annotate_commands.plan)
app.command()(annotate_commands.annotate)
app.command("import")(data_commands.import_)
app.command()(data_commands.export)
app.command()(data_commands.validate)
app.command()(annotate_commands.demo)


# Commands defined beside their code (their modules import the library inside the function).
app.command(name="train", help="Train the VideoITG selector on record shards (see --help).")(train_command)
app.command(name="select", help="Score a benchmark split or manifest with a selector checkpoint; write lmms-eval files (integer doc ids): results.jsonl, frame_indices.jsonl, doc_ids.jsonl.")(select_command)
app.command(name="eval", help="Compare frame selectors (grounding metrics, optional Video-LLM QA); write report.md/report.json.")(eval_command)
app.command(name="quality", help="Compute and store quality figures of a run (per shard and per run, with drift).")(quality_command)
app.command(name="dashboard", help="Serve the annotation-quality dashboard over a folder of runs.")(dashboard)
app.command(name="serve-args", help="Print the vllm serve flags (--max-model-len, --limit-mm-per-prompt) the settings need.")(serve_args_command)
app.command(name="publish", help="Publish record shards as a Hugging Face dataset (uploads only what changed; tags the version).")(publish)
app.add_typer(airflow_app, name="airflow", help="A local Airflow stack for the DAGs on loopback: up, down, status.")
