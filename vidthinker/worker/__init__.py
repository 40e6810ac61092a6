"""The worker layer: one shard at a time, below the engine that dispatches shards.

* `shard` — `ShardAnnotator`: the stage models of one worker, opened once, and `annotate_shard`: read a
  shard's rows through the pipeline (one video at a time, `vidthinker.pipeline.VideoAnnotator`) and
  write the shard file (`vidthinker.shards.write_shard`), returning the shard's summary.
* `stage_models` — builds the stage models from the `models` settings (OpenAI-compatible endpoint or
  the offline llama.cpp server, the image embedder, the request cache).
* `summary` — `RunSummary`: what a shard or a run did (counts from `vidthinker.figures`), and its merge.
"""
