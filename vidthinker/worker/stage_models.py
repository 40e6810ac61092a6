"""Build the stage models of a worker from the `models` settings: the production OpenAI-compatible
endpoint, or the offline defaults (real small weights from the package registry behind a loopback
llama.cpp server).

Both paths talk through the same OpenAI-compatible client and the same request cache, so the offline
demo exercises the production code path. Every model is checked before any video is decoded: an
unreachable endpoint or an unknown model is one clear error at start.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from vidthinker.config import ModelSettings
from vidthinker.models import ChatModel
from vidthinker.models.cache import CachedChatModel, RequestCache
from vidthinker.models.openai_compat import OpenAICompatChat, OpenAIEndpoint
from vidthinker.pipeline import StageModels
from vidthinker.serving import RequestShape, endpoint_needs

# llama.cpp's server runs one sequence at a time by default: more in flight only queues.
OFFLINE_IN_FLIGHT = 2


def _endpoint(settings: ModelSettings, base_url: str, model: str, **overrides) -> OpenAIEndpoint:
    fields = {
        "base_url": base_url,
        "model": model,
        "timeout_s": settings.timeout_s,
        "max_in_flight": settings.max_in_flight,
        "max_retries": settings.max_retries,
        "structured_output": settings.structured_output,
        "circuit_failures": settings.circuit_failures,
        "circuit_open_s": settings.circuit_open_s,
    }
    return OpenAIEndpoint(**{**fields, **overrides})


@contextlib.asynccontextmanager
async def open_stage_models(settings: ModelSettings, cache_dir: Path, *, need_captioner: bool = True, need_verifier: bool = False,
                            shapes: Sequence[RequestShape] = ()) -> AsyncIterator[StageModels]:
    """The stage models for a run, checked and wrapped in the request cache; closed on exit.

    `shapes` (`vidthinker.serving.request_shapes`) are the largest requests the run sends: each
    endpoint model's start-up check compares the biggest of its stages with the served
    `max_model_len` and stops with EndpointMismatch when it cannot fit."""
    from vidthinker.models.embedders import make_embedder, resolve_device

    cache = RequestCache(cache_dir)
    opened: list[ChatModel] = []

    def cached(endpoint: OpenAIEndpoint) -> ChatModel:
        chat = OpenAICompatChat(endpoint)
        opened.append(chat)
        return CachedChatModel(chat, cache)

    with contextlib.ExitStack() as stack:
        try:
            device = resolve_device(settings.embedder_device)
            embedder = make_embedder(settings.embedder, device=device)
            describer = None
            if settings.backend == "offline":
                from vidthinker.models.llama_server import LlamaServer, find_registry_gguf
                from vidthinker.models.offline import OfflineClipDescriber

                server = stack.enter_context(LlamaServer(find_registry_gguf(settings.offline_llm)))
                endpoint = _endpoint(settings, server.base_url, server.model_id, api_key=None, max_in_flight=OFFLINE_IN_FLIGHT)
                llm = cached(endpoint)
                captioner, retriever, verifier = llm, llm, None
                # A text-only LLM cannot see frames: a real image network describes them for it.
                describer = OfflineClipDescriber(embedder if hasattr(embedder, "classify") else make_embedder("efficientnet-lite0", device=device))
            else:
                retrieval_name = settings.retrieval_model or settings.caption_model
                verify_name = settings.verify_model or settings.caption_model
                stages_of: dict[str, list[str]] = {}
                for name, stage, used in ((settings.caption_model, "stage 1", need_captioner),
                                          (retrieval_name, "stage 2", True), (verify_name, "frame check", need_verifier)):
                    if used:
                        stages_of.setdefault(name, []).append(stage)

                def serving(name: str) -> dict:
                    return endpoint_needs(shapes, stages_of.get(name, []))

                captioner = cached(_endpoint(settings, settings.base_url, settings.caption_model, **serving(settings.caption_model)))
                retriever = captioner if retrieval_name == settings.caption_model else cached(_endpoint(settings, settings.base_url, retrieval_name, **serving(retrieval_name)))
                verifier = captioner if verify_name == settings.caption_model else cached(_endpoint(settings, settings.base_url, verify_name, **serving(verify_name)))
            models = StageModels(
                captioner=captioner if need_captioner else None,
                retriever=retriever,
                embedder=embedder,
                verifier=verifier if need_verifier else None,
                describer=describer if need_captioner else None,
            )
            for model in {id(m): m for m in (models.captioner, models.retriever, models.verifier) if m is not None}.values():
                await model.check()
            yield models
        finally:
            for chat in opened:
                await chat.aclose()
            cache.close()
