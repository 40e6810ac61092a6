"""Readers and writers for the files users bring and take away.

Manifests come as JSONL or parquet (`ManifestRow`), or as LLaVA-Video-178K-style JSON (what the paper
annotated). Records leave as parquet shards or as VideoITG-40K JSON, and public VideoITG-40K JSON comes
back in as records. Every reader names the file and row of the first thing it cannot accept.

One module per job, each importing only those above it in this list:

* `release_files`: what reading the released JSON files shares (UTF-8 text, a JSON list, a released
  video path joined onto its root, a filename-safe video id);
* `llava`: LLaVA-Video-178K QA files, as released, → manifest rows (`import_llava_video`);
* `manifest`: `read_manifest` (JSONL, parquet, LLaVA-Video JSON) and `write_manifest`;
* `records`: the record shards under a folder (`record_paths`) and their records (`iter_records`);
* `videoitg`: VideoITG-40K JSON export (streamed from shard folders) and import;
* `ground_truth`: records from a manifest's ground truth (`records_from_ground_truth`).
"""

from vidthinker.formats.ground_truth import records_from_ground_truth
from vidthinker.formats.llava import LLAVA_QA_GLOB, import_llava_video, llava_video_files
from vidthinker.formats.manifest import read_manifest, write_manifest
from vidthinker.formats.records import iter_records, record_paths
from vidthinker.formats.videoitg import export_videoitg_json, import_videoitg_json

__all__ = [
    "LLAVA_QA_GLOB",
    "export_videoitg_json",
    "import_llava_video",
    "import_videoitg_json",
    "iter_records",
    "llava_video_files",
    "read_manifest",
    "record_paths",
    "records_from_ground_truth",
    "write_manifest",
]
