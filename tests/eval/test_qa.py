"""Downstream QA: answer parsing, the prompt, and the harness against the strict OpenAI stub server."""

from __future__ import annotations

import asyncio

import pytest

from eval.items import EvalItem
from eval.qa import QARunner, format_prompt, parse_choice, qa_paired_diff, qa_table
from eval.selectors import UniformSelector
from tests.eval.conftest import image_urls, parse_prompt, prompt_text
from tests.servers.openai_stub import StubServer
from vidthinker.models.openai_compat import OpenAICompatChat, OpenAIEndpoint
from vidthinker.video import jpeg_data_url

OPTS = ["red circle", "blue square", "dark red circle", "green star"]


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("B", "B"),
        ("  (C) ", "C"),
        ("D.", "D"),
        ("[A]", "A"),
        ("**B**", "B"),
        ("Answer: C", "C"),
        ("The best answer is: D", "D"),
        ("The answer is (B) because it moves.", "B"),
        ("I think the correct option is A.", "A"),
        ("B. blue square", "B"),
        ("D: green star", "D"),
        ("C) dark red circle", "C"),
        ("After watching, the object was the blue square.", "B"),  # option text
        ("dark red circle", "C"),  # "red circle" is inside it: the longer text wins
        ("Green star.", "D"),
        ("A red circle appears, so the answer should be (D).", "D"),  # "A" here is the article
        ("Based on the frames it is D", "D"),  # "Based" is not a B
        ("A", "A"),
        ("E", None),  # not one of the four letters
        ("I cannot tell from these frames.", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_choice(reply, expected):
    assert parse_choice(reply, OPTS) == expected


def test_parse_choice_five_options_and_no_options():
    assert parse_choice("E", ["a", "b", "c", "d", "e"]) == "E"
    assert parse_choice("(C)", []) == "C"


def test_prompt_is_videomme_style():
    text = format_prompt("What colour is the circle?", ["red", "blue", "green"])
    assert text.splitlines() == [
        (
            "Select the best answer to the following multiple-choice question based on the video. "
            "Respond with only the letter (A, B, or C) of the correct option."
        ),
        "What colour is the circle?",
        "A. red",
        "B. blue",
        "C. green",
        "The best answer is:",
    ]


def scripted_reply(body, items_by_question):
    """Correct letter for most questions; some wrong, some malformed, in various shapes."""
    question, options = parse_prompt(prompt_text(body))
    key = (question, tuple(options.values()))
    item = items_by_question[key]
    n = len(image_urls(body))
    index = sorted(items_by_question).index(key)
    gold = item.answer
    wrong = next(letter for letter in options if letter != gold)
    shapes = [
        gold,
        f"({gold})",
        f"Answer: {gold}",
        f"The best answer is {gold}.",
        f"{gold}. {options[gold]}",
        f"It shows the {options[gold]}.",
        "I am not sure what happens.",  # unparsable
        wrong,
    ]
    if n == 2:  # the K=2 run answers wrongly more often
        shapes = shapes[:3] + [wrong, wrong, "no idea", wrong, wrong]
    return shapes[index % len(shapes)]


def test_qa_harness_against_the_stub_server(items, store):
    from collections import Counter

    # the scripted model tells questions apart by their text and options: keep those that are unique
    keys = Counter((i.question, i.options) for i in items if i.answer is not None)
    qa_items = [i for i in items if i.answer is not None and keys[(i.question, i.options)] == 1]
    assert len(qa_items) >= 10
    by_question = {(i.question, i.options): i for i in qa_items}
    sel = UniformSelector()
    with StubServer(models=["video-llm"], api_key="sk-qa-SECRET") as server:
        server.state.responder = lambda body: scripted_reply(body, by_question)
        chat = OpenAICompatChat(
            OpenAIEndpoint(base_url=server.base_url, model="video-llm", api_key="sk-qa-SECRET", max_retries=0)
        )
        runner = QARunner(chat, store, max_side=96, concurrency=4)
        jobs = {}
        for item in qa_items:
            ids = store.grid_ids(item.video)
            for k in (2, 4):
                chosen = sorted(
                    sel.choose(item.video, None, ids, None, k), reverse=True
                )  # order must not matter
                jobs.setdefault(item.video, []).append((item, "uniform", k, chosen))

        async def go():
            for video_jobs in jobs.values():
                await runner.answer_video(video_jobs)
            await chat.aclose()

        asyncio.run(go())
        requests = server.requests
    assert len(runner.answers) == 2 * len(qa_items) == len(requests)
    # frames are JPEG image parts in time order, then the prompt text
    first = next(r["body"] for r in requests if len(image_urls(r["body"])) == 4)
    question, options = parse_prompt(prompt_text(first))
    item = by_question[(question, tuple(options.values()))]
    ids = sorted(sel.choose(item.video, None, store.grid_ids(item.video), None, 4))
    frames = store.frames(item.video, ids)
    assert image_urls(first) == [jpeg_data_url(f, max_side=96) for f in frames]
    content = first["messages"][0]["content"]
    assert [p["type"] for p in content] == ["image_url"] * 4 + ["text"]
    assert first["temperature"] == 0.0 and first["max_tokens"] == 16
    # scoring: every reply shape parses to the intended letter; unparsable ones count as wrong
    for a in runner.answers:
        assert a.frames == sorted(a.frames) and a.error is None
        if a.reply in ("I am not sure what happens.", "no idea"):
            assert a.parsed is None and not a.correct
        elif a.reply != a.gold and a.parsed == a.gold:
            assert a.correct
    table = qa_table(runner.answers)
    cell4, cell2 = table["uniform"][4], table["uniform"][2]
    assert cell4["n"] == cell2["n"] == len(qa_items)
    assert cell4["correct"] == sum(a.correct for a in runner.answers if a.k == 4)
    assert cell4["unparsed"] == sum(
        a.reply == "I am not sure what happens." for a in runner.answers if a.k == 4
    )
    assert cell4["low"] <= cell4["accuracy"] <= cell4["high"]
    assert cell4["accuracy"] > cell2["accuracy"]
    assert sum(g["n"] for g in cell4["by_group"].values()) == cell4["n"]
    # paired difference of two "selectors": the K=4 answers vs the K=2 answers on the same questions
    relabelled = [a for a in runner.answers if a.k == 4] + [
        type(a)(**{**a.__dict__, "selector": "other", "k": 4}) for a in runner.answers if a.k == 2
    ]
    diff = qa_paired_diff(relabelled, "uniform", "other", 4, n_boot=500)
    assert diff.diff == pytest.approx(cell4["accuracy"] - cell2["accuracy"]) and diff.n == len(qa_items)


def test_failed_requests_count_as_wrong(items, store):
    item = next(i for i in items if i.answer is not None)
    with StubServer(models=["video-llm"]) as server:
        server.fail_next("500", 10)
        chat = OpenAICompatChat(
            OpenAIEndpoint(base_url=server.base_url, model="video-llm", api_key=None, max_retries=0)
        )
        runner = QARunner(chat, store, max_side=64)
        answers = asyncio.run(runner.answer_video([(item, "uniform", 2, [0, 5])]))
    assert answers[0].error and "ModelHTTPError" in answers[0].error and not answers[0].correct
    assert qa_table(answers)["uniform"][2]["failed"] == 1


def test_items_check_the_gold_letter():
    with pytest.raises(ValueError):
        EvalItem("d", "v.mp4", "q?", options=("a", "b"), answer="C")
