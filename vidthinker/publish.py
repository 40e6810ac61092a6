"""Publish annotation shards as a Hugging Face dataset: layout, dataset card, incremental upload, tags.

What is published (decided here, documented in the card): the **good records only**, with the public
VideoITG-40K columns (`id, video, question, answer, frame_num, clip_num, motion, existence`) followed by
`instruction_type, video_id, qa_id` and the record's `provenance` struct (pipeline version, model ids,
prompt hashes, clip length, frame rate, creation time). Failed records and the per-stage traces
(captions, retrieval explanations, raw model outputs, token usage) stay in the source shards: they are
operational data, large, and describe the run rather than the dataset; their figures are in the card
and in `stats/quality.json`. `video` is published relative to `video_root` (default: the video's folder
name and file name), so no local absolute path leaves the machine.

Layout (`<out>/_hf/<repo slug>/`, rebuilt from cached per-shard conversions)::

    README.md                                dataset card: YAML metadata (license, task_categories, tags,
                                             configs/data_files, dataset_info features = the Arrow schema)
    data/train-00000-of-0000N.parquet        the good records of consecutive source shards, repacked into
                                             files of about `data_file_bytes` (default 256 MB; setting
                                             VIDTHINKER_PUBLISH__DATA_FILE_MB, option --data-file-mb)
    stats/quality.json                       vidthinker.quality figures of the published shards

Repacking keeps uploads incremental: where one data file ends is decided by the shards themselves
(content-defined, like rsync's chunking): a file closes after a shard whose name hashes to a boundary once
it holds half the target size (the boundary rate follows the mean shard size, rounded to a power of two),
or at twice the target. A changed shard therefore rewrites only the file it lands in (and, when its size
moves a boundary, the next one); a new shard only its own file and its neighbours; every other file keeps
its bytes, is skipped on upload or copied server-side when only its index in the name changed.

Upload: the layout is compared with the revision on the hub (`list_repo_tree`: LFS sha256 for data
files, git blob sha1 for small files); unchanged files are skipped, content the hub already has under
another name (a shard renamed because N grew) is copied server-side, stale `data/` and `stats/` files are
deleted, and everything else goes in one `create_commit` (parent commit pinned). The new commit is
tagged `v<N+1>` (or the given tag). The token comes from `HF_TOKEN` or huggingface-hub's login file; it is
never logged and never appears in an error message. `HF_ENDPOINT` selects another hub (tests use a stub).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import typer
from pydantic import BaseModel, Field

from vidthinker import __version__
from vidthinker.redact import redact, redact_then_truncate, redacted_io
from vidthinker.quality import (
    RunQuality,
    compute_run_quality,
    fresh_run_quality,
    shard_figures,
    shard_folder,
    shard_paths,
)
from vidthinker.review import card_section, review_gate_failure
from vidthinker.schema import (
    VIDEOITG_COLUMNS,
    FrameId,
    InstructionType,
    NonEmptyStr,
    Provenance,
    Row,
    SchemaError,
    YesNo,
    arrow_schema,
)

log = logging.getLogger("vidthinker.publish")

PUBLISH_VERSION = "1"
DATA_DIR = "data"
STATS_FILE = "stats/quality.json"
MANAGED_PREFIXES = ("data/", "stats/")
SPLIT = "train"
DEFAULT_LICENSE = "apache-2.0"
TASK_CATEGORIES = ["video-text-to-text", "visual-question-answering"]
TAGS = ["video", "temporal-grounding", "frame-selection", "instructed-temporal-grounding", "videoitg", "vidthinker"]
BATCH_ROWS = 65_536
DATA_FILE_MB = 256  # default size of a published data file (VIDTHINKER_PUBLISH__DATA_FILE_MB)
TAG_PATTERN = re.compile(r"^v(\d+)$")


class PublishError(RuntimeError):
    """Publishing cannot go on; the message says why and what to do (and never contains the token).
    `retryable`: a transient hub failure (unreachable, conflict, 5xx) rather than bad input or credentials."""

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


class ReviewGateError(PublishError):
    """The run's reviewed frame precision is under publish.min_reviewed_frame_precision (vidthinker/review.py)."""


