"""One video → its VideoITG records, composing the three stages.

The expensive per-video work happens once per video, whatever the number of questions: probing,
decoding the frame grid, JPEG-encoding frames for the MLLM, describing clips (offline), and image
embeddings for stage 3. Model calls for all clips and questions of a video run concurrently; the
model client bounds how many are in flight. Every failure ends up on the records of the questions it
touches (with the stage and reason), never as an exception that loses the rest of the shard.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from vidthinker import __version__
from vidthinker.config import Settings
from vidthinker.models import ChatModel, ImageEmbedder
from vidthinker.planning import probe_and_plan
from vidthinker.prompts import load_prompt
from vidthinker.redact import redact
from vidthinker.schema import (
    ClipCaption,
    ClipPlan,
    ClipRetrieval,
    FrameLocalization,
    InstructionType,
    ManifestRow,
    Provenance,
    QAPair,
    VideoITGRecord,
)
from vidthinker.stages.caption import ORACLE_MODEL, CaptionSettings, ClipEvidence, caption_clip, oracle_captions
from vidthinker.stages.localize import LocalizeSettings, candidate_frames, localize_frames, verify_frames
from vidthinker.stages.retrieve import RetrievalSettings, retrieve_clips
from vidthinker.video import VideoError, decode_grid_frames, jpeg_data_url, mp4_data_url, uniform_indices


class ClipDescriber(Protocol):
    """Offline stand-in for seeing: a factual text report of a clip's frames for a text-only LLM."""

    model_id: str

    def describe(self, frames: np.ndarray) -> str: ...


@dataclass
class StageModels:
    captioner: ChatModel | None
    retriever: ChatModel
    embedder: ImageEmbedder
    verifier: ChatModel | None = None
    describer: ClipDescriber | None = None

    @property
    def caption_model_id(self) -> str | None:
        if self.captioner is None:
            return None
        if self.describer is not None:
            return f"{self.describer.model_id}+{self.captioner.model_id}"
        return self.captioner.model_id


