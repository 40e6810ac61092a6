import hashlib

import pytest

from vidthinker.models import ImagePart, TextPart
from vidthinker.prompts import PromptError, load_prompt, prompts_dir
from vidthinker.schema import QAPair
from vidthinker.stages.caption import CaptionSettings, ClipEvidence, _messages


def test_every_template_renders_and_hashes_its_file():
    for path in sorted(prompts_dir().glob("*.j2")):
        template = load_prompt(path.stem)
        assert template.hash == hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def test_hash_changes_with_the_text(tmp_path):
    (tmp_path / "p.j2").write_text("### system\nA\n### user\n{{ x }}")
    first = load_prompt("p", tmp_path)
    assert first.render(x="hi") == ("A", "hi")
    (tmp_path / "p.j2").write_text("### system\nB\n### user\n{{ x }}")
    assert load_prompt("p", tmp_path).hash != first.hash


def test_missing_variables_and_sections_are_errors(tmp_path):
    with pytest.raises(PromptError, match="'question' is undefined"):
        load_prompt("retrieve_clips").render(clip_seconds=5, clips=[])
    (tmp_path / "bad.j2").write_text("no sections")
    with pytest.raises(PromptError, match="needs '### system' then '### user'"):
        load_prompt("bad", tmp_path).render()
    with pytest.raises(PromptError, match="not found"):
        load_prompt("nope", tmp_path)


QUESTIONS = [QAPair(qa_id="q0", question="What colour is the star?", answer="red"),
             QAPair(qa_id="q1", question="Which way does it move?", answer="left")]


def test_caption_prompt_puts_the_frames_first_and_the_same_for_every_question():
    template = load_prompt("caption_clip")
    evidence = ClipEvidence(2, 10.0, 15.0, images=("data:image/jpeg;base64,AAAA", "data:image/jpeg;base64,BBBB"))
    settings = CaptionSettings()
    first = _messages(template, evidence, [QUESTIONS[0]], settings)
    second = _messages(template, evidence, [QUESTIONS[1]], settings)
    assert first[0] == second[0]  # the system prompt is shared
    parts_a, parts_b = first[1].content, second[1].content
    assert [type(p) for p in parts_a] == [ImagePart, ImagePart, TextPart]
    assert parts_a[:2] == parts_b[:2]  # identical prefix → prefix-cache hits across questions
    assert "What colour is the star?" in parts_a[2].text and 'The answer is "red"' in parts_a[2].text
    no_answer = _messages(template, evidence, [QUESTIONS[0]], CaptionSettings(use_answer=False))
    assert "red" not in no_answer[1].content[-1].text


def test_offline_caption_prompt_carries_the_description_and_all_questions_when_shared():
    template = load_prompt("caption_clip")
    evidence = ClipEvidence(0, 0.0, 5.0, description="a red star, moving left")
    (system, user) = _messages(template, evidence, QUESTIONS, CaptionSettings(shared=True))
    assert "factual report" in system.content
    text = user.content  # text-only: a plain string, which llama.cpp's server requires
    assert text.startswith("Clip 0 (0.0-5.0 s) report:\na red star, moving left")
    assert "Question q0" in text and "Question q1" in text and "each question" in text


def test_retrieval_prompt_lists_clips_in_order_and_never_the_answer():
    system, user = load_prompt("retrieve_clips").render(
        clip_seconds=5, clips=[{"clip_id": 0, "caption": "a cat"}, {"clip_id": 1, "caption": "a dog"}], question="Where is the dog?")
    assert user.splitlines()[:2] == ["Clip-0: a cat", "Clip-1: a dog"]
    assert user.endswith("Question: Where is the dog?")
    assert "only the first two" in system and "ALL clips" in system