class PublishedRecord(Row):
    """One published row: the VideoITG-40K columns, the instruction type, ids and provenance."""

    id: NonEmptyStr
    video: NonEmptyStr
    question: NonEmptyStr
    answer: str
    frame_num: list[FrameId] = Field(default_factory=list)
    clip_num: list[FrameId] = Field(default_factory=list)
    motion: YesNo = "no"
    existence: YesNo = "no"
    instruction_type: InstructionType | None = None
    video_id: NonEmptyStr
    qa_id: NonEmptyStr
    provenance: Provenance


PUBLISHED_SCHEMA = arrow_schema(PublishedRecord)
assert tuple(PUBLISHED_SCHEMA.names[: len(VIDEOITG_COLUMNS)]) == VIDEOITG_COLUMNS


class FileAction(BaseModel):
    path: str
    action: Literal["upload", "copy", "unchanged", "delete"]
    size: int = 0
    sha256: str | None = None
    source: str | None = Field(None, description="the source shard (data files) or the hub path copied from")


class Layout(BaseModel):
    root: str
    records: int
    shards: list[str] = Field(description="source shards, in data-file order")
    packs: list[list[str]] = Field(default_factory=list, description="the source shards of each data file, in order")
    files: dict[str, str] = Field(description="path in repo → sha256")
    skipped_shards: list[str] = Field(default_factory=list, description="shards without a good record")


class PublishResult(BaseModel):
    repo_id: str
    revision: str
    status: Literal["published", "unchanged", "dry-run"]
    url: str | None = None
    layout: str
    records: int
    data_files: int
    files: list[FileAction] = Field(default_factory=list)
    uploaded_bytes: int = 0
    commit: str | None = None
    tag: str | None = None
    private: bool | None = None
    note: str | None = None

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.files:
            out[f.action] = out.get(f.action, 0) + 1
        return out


# --------------------------------------------------------------------------- layout


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _relative_video(video: str, root: Path | None) -> str:
    if "://" in video:
        return video
    path = Path(video)
    if root is not None:
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return PurePosixPath(path.parent.name, path.name).as_posix() if path.parent.name else path.name


def _shard_key(shard: Path, video_root: Path | None) -> str:
    """Identifies a source shard file (+ how it is converted): the cache name of its conversion."""
    stat = shard.stat()
    parts = [PUBLISH_VERSION, pa.__version__, str(shard.resolve()), str(stat.st_size), str(stat.st_mtime_ns),
             str(video_root.resolve()) if video_root else ""]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def convert_shard(shard: Path, target: Path, video_root: Path | None = None) -> int:
    """Good records of one shard → a parquet file of the published schema; returns the row count.

    Reads only the published columns (and `error`), batch by batch, and writes deterministically, so the
    same shard always gives the same bytes (and the hub comparison sees it unchanged)."""
    columns = [n for n in PUBLISHED_SCHEMA.names] + ["error"]
    rows = 0
    tmp = target.with_name(f".{target.name}.tmp")
    writer = None
    try:
        with pq.ParquetFile(shard) as handle:
            for batch in handle.iter_batches(batch_size=BATCH_ROWS, columns=columns):
                good = batch.filter(pc.is_null(batch.column("error")))
                if good.num_rows == 0:
                    continue
                videos = pa.array([_relative_video(v, video_root) for v in good.column("video").to_pylist()], pa.string())
                arrays = [videos if name == "video" else good.column(name) for name in PUBLISHED_SCHEMA.names]
                table = pa.Table.from_arrays(arrays, schema=PUBLISHED_SCHEMA)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, PUBLISHED_SCHEMA, compression="zstd", write_statistics=True)
                writer.write_table(table)
                rows += good.num_rows
    except (OSError, pa.ArrowInvalid) as error:
        raise PublishError(f"{shard}: cannot read the shard: {error}") from None
    finally:
        if writer is not None:
            writer.close()
    if rows:
        os.replace(tmp, target)
    else:
        tmp.unlink(missing_ok=True)
    return rows


