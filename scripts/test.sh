#!/usr/bin/env bash
# Set up everything (scripts/setup.sh) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export AIRFLOW__CORE__LOAD_EXAMPLES=False
# Imports point one way (contracts in pyproject.toml); fail in seconds, before the long suite.
.venv/bin/lint-imports --no-cache
exec .venv/bin/python -m pytest "$@"
