"""The annotation fingerprint: one short hash of every setting that decides what a record says.

A run folder's shards are resumed by shard id, and shard ids hash only the videos they hold. So that a
rerun with other models, prompts or pipeline settings does not take shards made with the old ones as
finished, every shard manifest stores the fingerprint of the settings it was written with
(`ShardManifest.settings_fingerprint`) and planning compares it with the current one
(`vidthinker.shards.schedule_run`, `vidthinker.engine.run_shards`).

What goes in (`fingerprint_inputs`), as canonical JSON hashed with sha256 (first 16 hex digits):

* versions: the fingerprint recipe (`FINGERPRINT_VERSION`), the pipeline (`vidthinker.__version__`:
  code changes that alter outputs bump it) and the record schema (`schema.SCHEMA_VERSION`);
* `models`: `backend`, `embedder`, `structured_output` (the reply format asked for), and the models that
  answer: for `openai` the caption model and the retrieval and verify models with their defaults resolved
  (unset → the caption model; verify only when `annotate.verify_frames`), for `offline` the registry
  LLM (`offline_llm`) instead;
* `annotate`: every setting but `videos_in_flight` and `cache_dir` (caption mode, oracle captions, use of
  the answer, frames per clip, clip as video, caption limits, dedup thresholds, uniform frames, verify);
* `video`: `clip_seconds`, `grid_fps`, `request_max_side`, `jpeg_quality` (what the models see and how
  clips and frames are numbered) and `decode_backend` (decoders may give slightly different pixels);
* `prompts`: the content hash of each prompt template the run uses (`prompts/*.j2`, or
  `$VIDTHINKER_PROMPTS_DIR`), as stored in record provenance: `caption_clip` unless oracle captions,
  `retrieve_clips`, and `verify_frame` when frames are verified.

What stays out, because it does not change what a record says, only where or how fast it is made: the
endpoint (`models.base_url`: the same model served elsewhere gives the same records), API keys (never
settings, and secrets must not be written anywhere), `timeout_s`, `max_retries`, `max_in_flight`, `embedder_device`,
the circuit breaker and serving estimates (`circuit_failures`, `circuit_open_s`, `qa_frames`, `image_tokens`,
`prompt_text_tokens`),
`annotate.videos_in_flight`, `cache_dir` and `max_transient_error_share`, the video decoder's timeout, isolation and allowed roots,
and the whole `engine` (shard size, workers, Ray), `synth` and `airflow` sections.

New settings of the `models`, `annotate` and `video` sections are in the fingerprint unless listed in
`EXCLUDED` (a forgotten operational knob only makes a rerun ask for `--redo-stale`; a forgotten content
setting would mix datasets silently). tests/test_fingerprint.py pins the included keys.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from vidthinker.config import Settings

FINGERPRINT_VERSION = 1
FINGERPRINT_HEX = 16

# Settings of the fingerprinted sections that do not decide what a record says.
EXCLUDED: dict[str, frozenset[str]] = {
    "models": frozenset({"base_url", "timeout_s", "max_in_flight", "max_retries", "embedder_device", "circuit_failures",
                         "circuit_open_s", "qa_frames", "image_tokens", "prompt_text_tokens"}),
    "annotate": frozenset({"videos_in_flight", "cache_dir", "max_transient_error_share"}),
    "video": frozenset({"decode_timeout_s", "isolate_decode", "allowed_roots"}),
}
# The models a backend does not use (resolved separately below).
_MODEL_NAMES = frozenset({"caption_model", "retrieval_model", "verify_model", "offline_llm"})


def prompt_hashes(settings: Settings) -> dict[str, str]:
    """Content hashes of the prompt templates a run with `settings` uses (those its records name)."""
    from vidthinker.prompts import load_prompt

    a = settings.annotate
    names = [n for n, used in (("caption_clip", not a.oracle_captions), ("retrieve_clips", True),
                               ("verify_frame", a.verify_frames)) if used]
    return {name: load_prompt(name).hash for name in names}


def fingerprint_inputs(settings: Settings) -> dict[str, Any]:
    """What `annotation_fingerprint` hashes (JSON-able; no endpoint, key or engine setting)."""
    from vidthinker import __version__
    from vidthinker.schema import SCHEMA_VERSION

    dump = settings.dump()
    sections = {name: {k: v for k, v in dump[name].items() if k not in excluded}
                for name, excluded in EXCLUDED.items()}
    m = settings.models
    models = {k: v for k, v in sections["models"].items() if k not in _MODEL_NAMES}
    if m.backend == "offline":
        models["offline_llm"] = m.offline_llm
    else:
        models["caption_model"] = m.caption_model
        models["retrieval_model"] = m.retrieval_model or m.caption_model
        if settings.annotate.verify_frames:
            models["verify_model"] = m.verify_model or m.caption_model
    sections["models"] = models
    return {
        "fingerprint_version": FINGERPRINT_VERSION,
        "pipeline_version": __version__,
        "schema_version": SCHEMA_VERSION,
        **sections,
        "prompts": prompt_hashes(settings),
    }


def annotation_fingerprint(settings: Settings) -> str:
    """sha256 (first 16 hex digits) of `fingerprint_inputs(settings)`: equal iff records would be made alike."""
    text = json.dumps(fingerprint_inputs(settings), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:FINGERPRINT_HEX]
