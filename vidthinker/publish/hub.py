"""The Hugging Face hub client: token, endpoint, the repository's files and tags, and hub failures as
`PublishError`s that say what to do. The token comes from `HF_TOKEN` or huggingface-hub's login file
(`huggingface_hub.get_token`) and never appears in a log line or an error message."""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any

from vidthinker import __version__
from vidthinker.publish.errors import PublishError
from vidthinker.redact import redact, redact_then_truncate

TAG_PATTERN = re.compile(r"^v(\d+)$")


def git_blob_sha1(data: bytes) -> str:
    """The git blob id of `data`: what the hub reports for a small (non-LFS) file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _scrub(text: str, token: str | None) -> str:
    return redact(text, secrets=(token,))  # vidthinker.redact: the token, hf_… tokens, URL credentials


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def hub_error(error: Exception, token: str | None, doing: str, repo_id: str) -> PublishError:
    """A hub failure as a PublishError whose message says what to do (token scrubbed)."""
    from huggingface_hub.errors import HfHubHTTPError

    endpoint = hub_endpoint()
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


def hub_api(token: str):
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub_endpoint(), token=token, library_name="vidthinker", library_version=__version__)


def check_write_token(api, token: str, repo_id: str) -> str:
    """The token's user name; PublishError when the hub rejects the token or it is read-only."""
    try:
        who = api.whoami()
    except Exception as error:  # noqa: BLE001 - mapped to a clear message
        raise hub_error(error, token, "checking the token", repo_id) from None
    role = ((who.get("auth") or {}).get("accessToken") or {}).get("role")
    if role == "read":
        raise PublishError("the Hugging Face token is read-only; publishing needs a write token "
                           "(https://huggingface.co/settings/tokens).")
    return str(who.get("name") or "?")


def remote_files(api, repo_id: str, revision: str) -> dict[str, Any]:
    """The files of a dataset repository's revision: path → `RepoFile` (LFS sha256 or git blob id)."""
    from huggingface_hub.hf_api import RepoFile

    return {f.path: f for f in api.list_repo_tree(repo_id, repo_type="dataset", revision=revision, recursive=True)
            if isinstance(f, RepoFile)}


def next_version_tag(api, repo_id: str) -> tuple[str, dict[str, str]]:
    """`v<N+1>` after the highest `v<N>` tag, and every tag → the commit it names."""
    refs = api.list_repo_refs(repo_id, repo_type="dataset")
    tags = {t.name: t.target_commit for t in refs.tags}
    numbers = [int(m.group(1)) for name in tags if (m := TAG_PATTERN.match(name))]
    return f"v{max(numbers, default=0) + 1}", tags
