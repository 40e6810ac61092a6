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
                                             publish.data_file_mb, option --data-file-mb)
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

Modules, by job (imports point down this list):

- `command`: the `vidthinker publish` command (options, output, exit codes);
- `upload`: `publish_dataset`: the review gate, the layout, the comparison with the hub, one commit, a tag;
- `hub`: the huggingface_hub client (token, endpoint, errors without the token, file listing, tags);
- `layout`: the dataset folder: per-shard conversion, repacking into data files, stats, the card file;
- `card`: the dataset card (README.md: YAML metadata and the figures);
- `records`: the published row and its Arrow schema, the file names of the layout;
- `errors`: `PublishError`, `ReviewGateError`.

The Airflow task that calls `publish_dataset` is `vidthinker.orchestration.publish`. This file holds
the default license (the command's option default, so the CLI need not load `records`) and imports
nothing: importing `vidthinker.publish.errors` (the DAG file, at parse time) or `.command` (the CLI, at
start-up) does not load pyarrow, the quality figures or huggingface_hub.
"""

DEFAULT_LICENSE = "apache-2.0"  # the dataset card's license id unless --license gives another
