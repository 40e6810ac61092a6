"""What the settings ask of the model server: the shape of every request, and the `vllm serve` flags
that take them.

`vllm serve` refuses, per request, more media than `--limit-mm-per-prompt` allows (a 400 "At most N
image(s) may be provided in one prompt.", vllm-project/vllm `vllm/multimodal`, `validate_num_items`)
and a prompt plus `max_tokens` longer than `--max-model-len` (a 400 "... maximum context length is N
tokens ..."); it reports `max_model_len` in `GET /v1/models` (`ModelCard`, `vllm/entrypoints/openai/
protocol.py`). So the flags are derived here from the same settings that shape the requests:

* stage 1 (caption): `annotate.frames_per_clip` JPEG frames of a clip (at most the clip's grid
  frames, `video.clip_seconds * video.grid_fps`), or one `video_url` part with `annotate.clip_as_video`;
  a reply budget of `annotate.caption_max_tokens` per question (shared mode: for up to
  `SHARED_QUESTIONS` questions in one call);
* stage 2 (retrieval): text only (every clip's caption), 384 reply tokens;
* frame check (`annotate.verify_frames`): one frame, 16 reply tokens;
* downstream QA (`vidthinker eval --qa-*`, ITG-K): `models.qa_frames` frames (the paper's ITG-32),
  16 reply tokens. The bundled server answers it too, so it sizes the image limit.

Token counts are estimates: an image costs `models.image_tokens` (default: Qwen2.5-VL's one token per
28x28 pixels at `video.request_max_side`, a square frame as the worst case), a clip video half as many
per frame (Qwen2.5-VL merges two frames), and the text of the longest prompt
`models.prompt_text_tokens`. `vidthinker serve-args` prints the flags; docker/compose.yaml's defaults
equal what the default settings need (tests/airflow/test_docker.py checks it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from vidthinker.config import Settings

# Qwen2.5-VL: 14 px patches merged 2x2 -> one token per 28x28 pixels; two frames per temporal patch.
PIXELS_PER_TOKEN_SIDE = 28
FRAMES_PER_VIDEO_TOKEN = 2
SHARED_QUESTIONS = 8  # questions of one video a shared stage-1 call is sized for
RETRIEVE_MAX_TOKENS = 384  # vidthinker.stages.retrieve.RetrieveSettings.max_tokens
VERIFY_MAX_TOKENS = 16  # vidthinker.stages.localize.verify_frames
QA_MAX_TOKENS = 16  # eval.qa.QARunner.max_tokens
QA_TEXT_TOKENS = 512  # question, options and instructions of a QA prompt
CONTEXT_STEP = 4096  # --max-model-len is rounded up to a multiple of this


@dataclass(frozen=True)
class RequestShape:
    """The largest request of one kind: media parts, estimated prompt tokens, reply budget."""

    stage: str
    images: int
    videos: int
    prompt_tokens: int
    max_tokens: int

    @property
    def context(self) -> int:
        return self.prompt_tokens + self.max_tokens

    def describe(self) -> str:
        media = f"{self.images} image(s)" + (f" + {self.videos} video(s)" if self.videos else "")
        return f"{self.stage}: {media}, ~{self.prompt_tokens} prompt + {self.max_tokens} reply tokens"


@dataclass(frozen=True)
class ServeLimits:
    images: int
    videos: int
    max_model_len: int

    def limit_mm_per_prompt(self) -> str:
        return json.dumps({"image": self.images, "video": self.videos})

    def args(self) -> list[str]:
        return [f"--max-model-len={self.max_model_len}", f"--limit-mm-per-prompt={self.limit_mm_per_prompt()}"]

    def env(self) -> dict[str, str]:
        """The variables docker/compose.yaml builds the `vllm serve` flags from."""
        return {
            "VLLM_MAX_MODEL_LEN": str(self.max_model_len),
            "VLLM_MAX_IMAGES": str(self.images),
            "VLLM_MAX_VIDEOS": str(self.videos),
        }


def image_tokens(settings: Settings) -> int:
    if settings.models.image_tokens is not None:
        return settings.models.image_tokens
    side = math.ceil(settings.video.request_max_side / PIXELS_PER_TOKEN_SIDE)
    return side * side


def clip_frames(settings: Settings) -> int:
    return round(settings.video.clip_seconds * settings.video.grid_fps)


def request_shapes(settings: Settings, *, qa: bool = True) -> list[RequestShape]:
    """The largest request of each kind the settings produce (for an `openai` backend)."""
    a, text = settings.annotate, settings.models.prompt_text_tokens
    per_image = image_tokens(settings)
    shapes: list[RequestShape] = []
    if not a.oracle_captions:
        questions = SHARED_QUESTIONS if a.caption_mode == "shared" else 1
        if a.clip_as_video:
            media, images, videos = math.ceil(clip_frames(settings) / FRAMES_PER_VIDEO_TOKEN) * per_image, 0, 1
        else:
            images = min(a.frames_per_clip, clip_frames(settings))
            media, videos = images * per_image, 0
        shapes.append(RequestShape("stage 1 caption", images, videos, media + text, a.caption_max_tokens * questions))
    shapes.append(RequestShape("stage 2 retrieval", 0, 0, text, RETRIEVE_MAX_TOKENS))
    if a.verify_frames:
        shapes.append(RequestShape("frame check", 1, 0, per_image + text, VERIFY_MAX_TOKENS))
    if qa:
        k = settings.models.qa_frames
        shapes.append(RequestShape(f"downstream QA ITG-{k}", k, 0, k * per_image + QA_TEXT_TOKENS, QA_MAX_TOKENS))
    return shapes


def serve_limits(settings: Settings) -> ServeLimits:
    """`--limit-mm-per-prompt` and `--max-model-len` that take every request the settings produce."""
    shapes = request_shapes(settings)
    context = max(s.context for s in shapes)
    return ServeLimits(
        images=max(s.images for s in shapes),
        videos=max(s.videos for s in shapes),
        max_model_len=math.ceil(context / CONTEXT_STEP) * CONTEXT_STEP,
    )


def endpoint_needs(shapes: Sequence[RequestShape], stages: Sequence[str]) -> dict[str, int | str]:
    """What a model serving the given stages must take: the `OpenAIEndpoint` fields of its start-up
    check (largest context and its description, most images and videos in one request)."""
    chosen = [s for s in shapes if any(s.stage.startswith(stage) for stage in stages)]
    if not chosen:
        return {}
    big = max(chosen, key=lambda s: s.context)
    return {"needed_context": big.context, "needed_context_why": big.describe(),
            "needed_images": max(s.images for s in chosen), "needed_videos": max(s.videos for s in chosen)}


def serve_args_command(
    ctx: typer.Context,
    env: Annotated[bool, typer.Option("--env", help="Print docker/.env lines (VLLM_MAX_MODEL_LEN, VLLM_MAX_IMAGES, VLLM_MAX_VIDEOS) instead of flags.")] = False,
) -> None:
    """Print the `vllm serve` flags (--max-model-len, --limit-mm-per-prompt) that take every request
    the settings in force produce (stage 1 frames or clip videos, frame checks, downstream QA with
    models.qa_frames frames), with the request shapes they come from on stderr."""
    from vidthinker.config import ConfigError, load_command_settings

    try:
        settings = load_command_settings(ctx)
    except ConfigError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    limits = serve_limits(settings)
    for shape in request_shapes(settings):
        typer.echo(f"# {shape.describe()}", err=True)
    if env:
        for key, value in limits.env().items():
            typer.echo(f"{key}={value}")
    else:
        for arg in limits.args():
            typer.echo(arg)
