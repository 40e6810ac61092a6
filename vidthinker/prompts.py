"""Prompt templates from `prompts/`: a prompt's version is the hash of its file, stored in every record.

A template is a jinja2 file with a `### system` and a `### user` section. Changing one character of
a template changes its hash, so records made with different prompts are never mixed up silently, and
the request cache never replays a reply to an older prompt.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

PROMPTS_ENV = "VIDTHINKER_PROMPTS_DIR"
_SECTIONS = ("### system", "### user")


def prompts_dir() -> Path:
    """`$VIDTHINKER_PROMPTS_DIR`, else the repository's `prompts/` beside the package."""
    configured = os.environ.get(PROMPTS_ENV)
    return Path(configured) if configured else Path(__file__).resolve().parent.parent / "prompts"


class PromptError(ValueError):
    pass


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    source: str
    path: Path

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()[:16]

    def render(self, **variables: Any) -> tuple[str, str]:
        """(system text, user text) with the variables filled in; a missing variable is an error."""
        env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)
        try:
            text = env.from_string(self.source).render(**variables)
        except jinja2.UndefinedError as error:
            raise PromptError(f"prompt {self.name} ({self.path}): {error}") from None
        system_at = text.find(_SECTIONS[0])
        user_at = text.find(_SECTIONS[1])
        if system_at < 0 or user_at < system_at:
            raise PromptError(f"prompt {self.name} ({self.path}): needs '### system' then '### user' sections")
        system = text[system_at + len(_SECTIONS[0]) : user_at].strip()
        user = text[user_at + len(_SECTIONS[1]) :].strip()
        return system, user


@lru_cache(maxsize=64)
def _load(path: Path, mtime_ns: int) -> PromptTemplate:
    return PromptTemplate(name=path.stem, source=path.read_text(), path=path)


def load_prompt(name: str, directory: Path | None = None) -> PromptTemplate:
    path = (directory or prompts_dir()) / f"{name}.j2"
    if not path.is_file():
        raise PromptError(f"prompt template {name!r} not found at {path}")
    return _load(path, path.stat().st_mtime_ns)
