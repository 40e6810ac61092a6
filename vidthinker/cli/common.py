"""What every command of `vidthinker` shares: the two consoles, the exit codes, the one-line error exit,
the settings in force and the progress bar. Imports typer, rich and stdlib only: the settings library
(pydantic) loads when a command asks for its settings, so `vidthinker --help` answers at once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from vidthinker.redact import redact

if TYPE_CHECKING:
    from vidthinker.config import Settings

console = Console(stderr=True)
out = Console()


class ExitCode:
    OK = 0
    FAILED = 1
    BAD_INPUT = 2
    UNAVAILABLE = 3  # a model endpoint cannot be used at start-up
    TRANSIENT = 4  # shards failed transiently (endpoint/infrastructure): rerun the same command to repair them
    LOCKED = 5  # another run is writing the out folder


def fail(message: str, code: int = ExitCode.BAD_INPUT) -> typer.Exit:
    """Print one redacted `error:` line on stderr and return the exit to raise."""
    console.print(f"[bold red]error:[/] {escape(redact(message))}", highlight=False)
    return typer.Exit(code)


def command_settings(ctx: typer.Context, **command_overrides: object) -> Settings:
    """vidthinker.config.load_command_settings; a bad setting exits 2 with the message."""
    from vidthinker.config import ConfigError, load_command_settings

    try:
        return load_command_settings(ctx, **command_overrides)
    except ConfigError as error:
        raise fail(str(error)) from None


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Progress]:
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    ]
    with Progress(*columns, console=console, transient=False) as bar:
        bar.add_task(description, total=total, status="")
        yield bar
