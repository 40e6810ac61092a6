"""The annotation-quality dashboard: a Streamlit app over run folders (see app.py).

`dashboard(out, port, host)` is the `vidthinker dashboard` command; `streamlit_argv` is the exact
command line it runs (the tests start the app the same way).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

APP = Path(__file__).with_name("app.py")


def streamlit_argv(out: Path, *, port: int = 8501, host: str = "127.0.0.1", python: str | None = None) -> list[str]:
    """`python -m streamlit run app.py …` with a quiet, offline server configuration."""
    return [
        python or sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.port", str(port),
        "--server.address", host,
        "--server.headless", "true",
        "--server.fileWatcherType", "none",
        "--server.runOnSave", "false",
        "--browser.gatherUsageStats", "false",
        "--global.developmentMode", "false",
        "--client.toolbarMode", "viewer",
        "--theme.base", "light",
        "--",
        "--out", str(Path(out).expanduser().resolve()),
    ]


def dashboard(
    out: Annotated[Path, typer.Option("--out", "-o", help="A folder of runs, or one run folder (with shards/).")] = Path("runs"),
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8501,
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 to share on the network.")] = "127.0.0.1",
) -> None:
    """Serve the annotation-quality dashboard: run overview and trends, distributions, a record browser
    with each record's frames on a timeline, a failure browser, and human review of a sample of records
    (Review page; reviewed precision with intervals on the Reviewed-quality page).

    Quality figures are read from each run's quality/ folder; when missing or older than the shards,
    `vidthinker quality` computes and stores them in a background process (pages show them once stored).
    """
    from vidthinker.quality.runs import find_runs
    from vidthinker.schema import SchemaError

    try:
        runs = find_runs(out)
    except SchemaError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    if not runs:
        typer.echo(f"error: no runs under {out} (a run is a folder with shards/*.parquet)", err=True)
        raise typer.Exit(2)
    typer.echo(f"serving {len(runs)} run(s) from {out} on http://{host}:{port}", err=True)
    try:
        code = subprocess.call(streamlit_argv(out, port=port, host=host))
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)
