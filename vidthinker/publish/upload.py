"""`publish_dataset`: bring a dataset repository on the hub up to date with a run's layout. The review gate
first, then the layout, then a comparison with the revision on the hub by content hash: only changed files
are uploaded, renamed ones copied server-side, stale ones deleted, all in one commit, and the version tagged."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from vidthinker import __version__
from vidthinker.publish import DEFAULT_LICENSE
from vidthinker.publish.errors import PublishError, ReviewGateError
from vidthinker.publish.hub import (
    check_write_token,
    git_blob_sha1,
    hub_api,
    hub_error,
    hub_token,
    next_version_tag,
    remote_files,
)
from vidthinker.publish.layout import Layout, build_layout
from vidthinker.publish.records import DATA_DIR, MANAGED_PREFIXES, data_file_name
from vidthinker.quality.runs import shard_folder
from vidthinker.review import review_gate_failure
from vidthinker.schema import SchemaError

log = logging.getLogger("vidthinker.publish")


class FileAction(BaseModel):
    """What one publish does with one file of the layout (or of the hub, for a deletion)."""

    path: str
    action: Literal["upload", "copy", "unchanged", "delete"]
    size: int = 0
    sha256: str | None = None
    source: str | None = Field(None, description="the source shard (data files) or the hub path copied from")


class PublishResult(BaseModel):
    """What one publish did (or, in a dry run, would do)."""

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


def plan_changes(layout: Layout, remote: Mapping[str, Any]) -> list[FileAction]:
    """Compare the local layout with the hub's files (by content hash) and decide what to do with each."""
    root = Path(layout.root)
    on_hub_by_sha = {f.lfs.sha256: path for path, f in remote.items() if getattr(f, "lfs", None)}
    packs = layout.packs or [[s] for s in layout.shards]
    shard_of = {data_file_name(i, len(packs)): _describe_pack(members) for i, members in enumerate(packs)}
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
            api = hub_api(token)
            try:
                remote = remote_files(api, repo_id, branch)
            except Exception as error:  # noqa: BLE001 - a dry run only reports
                result.note = f"hub not compared: {hub_error(error, token, 'listing files', repo_id)}"
        result.files = plan_changes(layout, remote)
        result.uploaded_bytes = sum(f.size for f in result.files if f.action == "upload")
        return result

    token = hub_token()
    api = hub_api(token)
    user = check_write_token(api, token, repo_id)
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
        remote = remote_files(api, repo_id, branch)
    except Exception as error:  # noqa: BLE001
        raise hub_error(error, token, f"preparing {repo_id}@{branch}", repo_id) from None

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
        name, tags = next_version_tag(api, repo_id)
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
        raise hub_error(error, token, f"committing to {repo_id}@{branch}", repo_id) from None
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