def _data_name(index: int, total: int) -> str:
    return f"{DATA_DIR}/{SPLIT}-{index:05d}-of-{total:05d}.parquet"


def build_layout(out: str | Path, target: str | Path, *, repo_id: str, license: str = DEFAULT_LICENSE,
                 video_root: Path | None = None, quality: RunQuality | None = None,
                 data_file_bytes: int | None = None) -> Layout:
    """Write the dataset folder for `out`'s shards into `target` (cached conversions in `target/.cache`),
    their good records repacked into data files of about `data_file_bytes` (default: `data_file_size()`)."""
    data_file_bytes = data_file_bytes or data_file_size()
    out, target = Path(out), Path(target)
    shards = shard_paths(out)
    if not shards:
        raise PublishError(f"{out}: no parquet shards to publish")
    cache = target / ".cache"
    cache.mkdir(parents=True, exist_ok=True)
    converted: list[tuple[Path, Path, int]] = []
    skipped: list[str] = []
    counts_file = cache / "rows.json"
    known_rows: dict[str, int] = json.loads(counts_file.read_text()) if counts_file.is_file() else {}
    for shard in shards:
        key = _shard_key(shard, video_root)
        cached = cache / f"{key}.parquet"
        if key in known_rows and (known_rows[key] == 0 or cached.is_file()):
            rows = known_rows[key]
        else:
            rows = convert_shard(shard, cached, video_root)
            known_rows[key] = rows
        name = shard.relative_to(shard_folder(out)).as_posix()
        if rows == 0:
            skipped.append(name)
            continue
        converted.append((shard, cached, rows))
    counts_file.write_text(json.dumps(known_rows, indent=1, sort_keys=True))
    if not converted:
        raise PublishError(f"{out}: no good record to publish (every record carries an error)")

    for sub in (DATA_DIR, "stats"):
        if (target / sub).exists():
            shutil.rmtree(target / sub)
    (target / DATA_DIR).mkdir(parents=True)
    files: dict[str, str] = {}
    names = [shard.relative_to(shard_folder(out)).as_posix() for shard, _, _ in converted]
    groups = pack_shards(names, [cached.stat().st_size for _, cached, _ in converted], data_file_bytes)
    total = len(groups)
    packs_dir = cache / "packs"
    packs_dir.mkdir(exist_ok=True)
    used: set[str] = set()
    for index, members in enumerate(groups):
        parts = [converted[i][1] for i in members]
        key = hashlib.sha256("|".join(p.stem for p in parts).encode()).hexdigest()[:24]
        pack = parts[0] if len(parts) == 1 else packs_dir / f"{key}.parquet"
        if len(parts) > 1 and not pack.is_file():
            write_pack(parts, pack)
        used.add(pack.name)
        path = target / _data_name(index, total)
        try:
            os.link(pack, path)
        except OSError:
            shutil.copyfile(pack, path)
        files[_data_name(index, total)] = _sha256(path)
    for stale in packs_dir.glob("*.parquet"):  # packs no data file uses any more
        if stale.name not in used:
            stale.unlink(missing_ok=True)

    if quality is None:  # the stored report when current; else computed without touching quality/run.json
        quality = fresh_run_quality(out)
        if quality is None:
            writable = os.access(out, os.W_OK)
            if writable:
                shard_figures(out)  # store per-shard figures: the next publish reads only new shards
            quality = compute_run_quality(out, previous_runs=(), write=False)
    stats = _public_quality(quality)
    (target / "stats").mkdir(parents=True, exist_ok=True)
    (target / STATS_FILE).write_text(json.dumps(stats, indent=1, sort_keys=True) + "\n")
    files[STATS_FILE] = _sha256(target / STATS_FILE)

    records = sum(rows for _, _, rows in converted)
    data_paths = [target / _data_name(i, total) for i in range(total)]
    card = dataset_card(repo_id, data_paths, records, quality, license=license, reviewed=card_section(out))
    (target / "README.md").write_text(card)
    files["README.md"] = _sha256(target / "README.md")
    return Layout(root=str(target), records=records, files=dict(sorted(files.items())), shards=names,
                  packs=[[names[i] for i in members] for members in groups], skipped_shards=skipped)


