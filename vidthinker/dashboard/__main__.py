"""`python -m vidthinker.dashboard --out DIR [--port N] [--host H]`."""

import typer

from vidthinker.dashboard import dashboard

if __name__ == "__main__":  # pragma: no cover
    typer.run(dashboard)