@dataclass
class StageClock:
    """Wall seconds spent per stage across a run (model latency is in each record's trace)."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def add(self, stage: str, started: float) -> None:
        self.seconds[stage] += time.perf_counter() - started


class VideoAnnotator:
    """Annotates one manifest row at a time with the configured stages and models."""

    def __init__(self, models: StageModels, settings: Settings, *, run_id: str, created_at: dt.datetime | None = None):
        self.models = models
        self.settings = settings
        self.run_id = run_id
        self.clock = StageClock()
        a, v = settings.annotate, settings.video
        if models.captioner is None and not a.oracle_captions:
            raise ValueError("a captioner model is needed unless annotate.oracle_captions is set")
        self.caption_prompt = load_prompt("caption_clip")
        self.retrieval_prompt = load_prompt("retrieve_clips")
        self.verify_prompt = load_prompt("verify_frame") if a.verify_frames else None
        self.caption_settings = CaptionSettings(
            use_answer=a.use_answer, shared=a.caption_mode == "shared", clip_seconds=v.clip_seconds, max_tokens=a.caption_max_tokens,
            max_chars=a.caption_max_chars,
        )
        self.retrieval_settings = RetrievalSettings(clip_seconds=v.clip_seconds)
        self.localize_settings = LocalizeSettings(a.semantic_threshold, a.uniform_threshold, a.uniform_frames)
        self.provenance = Provenance(
            pipeline_version=__version__,
            run_id=run_id,
            caption_model=ORACLE_MODEL if a.oracle_captions else models.caption_model_id,
            retrieval_model=models.retriever.model_id,
            embedding_model=models.embedder.model_id,
            verify_model=models.verifier.model_id if (a.verify_frames and models.verifier) else None,
            caption_prompt_hash=None if a.oracle_captions else self.caption_prompt.hash,
            retrieval_prompt_hash=self.retrieval_prompt.hash,
            verify_prompt_hash=self.verify_prompt.hash if self.verify_prompt else None,
            clip_seconds=v.clip_seconds,
            grid_fps=v.grid_fps,
            created_at=created_at or dt.datetime.now(dt.UTC),
        )

    # ------------------------------------------------------------------ records

    def _record(
        self,
        row: ManifestRow,
        qa: QAPair,
        *,
        captions: Sequence[ClipCaption] = (),
        retrieval: ClipRetrieval | None = None,
        localization: FrameLocalization | None = None,
        error: str | None = None,
        error_stage: str | None = None,
        transient: bool = False,
    ) -> VideoITGRecord:
        kind = InstructionType(retrieval.instruction_type) if retrieval and retrieval.instruction_type else None
        ok = error is None
        return VideoITGRecord(
            id=f"{row.video_id}/{qa.qa_id}",
            video=row.video,
            question=qa.question,
            answer=qa.answer,
            frame_num=localization.frame_ids if (ok and localization) else [],
            clip_num=retrieval.clip_ids if (ok and retrieval) else [],
            motion="yes" if kind and kind.motion else "no",
            existence="yes" if kind and kind.existence else "no",
            instruction_type=kind,
            error=redact(error),
            error_stage=None if ok else error_stage,
            error_class=None if ok else ("transient" if transient else "permanent"),
            video_id=row.video_id,
            qa_id=qa.qa_id,
            provenance=self.provenance,
            captions=list(captions),
            retrieval=retrieval,
            localization=localization,
        )

    def _all_failed(self, row: ManifestRow, stage: str, message: str, *, transient: bool = False) -> list[VideoITGRecord]:
        return [self._record(row, qa, error=message, error_stage=stage, transient=transient) for qa in row.qa]

    # ------------------------------------------------------------------ the video

    async def annotate_video(self, row: ManifestRow) -> list[VideoITGRecord]:
        """One manifest row (a video and its questions) → one record per question; failures become error records."""
        started = time.perf_counter()
        info, plan = await asyncio.to_thread(probe_and_plan, row, self.settings.video)
        self.clock.add("probe", started)
        if info is None:
            return self._all_failed(row, "probe", plan.error or "unusable video")
        grid_ids = [f for clip in plan.clips for f in clip.frame_ids]
        v = self.settings.video
        started = time.perf_counter()
        try:
            frames = await asyncio.to_thread(
                decode_grid_frames, info, grid_ids, v.grid_fps, max_side=v.request_max_side,
                backend=v.decode_backend, timeout_s=v.decode_timeout_s, isolate=v.isolate_decode,
            )
        except VideoError as error:
            return self._all_failed(row, "decode", f"{type(error).__name__}: {error.reason}")
        finally:
            self.clock.add("decode", started)
        frame_of = {frame_id: frames[i] for i, frame_id in enumerate(grid_ids)}
        frames_view = _FrameCache(frame_of, v.jpeg_quality)

        started = time.perf_counter()
        captions = await self._captions(row, plan, frames_view)
        self.clock.add("caption", started)

        started = time.perf_counter()
        retrievals = await asyncio.gather(*(self._retrieve(row, qa, plan, captions[qa.qa_id]) for qa in row.qa))
        self.clock.add("retrieve", started)

        started = time.perf_counter()
        records = await self._localize(row, plan, frames_view, captions, dict(zip([q.qa_id for q in row.qa], retrievals)))
        self.clock.add("localize", started)
        return records

    async def _captions(self, row: ManifestRow, plan: ClipPlan, frames: "_FrameCache") -> dict[str, list[ClipCaption]]:
        by_question: dict[str, list[ClipCaption]] = {qa.qa_id: [] for qa in row.qa}
        clip_ids = [clip.clip_id for clip in plan.clips]
        if self.settings.annotate.oracle_captions:
            produced = oracle_captions(row.video_id, row.clip_descriptions or [], clip_ids, row.qa)
        else:
            evidence = await asyncio.gather(*(self._evidence(clip, frames) for clip in plan.clips))
            per_clip = await asyncio.gather(
                *(caption_clip(self.models.captioner, self.caption_prompt, row.video_id, e, row.qa, self.caption_settings) for e in evidence)
            )
            produced = [c for clip_captions in per_clip for c in clip_captions]
        for caption in produced:
            by_question[caption.qa_id].append(caption)
        return by_question

    async def _evidence(self, clip, frames: "_FrameCache") -> ClipEvidence:
        picks = [clip.frame_ids[i] for i in uniform_indices(len(clip.frame_ids), self.settings.annotate.frames_per_clip)]
        if self.models.describer is not None:
            stack = np.stack([frames.array(f) for f in picks])
            description = await asyncio.to_thread(self.models.describer.describe, stack)
            return ClipEvidence(clip.clip_id, clip.start_s, clip.end_s, description=description)
        if self.settings.annotate.clip_as_video:
            stack = np.stack([frames.array(f) for f in clip.frame_ids])
            video = await asyncio.to_thread(mp4_data_url, stack, self.settings.video.grid_fps)
            return ClipEvidence(clip.clip_id, clip.start_s, clip.end_s, video=video)
        urls = await asyncio.to_thread(lambda: tuple(frames.data_url(f) for f in picks))
        return ClipEvidence(clip.clip_id, clip.start_s, clip.end_s, images=urls)

    async def _retrieve(
        self, row: ManifestRow, qa: QAPair, plan: ClipPlan, captions: list[ClipCaption]
    ) -> ClipRetrieval | tuple[str, bool]:
        """The retrieval, or (why, transient) when no clip has a usable caption: a transient caption
        failure, if any, is the reason (a rerun may repair the record)."""
        usable = {c.clip_id: c.caption for c in captions if not c.trace.error and c.caption}
        if not usable:
            transient = sorted({c.trace.error for c in captions if c.trace.transient})
            if transient:
                return transient[0], True
            reasons = sorted({c.trace.error for c in captions if c.trace.error} or {"EmptyCaptions: every clip caption is empty"})
            return reasons[0], False
        text = {clip.clip_id: usable.get(clip.clip_id, "") for clip in plan.clips}
        return await retrieve_clips(self.models.retriever, self.retrieval_prompt, row.video_id, qa, text, self.retrieval_settings)

    async def _localize(self, row, plan, frames: "_FrameCache", captions, retrievals: dict[str, ClipRetrieval | tuple[str, bool]]) -> list[VideoITGRecord]:
        records: list[VideoITGRecord] = []
        needed: set[int] = set()
        for result in retrievals.values():
            if isinstance(result, ClipRetrieval) and result.trace.error is None:
                ids, _, threshold = candidate_frames(result.instruction_type, result.clip_ids, plan, self.localize_settings)
                if threshold is not None:
                    needed.update(ids)
        embeddings: dict[int, np.ndarray] = {}
        if needed:
            order = sorted(needed)
            vectors = await asyncio.to_thread(self.models.embedder.embed, np.stack([frames.array(f) for f in order]))
            embeddings = dict(zip(order, vectors))
        for qa in row.qa:
            result = retrievals[qa.qa_id]
            if isinstance(result, tuple):
                why, transient = result
                records.append(self._record(row, qa, captions=captions[qa.qa_id], error=why, error_stage="caption", transient=transient))
                continue
            if result.trace.error is not None:
                records.append(self._record(row, qa, captions=captions[qa.qa_id], retrieval=result, error=result.trace.error,
                                            error_stage="retrieve", transient=result.trace.transient))
                continue
            localization = localize_frames(
                row.video_id, qa.qa_id, result.instruction_type, result.clip_ids, plan, embeddings,
                self.localize_settings, embedding_model=self.models.embedder.model_id,
            )
            if self.verify_prompt is not None and self.models.verifier is not None and localization.frame_ids:
                stamps = {f: (frames.data_url(f), f / self.settings.video.grid_fps) for f in localization.frame_ids}
                localization = await verify_frames(self.models.verifier, self.verify_prompt, localization, qa.question, stamps)
            records.append(self._record(row, qa, captions=captions[qa.qa_id], retrieval=result, localization=localization))
        return records


class _FrameCache:
    """The decoded grid frames of one video and their JPEG data URLs, each encoded at most once."""

    def __init__(self, frames: dict[int, np.ndarray], quality: int):
        self._frames = frames
        self._quality = quality
        self._urls: dict[int, str] = {}

    def array(self, frame_id: int) -> np.ndarray:
        return self._frames[frame_id]

    def data_url(self, frame_id: int) -> str:
        url = self._urls.get(frame_id)
        if url is None:
            url = self._urls[frame_id] = jpeg_data_url(self._frames[frame_id], quality=self._quality)
        return url


async def annotate_rows(
    annotator: VideoAnnotator,
    rows: Sequence[ManifestRow],
    *,
    videos_in_flight: int = 2,
    on_video_done: Callable[[ManifestRow, list[VideoITGRecord]], None] | None = None,
    undispatched: list[ManifestRow] | None = None,
) -> list[VideoITGRecord]:
    """Annotate rows with at most `videos_in_flight` videos open at once; records keep manifest order.

    With `undispatched` (a list to fill), a video whose records failed with `EndpointDown` (the model
    client's circuit stayed open: the endpoint is down) stops dispatching: the videos not yet started
    are appended to `undispatched` instead of being burned into error records, and have no records.
    """
    gate = asyncio.Semaphore(videos_in_flight)
    results: list[list[VideoITGRecord]] = [[] for _ in rows]
    down = False

    async def one(index: int, row: ManifestRow) -> None:
        nonlocal down
        async with gate:
            if down and undispatched is not None:
                undispatched.append(row)
                return
            try:
                records = await annotator.annotate_video(row)
            except Exception as error:  # noqa: BLE001 - one video's bug must not lose the others
                records = annotator._all_failed(row, "pipeline", f"{type(error).__name__}: {error}",
                                                transient=getattr(error, "transient", False))
            if any(endpoint_down(r) for r in records):
                down = True
            results[index] = records
            if on_video_done is not None:
                on_video_done(row, records)

    await asyncio.gather(*(one(i, row) for i, row in enumerate(rows)))
    return [record for records in results for record in records]


def endpoint_down(record: VideoITGRecord) -> bool:
    """Whether a record failed because the model client's circuit stayed open (`EndpointDown`)."""
    return record.error_class == "transient" and (record.error or "").startswith("EndpointDown")
