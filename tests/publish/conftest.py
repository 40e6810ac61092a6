"""Publishing tests: demo runs, and a strict stub of the Hub's HTTP API that huggingface_hub talks to
through HF_ENDPOINT (legacy LFS transfer: HF_HUB_DISABLE_XET). The Airflow environment of tests/airflow
is reused (its conftest configures AIRFLOW_HOME before Airflow is imported)."""

from __future__ import annotations

import pytest

import tests.airflow.conftest as airflow_env  # noqa: F401 - sets the Airflow env before anything imports airflow
from tests.airflow.conftest import airflow_db  # noqa: F401 - fixture
from tests.demo_support import demo_root
from tests.publish.hub_stub import HubStub

WRITE_TOKEN = "hf_WriteTokenForTests0123456789abcd"
READ_TOKEN = "hf_ReadTokenForTests0123456789abcde"
OTHER_TOKEN = "hf_OtherUserToken0123456789abcdefg"
USER = "tester"
ORG = "vidthinker-org"


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    return demo_root(tmp_path_factory)


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """The stub hub, with HF_ENDPOINT/HF_TOKEN pointing at it and no other token source in reach."""
    from huggingface_hub import constants

    tokens = {
        WRITE_TOKEN: {"name": USER, "orgs": [ORG], "role": "write"},
        READ_TOKEN: {"name": USER, "orgs": [ORG], "role": "read"},
        OTHER_TOKEN: {"name": "someone-else", "orgs": [], "role": "write"},
    }
    with HubStub(tokens) as stub:
        monkeypatch.setenv("HF_ENDPOINT", stub.url)
        monkeypatch.setenv("HF_TOKEN", WRITE_TOKEN)
        monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
        monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token-file"))
        monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-stored-tokens"))
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the stub speaks the LFS protocol
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_PROGRESS_BARS", True)
        yield stub
