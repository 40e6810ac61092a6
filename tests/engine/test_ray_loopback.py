"""An embedded Ray (no cluster address) listens on loopback only, and its start logs no warning lines."""

from __future__ import annotations

import ipaddress
import logging

import pytest

from tests.extras import require

ray = require("ray", "ray")
psutil = require("psutil", "dev")

from vidthinker.config import load_settings, with_overrides  # noqa: E402
from vidthinker.engine import ray_engine  # noqa: E402

pytestmark = pytest.mark.timeout(300)


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def test_embedded_ray_listens_on_loopback_only(monkeypatch, capfd, caplog):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    if ray.is_initialized():
        ray.shutdown()
    settings = with_overrides(load_settings(), {"engine": {"local_num_cpus": 1}})
    caplog.set_level(logging.INFO, logger="vidthinker.engine.ray_engine")
    assert ray_engine.init_ray(None, settings) is True
    try:

        @ray.remote(num_cpus=1)
        class Probe:
            def ip(self) -> str:
                return ray.util.get_node_ip_address()

        actor = Probe.remote()
        assert ray.get(actor.ip.remote(), timeout=120) == "127.0.0.1"
        ours = {p.pid for p in psutil.Process().children(recursive=True)}
        listening = [(psutil.Process(c.pid).name(), c.laddr.ip) for c in psutil.net_connections("inet")
                     if c.status == psutil.CONN_LISTEN and c.pid in ours]
        assert listening, "Ray started no listening process?"
        assert [entry for entry in listening if not _is_loopback(entry[1])] == []
    finally:
        ray.shutdown()
    err = capfd.readouterr().err
    assert "Token authentication is enabled" not in err
    assert "listen on loopback only" in caplog.text
