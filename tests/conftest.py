"""Shared fixtures: a small synthetic grounded set (made once per session) and the strict OpenAI stub."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
# llama.cpp threads spin while waiting by default, starving everything else on a 2-core machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="session")
def synthetic_set(tmp_path_factory) -> Path:
    """Three short synthetic videos with ground truth; returns the manifest path."""
    from vidthinker.synth import generate_synthetic_set

    return generate_synthetic_set(tmp_path_factory.mktemp("synthetic"), 3, seed=11, min_seconds=20, max_seconds=32)
