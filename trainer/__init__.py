"""The VideoITG frame selector: model variants, data from record shards, training, inference.

Public entry points (import lazily: torch is only needed once you call them):

- `trainer.config`: `SelectorConfig` (model) and `TrainConfig` (optimisation), presets.
- `trainer.model`: `FrameSelector` (Variant C full attention / Variant B causal + anchors).
- `trainer.data`: samples from parquet shards or VideoITG-40K JSON, labels, loss, feature cache.
- `trainer.train`: `train(shards_dir, out_dir, config)` (CPU, GPU, DDP under torchrun).
- `trainer.inference`: `Selector.from_pretrained(path)`, `.score`, `.select`, `read_manifest_queries`,
  `select_jobs` (the lmms-eval files; `vidthinker select` reads benchmark files in `eval.lmms_select`).
- `trainer.commands`: typer-compatible `train_command`.
"""

__all__ = ["commands", "config", "data", "inference", "model", "train"]
