"""Re-deriving a synthetic question's answer and ground-truth frames from the truth file alone."""

from __future__ import annotations

import re

import pytest

from vidthinker.schema import InstructionType


def by_name(t: dict, name: str) -> dict:
    (obj,) = [o for o in t["objects"] if o["name"] == name]
    return obj


def moving_ids(o: dict) -> list[int]:
    return o["motion"]["grid_ids"] if o["motion"] else []


HAPPENS = {
    "left": "It moves to the left",
    "right": "It moves to the right",
    "up": "It moves up",
    "down": "It moves down",
    None: "It stays still",
}


def rederive(q, t: dict) -> dict | None:
    """Re-derive a question's answer and GT frames from the truth; returns the object it is about, if one."""
    gt = q.ground_truth
    happens = HAPPENS
    obj = None
    if m := re.fullmatch(r"What colour is the (\w+)\?", q.question):
        (obj,) = [o for o in t["objects"] if o["shape"] == m[1]]
        assert q.answer == obj["colour"] and gt.frame_ids == obj["grid_ids"]
    elif m := re.fullmatch(r"What shape is the (\w+) object\?", q.question):
        (obj,) = [o for o in t["objects"] if o["colour"] == m[1]]
        assert q.answer == obj["shape"] and gt.frame_ids == obj["grid_ids"]
    elif m := re.fullmatch(r"Which way does the (\w+ \w+) move\?", q.question):
        obj = by_name(t, m[1])
        assert q.answer == obj["motion"]["direction"] and gt.frame_ids == moving_ids(obj)
        assert gt.instruction_type == InstructionType.SEMANTIC_MOTION
    elif m := re.fullmatch(r"What happens to the (\w+ \w+) after it appears\?", q.question):
        obj = by_name(t, m[1])
        direction = obj["motion"]["direction"] if obj["motion"] else None
        assert q.answer == happens[direction]
        assert gt.frame_ids == (moving_ids(obj) or obj["grid_ids"])
    elif m := re.fullmatch(r"How many (\w+)s appear in the video\?", q.question):
        group = [o for o in t["objects"] if o["shape"] == m[1]]
        assert q.answer == str(len(group))
        assert gt.frame_ids == sorted({k for o in group for k in o["grid_ids"]})
    elif q.question == "In which direction does the moving object travel?":
        (obj,) = [o for o in t["objects"] if o["motion"]]
        assert q.answer == obj["motion"]["direction"] and gt.frame_ids == moving_ids(obj)
        assert gt.instruction_type == InstructionType.MOTION_ONLY
    elif q.question == "How many objects move during the video?":
        assert q.answer == str(sum(1 for o in t["objects"] if o["motion"]))
    elif q.question == "How many objects appear in the video in total?":
        assert q.answer == str(len(t["objects"]))
    elif q.question == "How many different shapes appear in the whole video?":
        assert q.answer == str(len({o["shape"] for o in t["objects"]}))
    elif q.question == "Which shape appears first?":
        obj = min(t["objects"], key=lambda o: o["appear_s"])
        assert q.answer == obj["shape"] and gt.frame_ids == obj["grid_ids"]
    elif q.question == "What colour is the last object to appear?":
        obj = max(t["objects"], key=lambda o: o["appear_s"])
        assert q.answer == obj["colour"] and gt.frame_ids == obj["grid_ids"]
    elif q.question == "What word appears on the screen?":
        (w,) = t["texts"]
        assert q.answer == w["word"] and gt.frame_ids == w["grid_ids"]
    elif m := re.fullmatch(
        r"What colour is the first object to appear after the word (\w+) is shown\?", q.question
    ):
        (w,) = [w for w in t["texts"] if w["word"] == m[1]]
        obj = min((o for o in t["objects"] if o["appear_s"] > w["start_s"]), key=lambda o: o["appear_s"])
        assert q.answer == obj["colour"]
        assert gt.frame_ids == sorted(set(w["grid_ids"]) | set(obj["grid_ids"]))
    elif q.question in (
        "What is the first word shown on the screen?",
        "What is the last word shown on the screen?",
    ):
        w = t["texts"][0] if "first" in q.question else t["texts"][-1]
        assert len(t["texts"]) > 1 and q.answer == w["word"] and gt.frame_ids == w["grid_ids"]
    elif m := re.fullmatch(r"Which object is on the screen while the word (\w+) is shown\?", q.question):
        (w,) = [w for w in t["texts"] if w["word"] == m[1]]
        (obj,) = [o for o in t["objects"] if o["appear_s"] < w["end_s"] and o["disappear_s"] > w["start_s"]]
        assert q.answer == obj["name"]
        assert gt.frame_ids == sorted(set(w["grid_ids"]) & set(obj["grid_ids"]))
    elif m := re.fullmatch(r"Which is larger, the (\w+ \w+) or the (\w+ \w+)\?", q.question):
        a, b = by_name(t, m[1]), by_name(t, m[2])
        big, small = sorted((a, b), key=lambda o: o["area_px"], reverse=True)
        assert big["area_px"] >= 1.5 * small["area_px"] and q.answer == f"the {big['name']}"
        assert gt.frame_ids == sorted(set(a["grid_ids"]) | set(b["grid_ids"]))
    elif m := re.fullmatch(r"Does the (\w+ \w+) move horizontally or vertically\?", q.question):
        obj = by_name(t, m[1])
        horizontal = obj["motion"]["direction"] in ("left", "right")
        assert q.answer == ("horizontally" if horizontal else "vertically")
        assert gt.frame_ids == moving_ids(obj)
    elif q.question in (
        "In which direction does the first object to move travel?",
        "In which direction does the last object to start moving travel?",
    ):
        movers = sorted((o for o in t["objects"] if o["motion"]), key=lambda o: o["motion"]["start_s"])
        obj = movers[0] if "first" in q.question else movers[-1]
        assert q.answer == obj["motion"]["direction"] and gt.frame_ids == moving_ids(obj)
    elif m := re.fullmatch(r"Which object moves (to the left|to the right|up|down)\?", q.question):
        direction = m[1].split()[-1]
        (obj,) = [o for o in t["objects"] if o["motion"] and o["motion"]["direction"] == direction]
        assert q.answer == obj["name"] and gt.frame_ids == moving_ids(obj)
        assert gt.instruction_type == InstructionType.MOTION_ONLY
    elif q.question == "What is this video about?":
        assert q.answer.startswith("Coloured shapes")
        bg = t["background"]
        key = {"plain": bg.get("colour", ""), "gradient": "gradient", "noise": "noise"}.get(
            bg["kind"], {"bigbuckbunny": "rabbit", "bikes": "street"}.get(bg.get("source"), "?")
        )
        assert key in q.answer
    elif q.question == "How many different words are shown in the video?":
        assert q.answer == str(len(t["texts"]))
    elif q.question == "What kind of background does the video have?":
        assert (
            q.answer
            == {
                "plain": "a plain colour",
                "gradient": "a colour gradient",
                "noise": "a noise texture",
                "footage": "real video footage",
            }[t["background"]["kind"]]
        )
    else:
        pytest.fail(f"untested question template: {q.question!r}")
    return obj

