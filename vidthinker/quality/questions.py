"""Question text: normalised wording, near-duplicate questions of one video (exact normalised text, or
token Jaccard >= `NEAR_DUPLICATE_JACCARD`) and the 64-bit hash the run pass counts distinct questions by."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import defaultdict
from typing import Literal

from vidthinker.quality.models import MAX_GROUP_MEMBERS, NEAR_DUPLICATE_JACCARD, DuplicateGroup

MAX_PAIRWISE_PER_VIDEO = 400


_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)
_SPACE = re.compile(r"\s+")


def normalise_question(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return _SPACE.sub(" ", _PUNCT.sub(" ", text)).strip()


def token_jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def near_duplicate_groups(video_id: str, items: list[tuple[str, str]]) -> tuple[list[DuplicateGroup], int]:
    """Exact groups by normalised text, then near clusters (Jaccard >= threshold, single linkage) among the
    distinct texts; and how many of the video's records are in any group."""
    by_text: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for qa_id, question in items:
        by_text[normalise_question(question)].append((qa_id, question))
    def group(kind: Literal["exact", "near"], similarity: float, members: list[tuple[str, str]]) -> DuplicateGroup:
        head = members[:MAX_GROUP_MEMBERS]
        return DuplicateGroup(video_id=video_id, kind=kind, similarity=similarity, size=len(members),
                              qa_ids=[q for q, _ in head], questions=[t for _, t in head])

    groups = [group("exact", 1.0, members) for members in by_text.values() if len(members) > 1]
    involved = {qa for members in by_text.values() if len(members) > 1 for qa, _ in members}
    texts = list(by_text)
    if len(texts) <= MAX_PAIRWISE_PER_VIDEO:
        tokens = [set(t.split()) for t in texts]
        parent = list(range(len(texts)))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        best: dict[int, float] = {}
        for i in range(len(texts)):
            for j in range(i + 1, len(texts)):
                sim = token_jaccard(tokens[i], tokens[j])
                if sim >= NEAR_DUPLICATE_JACCARD:
                    a, b = find(i), find(j)
                    parent[a] = b
                    best[j] = max(best.get(j, 0.0), sim)
                    best[i] = max(best.get(i, 0.0), sim)
        clusters: dict[int, list[int]] = defaultdict(list)
        for i in range(len(texts)):
            clusters[find(i)].append(i)
        for members in clusters.values():
            if len(members) < 2:
                continue
            entries = [e for i in members for e in by_text[texts[i]]]
            groups.append(group("near", round(min(best[i] for i in members), 4), entries))
            involved.update(qa for qa, _ in entries)
    return groups, len(involved)


def question_hash(key: str) -> int:
    """64-bit hash of a normalised question (blake2b): distinct questions are counted by hash, so the run
    pass holds 20 bytes per distinct question in numpy arrays rather than a dict and a set of videos."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
