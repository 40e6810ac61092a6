"""The dataset card (README.md): YAML metadata the hub and `datasets` read (license, tags, configs, the
Arrow schema as `dataset_info`), then the fields, the run's figures and the citation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from vidthinker import __version__
from vidthinker.publish import DEFAULT_LICENSE
from vidthinker.publish.records import DATA_DIR, PUBLISH_VERSION, PUBLISHED_SCHEMA, SPLIT
from vidthinker.quality.models import RunQuality

TASK_CATEGORIES = ["video-text-to-text", "visual-question-answering"]
TAGS = ["video", "temporal-grounding", "frame-selection", "instructed-temporal-grounding", "videoitg", "vidthinker"]


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                         (10_000_000, "1M<n<10M")):
        if n < limit:
            return label
    return "10M<n<100M"


def dataset_info_yaml(data_paths: Sequence[Path], records: int) -> dict[str, Any]:
    """`dataset_info` of the card: features from the published Arrow schema, split sizes from the files."""
    from datasets import DatasetInfo, Features, SplitDict, SplitInfo

    num_bytes = 0  # uncompressed size, from the files' metadata (no data is read)
    for path in data_paths:
        meta = pq.ParquetFile(path).metadata
        num_bytes += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    download = sum(p.stat().st_size for p in data_paths)
    info = DatasetInfo(
        features=Features.from_arrow_schema(PUBLISHED_SCHEMA),
        splits=SplitDict({SPLIT: SplitInfo(name=SPLIT, num_bytes=num_bytes, num_examples=records)}),
        download_size=download,
        dataset_size=num_bytes,
    )
    return info._to_yaml_dict()


def _fmt_q(dist) -> str:
    q = dist.quantiles
    if not q:
        return "–"
    return f"{q['p50']:g} (p5 {q['p5']:g}, p95 {q['p95']:g}; mean {dist.mean:.2f})"


def dataset_card(repo_id: str, data_paths: Sequence[Path], records: int, quality: RunQuality, *,
                 license: str = DEFAULT_LICENSE, reviewed: str = "") -> str:
    import yaml

    metadata: dict[str, Any] = {
        "license": license,
        "pretty_name": f"{repo_id.split('/')[-1]} (VideoITG-format annotations by VidThinker)",
        "language": ["en"],
        "task_categories": TASK_CATEGORIES,
        "tags": TAGS,
        "size_categories": [_size_category(records)],
        "configs": [{"config_name": "default", "data_files": [{"split": SPLIT, "path": f"{DATA_DIR}/{SPLIT}-*"}]}],
        "dataset_info": dataset_info_yaml(data_paths, records),
    }
    front = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True, width=120)
    types = quality.instruction_types
    total_types = sum(types.values()) or 1
    type_rows = "\n".join(f"| {t} | {n} | {100 * n / total_types:.1f}% |" for t, n in types.items())
    stage_rows = "\n".join(
        f"| {s} | {c.calls} | {c.prompt_tokens} | {c.completion_tokens} | {c.latency_s:.1f} |" for s, c in quality.stages.items())
    error_rows = "\n".join(f"| {r.stage} | {r.reason} | {r.count} |" for r in quality.errors_by_reason) or "| – | – | 0 |"
    agreement = ""
    if quality.agreement and "all" in quality.agreement:
        a = quality.agreement["all"]
        agreement = (
            "\n### Agreement with ground truth\n\n"
            f"On {a.records} records whose questions have known answer locations (synthetic set): frame precision "
            f"{a.frame_precision:.3f}, frame recall {a.frame_recall:.3f}, clip precision {a.clip_precision:.3f}, "
            f"clip recall {a.clip_recall:.3f}, instruction-type accuracy {a.type_accuracy:.3f}.\n"
        )
    models = "; ".join(f"{stage}: {', '.join(ids)}" for stage, ids in quality.models.items()) or "–"
    body = f"""
# {repo_id.split('/')[-1]}

Instruction-grounded frame annotations in the **VideoITG-40K format**
([VideoITG, arXiv 2507.13353](https://arxiv.org/abs/2507.13353)), produced by the VidThinker pipeline:
(1) instruction-conditioned captions of every 5-second clip, (2) reasoning-based clip retrieval by an LLM,
(3) frame localization on the 1-fps frame grid inside the retrieved clips.

## Use

```python
from datasets import load_dataset

ds = load_dataset("{repo_id}", split="{SPLIT}")
```

## Fields

| field | meaning |
| --- | --- |
| `id`, `video`, `question`, `answer` | the annotated question; `video` is relative to the video collection's root |
| `frame_num` | relevant frames: ids on the 1-fps grid (frame k is at t = k s) |
| `clip_num` | relevant 5-second clips (clip c covers frames 5c .. 5c+4) |
| `motion`, `existence` | "yes"/"no": the question is about motion / names something visible to look for |
| `instruction_type` | `semantic_only`, `motion_only`, `semantic_motion` or `no_clues` (decides how frames were sampled) |
| `video_id`, `qa_id` | ids of the video and of the question in the source manifest |
| `provenance` | pipeline version, model ids, prompt hashes, clip length, grid rate and creation time |

Only records that every stage annotated without error are published. Failed records and the per-stage
traces (captions, retrieval explanations, raw model outputs, token usage) are kept with the source
shards; their figures are below and in `stats/quality.json`.

## Statistics

{records} records published from {len(data_paths)} shard file(s); the annotation run covered
{quality.records} questions over {quality.videos} videos, {quality.errors} of which failed
(error rate {100 * quality.error_rate:.2f}%).

- frames per record: {_fmt_q(quality.frames_per_qa)}
- clips per record: {_fmt_q(quality.clips_per_qa)}
- retrievals with no clip: {100 * quality.retrieval.none_share:.1f}%; with every clip of the video: {100 * quality.retrieval.all_share:.1f}%
- caption length (words): {_fmt_q(quality.captions.words)}
- tokens per annotated question: {_fmt_q(quality.tokens_per_record)}
- near-duplicate questions of one video: {quality.near_duplicates.records_in_groups} records ({100 * quality.near_duplicates.share:.1f}%)
- pipeline: {', '.join(quality.pipeline_versions) or '–'}; models: {models}

| instruction type | records | share |
| --- | --- | --- |
{type_rows}

| stage | model calls | prompt tokens | completion tokens | model seconds |
| --- | --- | --- | --- | --- |
{stage_rows}

| failed at | reason | records |
| --- | --- | --- |
{error_rows}
{agreement}{reviewed}
## Citation

```bibtex
@article{{videoitg2025,
  title   = {{VideoITG: Multimodal Video Understanding with Instructed Temporal Grounding}},
  journal = {{arXiv preprint arXiv:2507.13353}},
  year    = {{2025}}
}}
```

<sub>Published by vidthinker {__version__} (publish format {PUBLISH_VERSION}).</sub>
"""
    return f"---\n{front}---\n{body}"
