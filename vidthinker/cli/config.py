"""`vidthinker config`: the settings in force."""

from __future__ import annotations

import json

import typer

from vidthinker.cli.common import command_settings, out

config_app = typer.Typer(help="Inspect the settings in force.", no_args_is_help=True)


@config_app.command("show")
def config_show(ctx: typer.Context) -> None:
    """Print the settings in force (after file, environment and --set) as JSON."""
    out.print_json(json.dumps(command_settings(ctx.parent or ctx).dump()))
