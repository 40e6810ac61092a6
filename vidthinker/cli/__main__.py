"""`python -m vidthinker.cli` (the train-eval DAG's torchrun entry, tests): the `vidthinker` command."""

import sys

from vidthinker.cli import app

sys.exit(app())
