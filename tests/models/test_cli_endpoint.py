"""What `vidthinker annotate` shows when the endpoint fails at start-up: one line, exit 3, no traceback,
nothing written or paid."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .test_openai_compat import KEY

VIDTHINKER = str(Path(sys.executable).with_name("vidthinker"))


def annotate(manifest: Path, out: Path, base_url: str, *sets: str) -> subprocess.CompletedProcess:
    args = [VIDTHINKER]
    for s in ("annotate.oracle_captions=true", "models.backend=openai", f"models.base_url={base_url}",
              "models.caption_model=stub-model", "models.max_retries=1", *sets):
        args += ["--set", s]
    args += ["annotate", "--manifest", str(manifest), "--out", str(out)]
    env = {**os.environ, "VIDTHINKER_API_KEY": KEY}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=600, check=False)


@pytest.mark.parametrize("case", ["probe_outage", "context_too_small"])
def test_start_up_failure_is_one_line_and_exit_3(stub, synthetic_set, tmp_path, case):
    if case == "probe_outage":
        stub.fail_next("503", -1)
        expect = "structured-output probe"
    else:
        stub.state.max_model_len = 4096  # the stage-2 prompt budget alone is 8192 tokens
        expect = "max_model_len=4096"
    done = annotate(synthetic_set, tmp_path / "out", stub.base_url)
    output = done.stdout + done.stderr
    assert done.returncode == 3, output
    assert expect in output and "Traceback" not in output and KEY not in output
    assert not list((tmp_path / "out").rglob("*.parquet"))
    if case == "context_too_small":
        assert stub.count == 0  # stopped before any chat request