def data_file_size() -> int:
    """The target size of a data file in bytes: VIDTHINKER_PUBLISH__DATA_FILE_MB (default 256) MB."""
    raw = os.environ.get("VIDTHINKER_PUBLISH__DATA_FILE_MB", "")
    try:
        mb = float(raw) if raw else DATA_FILE_MB
    except ValueError:
        raise PublishError(f"VIDTHINKER_PUBLISH__DATA_FILE_MB={raw!r}: not a number of megabytes") from None
    if mb <= 0:
        raise PublishError(f"VIDTHINKER_PUBLISH__DATA_FILE_MB={raw!r}: must be > 0")
    return max(1, int(mb * 1024 * 1024))


def _boundary_hash(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")


def pack_shards(names: Sequence[str], sizes: Sequence[int], target: int) -> list[list[int]]:
    """Group consecutive shards (indexes) into data files of about `target` bytes, content-defined.

    A file closes after shard i once it holds >= target/2 bytes and the hash of i's name falls on a
    boundary (probability 1/m, m = the power of two nearest to target / (2 x mean shard size)), or once it
    holds >= 2 x target. Boundaries depend on names and on the sizes since the last boundary only, so after
    a change the grouping falls back into step at the next boundary both share."""
    if not names:
        return []
    mean = max(1.0, sum(sizes) / len(sizes))
    m = 1 << max(0, round(math.log2(max(1.0, target / (2 * mean)))))
    groups: list[list[int]] = []
    current: list[int] = []
    held = 0
    for i, (name, size) in enumerate(zip(names, sizes)):
        current.append(i)
        held += size
        if held >= 2 * target or (held >= target / 2 and _boundary_hash(name) % m == 0):
            groups.append(current)
            current, held = [], 0
    if current:
        groups.append(current)
    return groups


def write_pack(parts: Sequence[Path], target: Path) -> None:
    """Concatenate converted shard files into one data file, in row groups of up to BATCH_ROWS rows,
    streaming (memory: one row group); deterministic, so the same parts give the same bytes."""
    tmp = target.with_name(f".{target.name}.tmp")
    buffered: list[pa.Table] = []
    rows = 0
    with pq.ParquetWriter(tmp, PUBLISHED_SCHEMA, compression="zstd", write_statistics=True) as writer:
        for part in parts:
            with pq.ParquetFile(part) as handle:
                for batch in handle.iter_batches(batch_size=BATCH_ROWS):
                    buffered.append(pa.Table.from_batches([batch]).cast(PUBLISHED_SCHEMA))
                    rows += batch.num_rows
                    if rows >= BATCH_ROWS:
                        writer.write_table(pa.concat_tables(buffered), row_group_size=BATCH_ROWS)
                        buffered, rows = [], 0
        if buffered:
            writer.write_table(pa.concat_tables(buffered), row_group_size=BATCH_ROWS)
    os.replace(tmp, target)


def _public_quality(quality: RunQuality) -> dict[str, Any]:
    """The figures without local paths."""
    data = quality.model_dump(mode="json", exclude={"run_dir", "drift"})
    if data.get("ground_truth_manifest"):
        data["ground_truth_manifest"] = Path(data["ground_truth_manifest"]).name
    return data


# --------------------------------------------------------------------------- dataset card


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


# --------------------------------------------------------------------------- hub


def _scrub(text: str, token: str | None) -> str:
    return redact(text, secrets=(token,))  # vidthinker.redact: the token, hf_… tokens, URL credentials


def _endpoint() -> str:
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _hub_error(error: Exception, token: str | None, doing: str, repo_id: str) -> PublishError:
    """A hub failure as a PublishError whose message says what to do (token scrubbed)."""
    from huggingface_hub.errors import HfHubHTTPError

    endpoint = _endpoint()
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        status = error.response.status_code
        server = _scrub(str(getattr(error, "server_message", "") or "").strip(), token)
        detail = f" (hub says: {server})" if server else ""
        if status == 401:
            return PublishError(f"{doing}: the Hugging Face token was rejected by {endpoint} (401 Unauthorized){detail}. "
                                "Set HF_TOKEN to a valid write token (https://huggingface.co/settings/tokens).")
        if status == 403:
            return PublishError(f"{doing}: the token may not write to {repo_id} (403 Forbidden){detail}. "
                                "Use a write token of the repository's owner or organisation.")
        if status == 404:
            return PublishError(f"{doing}: {repo_id} or its revision was not found on {endpoint} (404){detail}.")
        if status in (409, 412):
            return PublishError(f"{doing}: the repository changed meanwhile ({status}){detail}; publish again.",
                                retryable=True)
        return PublishError(f"{doing}: the hub at {endpoint} answered {status}{detail}.", retryable=status >= 500 or status == 429)
    return PublishError(f"{doing}: cannot talk to the hub at {endpoint}: {type(error).__name__}: "
                        f"{redact_then_truncate(str(error), 300, secrets=(token,))}", retryable=True)


def hub_token() -> str:
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise PublishError("no Hugging Face token: set HF_TOKEN to a write token "
                           "(https://huggingface.co/settings/tokens) or run `hf auth login`.")
    return token


def _api(token: str):
    from huggingface_hub import HfApi

    return HfApi(endpoint=_endpoint(), token=token, library_name="vidthinker", library_version=__version__)


def _check_token(api, token: str, repo_id: str) -> str:
    try:
        who = api.whoami()
    except Exception as error:  # noqa: BLE001 - mapped to a clear message
        raise _hub_error(error, token, "checking the token", repo_id) from None
    role = ((who.get("auth") or {}).get("accessToken") or {}).get("role")
    if role == "read":
        raise PublishError("the Hugging Face token is read-only; publishing needs a write token "
                           "(https://huggingface.co/settings/tokens).")
    return str(who.get("name") or "?")


def _remote_files(api, repo_id: str, revision: str) -> dict[str, Any]:
    from huggingface_hub.hf_api import RepoFile

    return {f.path: f for f in api.list_repo_tree(repo_id, repo_type="dataset", revision=revision, recursive=True)
            if isinstance(f, RepoFile)}


def plan_changes(layout: Layout, remote: Mapping[str, Any]) -> list[FileAction]:
    """Compare the local layout with the hub's files (by content hash) and decide what to do with each."""
    root = Path(layout.root)
    on_hub_by_sha = {f.lfs.sha256: path for path, f in remote.items() if getattr(f, "lfs", None)}
    packs = layout.packs or [[s] for s in layout.shards]
    shard_of = {_data_name(i, len(packs)): _describe_pack(members) for i, members in enumerate(packs)}
    actions: list[FileAction] = []
    for path, sha in layout.files.items():
        size = (root / path).stat().st_size
        there = remote.get(path)
        if there is not None:
            same = (there.lfs.sha256 == sha) if getattr(there, "lfs", None) else (
                there.blob_id == git_blob_sha1((root / path).read_bytes()))
            if same:
                actions.append(FileAction(path=path, action="unchanged", size=size, sha256=sha, source=shard_of.get(path)))
                continue
        if sha in on_hub_by_sha and on_hub_by_sha[sha] != path:
            actions.append(FileAction(path=path, action="copy", size=size, sha256=sha, source=on_hub_by_sha[sha]))
            continue
        actions.append(FileAction(path=path, action="upload", size=size, sha256=sha, source=shard_of.get(path)))
    for path in sorted(remote):
        if path.startswith(MANAGED_PREFIXES) and path not in layout.files:
            actions.append(FileAction(path=path, action="delete"))
    return actions


def _describe_pack(members: Sequence[str]) -> str:
    return members[0] if len(members) == 1 else f"{members[0]} … {members[-1]} ({len(members)} shards)"


def _next_tag(api, repo_id: str) -> tuple[str, dict[str, str]]:
    refs = api.list_repo_refs(repo_id, repo_type="dataset")
    tags = {t.name: t.target_commit for t in refs.tags}
    numbers = [int(m.group(1)) for name in tags if (m := TAG_PATTERN.match(name))]
    return f"v{max(numbers, default=0) + 1}", tags


def publish_dataset(
    out: str | Path,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool = False,
    dry_run: bool = False,
    license: str = DEFAULT_LICENSE,
    video_root: Path | None = None,
    tag: str | None = None,
    staging: Path | None = None,
    commit_message: str | None = None,
    data_file_bytes: int | None = None,
    min_reviewed_frame_precision: float | None = None,
) -> PublishResult:
    """Lay out `out`'s shards as a dataset and bring `repo_id` (a dataset repo) up to date with it; refused
    (ReviewGateError) when the run's reviewed frame precision is under `min_reviewed_frame_precision`."""
    out = Path(out)
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
        raise PublishError(f"repo id {repo_id!r} must look like 'owner/name'")
    branch = revision or "main"
    if not shard_folder(out).is_dir():
        raise PublishError(f"{out}: no such run folder")
    refused = review_gate_failure(out, min_reviewed_frame_precision)
    if refused:
        raise ReviewGateError(refused)
    target = Path(staging) if staging else out / "_hf" / repo_id.replace("/", "__")
    try:
        layout = build_layout(out, target, repo_id=repo_id, license=license, video_root=video_root,
                              data_file_bytes=data_file_bytes)
    except SchemaError as error:
        raise PublishError(str(error)) from None
    result = PublishResult(repo_id=repo_id, revision=branch, status="dry-run" if dry_run else "published",
                           layout=layout.root, records=layout.records, data_files=len(layout.packs))

    if dry_run:
        from huggingface_hub import get_token

        token = get_token()
        remote: dict[str, Any] = {}
        if token is None:
            result.note = "no token: compared with an empty repository"
        else:
            api = _api(token)
            try:
                remote = _remote_files(api, repo_id, branch)
            except Exception as error:  # noqa: BLE001 - a dry run only reports
                result.note = f"hub not compared: {_hub_error(error, token, 'listing files', repo_id)}"
        result.files = plan_changes(layout, remote)
        result.uploaded_bytes = sum(f.size for f in result.files if f.action == "upload")
        return result

    token = hub_token()
    api = _api(token)
    user = _check_token(api, token, repo_id)
    log.info("publishing %s (%d records, %d data files) to %s as %s", out, layout.records, len(layout.packs), repo_id, user)
    try:
        repo_url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        result.url = str(repo_url)
        if branch != "main":
            branches = {b.name for b in api.list_repo_refs(repo_id, repo_type="dataset").branches}
            if branch not in branches:
                api.create_branch(repo_id, branch=branch, repo_type="dataset", exist_ok=True)
        info = api.repo_info(repo_id, repo_type="dataset", revision=branch)
        result.private = info.private
        head = info.sha
        remote = _remote_files(api, repo_id, branch)
    except Exception as error:  # noqa: BLE001
        raise _hub_error(error, token, f"preparing {repo_id}@{branch}", repo_id) from None

    actions = plan_changes(layout, remote)
    result.files = actions
    changes = [a for a in actions if a.action != "unchanged"]
    try:
        if changes:
            commit = api.create_commit(
                repo_id,
                operations=_operations(layout, changes),
                commit_message=commit_message or _message(layout, changes),
                commit_description=f"vidthinker {__version__}; {layout.records} records in {len(layout.packs)} file(s).",
                repo_type="dataset",
                revision=branch,
                parent_commit=head,
            )
            head = commit.oid
            result.uploaded_bytes = sum(a.size for a in changes if a.action == "upload")
        else:
            result.status = "unchanged"
        name, tags = _next_tag(api, repo_id)
        at_head = sorted(t for t, target_commit in tags.items() if target_commit == head)
        if tag is not None and tag in tags:
            if tags[tag] != head:
                raise PublishError(f"tag {tag!r} already names another commit of {repo_id}; choose another tag")
            result.tag = tag
        elif tag is None and at_head:  # nothing new since the tagged version
            result.tag = at_head[-1]
        else:
            result.tag = tag or name
            api.create_tag(repo_id, tag=result.tag, tag_message=_message(layout, changes), revision=head,
                           repo_type="dataset")
    except PublishError:
        raise
    except Exception as error:  # noqa: BLE001
        raise _hub_error(error, token, f"committing to {repo_id}@{branch}", repo_id) from None
    result.commit = head
    log.info("%s %s@%s: %s, tag %s", result.status, repo_id, branch, result.counts(), result.tag)
    return result


def _message(layout: Layout, changes: Sequence[FileAction]) -> str:
    new = sum(1 for a in changes if a.action == "upload" and a.path.startswith(DATA_DIR))
    return f"Publish {layout.records} records ({len(layout.packs)} data files, {new} new)"


def _operations(layout: Layout, changes: Sequence[FileAction]) -> list:
    from huggingface_hub import CommitOperationAdd, CommitOperationCopy, CommitOperationDelete

    root = Path(layout.root)
    ops: list = []
    for a in changes:
        if a.action == "upload":
            ops.append(CommitOperationAdd(path_in_repo=a.path, path_or_fileobj=str(root / a.path)))
        elif a.action == "copy":
            ops.append(CommitOperationCopy(src_path_in_repo=a.source, path_in_repo=a.path))
    # deletions last: a copy's source may be a file this commit removes
    ops += [CommitOperationDelete(path_in_repo=a.path) for a in changes if a.action == "delete"]
    return ops


# --------------------------------------------------------------------------- Airflow


def publish_request(params: Mapping[str, Any], events: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """What one publish DAG run publishes: its params, else the newest shards-asset event's `out_dir`,
    else `VIDTHINKER_AIRFLOW__OUT_DIR`; the repo from the `repo_id` param or `VIDTHINKER_PUBLISH__REPO_ID`."""
    out_dir = params.get("out_dir")
    if not out_dir:
        for extra in reversed(list(events)):
            if extra.get("out_dir"):
                out_dir = extra["out_dir"]
                break
    out_dir = out_dir or os.environ.get("VIDTHINKER_AIRFLOW__OUT_DIR")
    repo_id = params.get("repo_id") or os.environ.get("VIDTHINKER_PUBLISH__REPO_ID")
    if not out_dir:
        raise PublishError("nothing to publish: give the `out_dir` param (or trigger from the shards asset)")
    if not repo_id:
        raise PublishError("no repository: give the `repo_id` param or set VIDTHINKER_PUBLISH__REPO_ID")
    return {
        "out": out_dir,
        "repo_id": repo_id,
        "revision": params.get("revision") or None,
        "private": bool(params.get("private", True)),
        "dry_run": bool(params.get("dry_run", False)),
        "tag": params.get("tag") or None,
    }


@redacted_io  # XCom and task errors leave the process: vidthinker.redact
def publish_for_airflow(params: Mapping[str, Any], events: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The publish DAG's task: resolve the request, publish, return a JSON-able summary for XCom."""
    from vidthinker.config import load_settings

    request = publish_request(params, events)
    result = publish_dataset(request["out"], request["repo_id"], revision=request["revision"], private=request["private"],
                             dry_run=request["dry_run"], tag=request["tag"],
                             min_reviewed_frame_precision=load_settings().publish.min_reviewed_frame_precision)
    summary = result.model_dump(mode="json", exclude={"files"})
    summary["counts"] = result.counts()
    return summary


# --------------------------------------------------------------------------- command


def publish(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (with shards/) or the annotate DAG's out_dir.")],
    repo_id: Annotated[str, typer.Option("--repo-id", "-r", help="Dataset repository on the hub, e.g. my-org/videoitg-annotations.")],
    revision: Annotated[str | None, typer.Option(help="Branch to publish to (created from main when missing). Default: main.")] = None,
    private: Annotated[bool, typer.Option("--private/--public", help="Visibility when the repository is created.")] = True,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Build the layout and show what would change; upload nothing.")] = False,
    license: Annotated[str, typer.Option(help="License id for the dataset card.")] = DEFAULT_LICENSE,
    video_root: Annotated[Path | None, typer.Option(help="Publish video paths relative to this folder (default: folder/file name).")] = None,
    tag: Annotated[str | None, typer.Option(help="Tag for this version (default: v<N+1>).")] = None,
    data_file_mb: Annotated[float | None, typer.Option(min=0.001, help="Size of a published data file in MB (shards are repacked; default VIDTHINKER_PUBLISH__DATA_FILE_MB or 256).")] = None,
) -> None:
    """Publish the good records of a run as a Hugging Face dataset (data/train-*.parquet, dataset card
    with statistics, stats/quality.json), uploading only files whose content changed, and tag the version.

    Token: HF_TOKEN or `hf auth login`. HF_ENDPOINT selects another hub. Exit 0 on success, 2 on bad
    input or a release the review gate refuses (setting publish.min_reviewed_frame_precision: the reviewed
    frame precision's Wilson 95% lower bound must reach it), 1 when the hub refuses or cannot be reached.
    """
    from rich.console import Console
    from rich.table import Table

    from vidthinker.cli import settings_from
    from vidthinker.shards import MOVE_REMEDY, DuplicateRecordsError, check_duplicate_ids

    gate = settings_from(ctx).publish.min_reviewed_frame_precision
    console = Console(stderr=True)
    try:
        check_duplicate_ids(shard_paths(out), remedy=MOVE_REMEDY)  # a published dataset must not hold a record twice
    except (DuplicateRecordsError, SchemaError) as error:
        console.print(f"[bold red]error:[/] {error}", highlight=False)
        raise typer.Exit(2) from None
    try:
        result = publish_dataset(out, repo_id, revision=revision, private=private, dry_run=dry_run, license=license,
                                 video_root=video_root, tag=tag,
                                 data_file_bytes=int(data_file_mb * 1024 * 1024) if data_file_mb else None,
                                 min_reviewed_frame_precision=gate)
    except PublishError as error:
        console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        bad_input = isinstance(error, ReviewGateError) or "no parquet shards" in str(error) or "must look like" in str(error)
        raise typer.Exit(2 if bad_input else 1) from None
    table = Table("file", "action", "bytes", "source", title=f"{repo_id}@{result.revision} ({result.status})")
    for f in result.files:
        table.add_row(f.path, f.action, f"{f.size:,}", f.source or "")
    Console().print(table)
    Console().print(f"{result.records} records in {result.data_files} data files · uploaded {result.uploaded_bytes:,} bytes"
                    + (f" · commit {result.commit[:12]}" if result.commit else "") + (f" · tag {result.tag}" if result.tag else "")
                    + (f" · {result.note}" if result.note else "") + f"\nlayout: {result.layout}")
