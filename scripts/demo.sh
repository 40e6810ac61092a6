#!/usr/bin/env bash
# Set up everything (scripts/setup.sh) and run the main job end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The main job as the product runs it: a local Airflow (SQLite, loopback), the annotate DAG on embedded
# Ray with the offline models, then the train-and-evaluate DAG its asset event starts. Airflow keeps
# running afterwards (the UI address is printed); `vidthinker airflow down --home runs/demo/airflow_home`
# stops it. `vidthinker demo` is the same job without Airflow.
exec .venv/bin/vidthinker airflow demo --out "${1:-runs/demo}"
