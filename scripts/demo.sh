#!/usr/bin/env bash
# Set up everything (scripts/setup.sh) and run the main job end to end on embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/vidthinker demo --out "${1:-runs/demo}"
