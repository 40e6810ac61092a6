"""Stage 3: frame localization on the 1-fps frames of the retrieved clips.

The instruction type decides the sampling (as in the VideoITG release):
  semantic_only   → frames inside the retrieved clips, greedily thinned by image-embedding cosine
                    (a frame too similar to one already kept adds nothing to look at);
  semantic_motion → every frame of the retrieved clips (motion needs the whole sequence);
  motion_only, no_clues → uniform frames across the whole video, dropping only near-identical ones.
An optional per-frame yes/no check by a VLM then removes frames it judges irrelevant.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from vidthinker.models import ChatModel, ChatRequest, ImagePart, Message, ModelError, TextPart
from vidthinker.prompts import PromptTemplate
from vidthinker.schema import ClipPlan, FrameLocalization, InstructionType, StageTrace, Usage
from vidthinker.stages.common import trace_from_error, trace_from_reply
from vidthinker.video import uniform_indices

VERIFY_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}},
    "required": ["answer"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class LocalizeSettings:
    semantic_threshold: float = 0.90
    uniform_threshold: float = 0.97
    uniform_frames: int = 8


def candidate_frames(
    instruction_type: InstructionType | str | None, clip_ids: Sequence[int], plan: ClipPlan, settings: LocalizeSettings
) -> tuple[list[int], str, float | None]:
    """(candidate frame ids, policy name, dedup threshold or None) for one question."""
    kind = InstructionType(instruction_type or InstructionType.SEMANTIC_ONLY)
    frames_of = {clip.clip_id: clip.frame_ids for clip in plan.clips}
    if kind in (InstructionType.MOTION_ONLY, InstructionType.NO_CLUES):
        all_frames = sorted(f for frames in frames_of.values() for f in frames)
        picks = [all_frames[i] for i in uniform_indices(len(all_frames), settings.uniform_frames)]
        return picks, f"{kind.value}:uniform", settings.uniform_threshold
    in_clips = sorted({f for c in clip_ids for f in frames_of.get(c, [])})
    if kind is InstructionType.SEMANTIC_MOTION:
        return in_clips, f"{kind.value}:all_clip_frames", None
    return in_clips, f"{kind.value}:dedup", settings.semantic_threshold


def greedy_dedup(frame_ids: Sequence[int], embeddings: Mapping[int, np.ndarray], threshold: float) -> tuple[list[int], list[int]]:
    """Walk frames in time order; keep one unless its cosine to an already kept frame is >= threshold."""
    kept: list[int] = []
    kept_vectors: list[np.ndarray] = []
    dropped: list[int] = []
    for frame_id in frame_ids:
        vector = embeddings[frame_id]
        if kept_vectors and float(np.max(np.stack(kept_vectors) @ vector)) >= threshold:
            dropped.append(frame_id)
            continue
        kept.append(frame_id)
        kept_vectors.append(vector)
    return kept, dropped


def localize_frames(
    video_id: str,
    qa_id: str,
    instruction_type: InstructionType | str | None,
    clip_ids: Sequence[int],
    plan: ClipPlan,
    embeddings: Mapping[int, np.ndarray],
    settings: LocalizeSettings,
    *,
    embedding_model: str | None = None,
) -> FrameLocalization:
    candidates, policy, threshold = candidate_frames(instruction_type, clip_ids, plan, settings)
    if threshold is None:
        kept, dropped = list(candidates), []
    else:
        kept, dropped = greedy_dedup(candidates, embeddings, threshold)
        policy += f"@{threshold:.2f}"
    return FrameLocalization(
        video_id=video_id,
        qa_id=qa_id,
        frame_ids=kept,
        candidate_frame_ids=candidates,
        duplicate_frame_ids=dropped,
        policy=policy,
        trace=StageTrace(model=embedding_model),
    )


async def verify_frames(
    model: ChatModel,
    template: PromptTemplate,
    localization: FrameLocalization,
    question: str,
    frames: Mapping[int, tuple[str, float]],
) -> FrameLocalization:
    """Ask a VLM, frame by frame, whether each kept frame is relevant; drop the ones it says "no" to.

    `frames` maps frame id → (JPEG data URL, timestamp). A failed call keeps the frame (the check can
    only remove evidence, so on doubt it keeps it) and is reported in the trace.
    """

    async def ask(frame_id: int):
        url, timestamp = frames[frame_id]
        system, user = template.render(question=question, timestamp_s=timestamp)
        request = ChatRequest(
            messages=(Message.system(system), Message("user", (ImagePart(url), TextPart(user)))),
            json_schema=VERIFY_SCHEMA,
            schema_name="frame_check",
            max_tokens=16,
            prompt_hash=template.hash,
        )
        try:
            return frame_id, await model.chat(request), None
        except ModelError as error:
            return frame_id, None, error

    results = await asyncio.gather(*(ask(f) for f in localization.frame_ids))
    usage, latency, errors, rejected, raw = Usage(), 0.0, [], [], []
    for frame_id, reply, error in results:
        if error is not None:
            trace = trace_from_error(error, model.model_id, template.hash)
            errors.append(f"frame {frame_id}: {trace.error}")
            usage = usage + trace.usage
            continue
        trace = trace_from_reply(reply, template.hash)
        usage, latency = usage + trace.usage, latency + trace.latency_s
        raw.append(f"{frame_id}:{reply.text}")
        if (reply.parsed or {}).get("answer") == "no":
            rejected.append(frame_id)
    return localization.model_copy(
        update={
            "frame_ids": [f for f in localization.frame_ids if f not in set(rejected)],
            "rejected_frame_ids": rejected,
            "policy": localization.policy + "+vlm_check",
            "trace": StageTrace(
                model=f"{localization.trace.model}+{model.model_id}",
                prompt_hash=template.hash,
                raw_output="\n".join(raw) or None,
                latency_s=latency,
                usage=usage,
                error="; ".join(errors) or None,
            ),
        }
    )
