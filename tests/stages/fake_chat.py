"""A tiny scripted ``ChatModel`` for the stage tests: it records every request and answers each one
from a list of replies (a dict becomes a parsed JSON reply, an exception is raised)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from vidthinker.models import ChatReply, ChatRequest, Message, Usage

Answer = dict[str, Any] | Exception | Callable[[ChatRequest], dict[str, Any]]
USAGE = Usage(120, 30, 1)  # what every fake call costs


class FakeChat:
    def __init__(self, *answers: Answer, model_id: str = "fake-llm", usage: Usage = USAGE):
        self.model_id = model_id
        self.answers = list(answers)
        self.usage = usage
        self.requests: list[ChatRequest] = []

    async def chat(self, request: ChatRequest) -> ChatReply:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        parsed = answer(request) if callable(answer) else answer
        return ChatReply(
            text=json.dumps(parsed), parsed=parsed, usage=self.usage, latency_s=0.25, model=self.model_id
        )

    async def check(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def user_text(message: Message) -> str:
    """The text of a user message, whether plain or a list of content parts."""
    if isinstance(message.content, str):
        return message.content
    return "\n".join(part.text for part in message.content if hasattr(part, "text"))
