"""Sandbox refuses clearly, and makes nothing, when it cannot work here."""

from __future__ import annotations

import pytest

from hop3.errors import HopError
from hop3.sandbox import hosts, network


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    for name in ("HOP3_CONFIG_DIR", "HOP3_STATE_DIR", "HOP3_CACHE_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    monkeypatch.delenv("HOP3_SANDBOX_NET", raising=False)


def _forbid_changes(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("preflight must fail before touching the machine")

    monkeypatch.setattr(network, "ensure_bridge", boom)
    monkeypatch.setattr(hosts.image, "ensure_image", boom)


def test_up_without_root_is_refused(monkeypatch):
    _forbid_changes(monkeypatch)
    monkeypatch.setattr(hosts.os, "geteuid", lambda: 1000)
    with pytest.raises(HopError) as err:
        hosts.up(1)
    assert "needs root" in err.value.message
    assert "sudo" in err.value.hint


def test_up_without_nspawn_names_the_package(monkeypatch):
    _forbid_changes(monkeypatch)
    monkeypatch.setattr(hosts.os, "geteuid", lambda: 0)
    real_which = hosts.require_tools.__globals__["shutil"].which
    monkeypatch.setattr(
        "shutil.which", lambda tool: None if tool == "systemd-nspawn" else real_which(tool)
    )
    with pytest.raises(HopError) as err:
        hosts.up(1)
    assert "systemd-nspawn" in err.value.message
    assert "apt-get install systemd-container" in err.value.hint


@pytest.mark.parametrize("count", [0, -1, 51])
def test_up_refuses_silly_counts(count, monkeypatch):
    _forbid_changes(monkeypatch)
    with pytest.raises(HopError) as err:
        hosts.up(count)
    assert "-n between 1 and 50" in err.value.hint


def test_status_without_hosts_is_empty():
    assert hosts.status() == []


def test_addresses_and_names_stay_within_limits(monkeypatch):
    assert str(network.host_address(1)) == "10.213.0.11"
    assert all(len(network.veth_name(i)) <= 15 for i in range(1, 51))
    monkeypatch.setenv("HOP3_SANDBOX_NET", "9")
    assert str(network.host_address(50)) == "10.213.9.60"
    assert network.netns_name(3) == "hop3-sandbox9-3" and network.bridge() == "hop3sbr9"
    assert all(len(network.veth_name(i)) <= 15 for i in range(1, 51))
    monkeypatch.setenv("HOP3_SANDBOX_NET", "14")
    assert str(network.host_address(1)) == "10.213.14.11"
    assert network.netns_name(1) == "hop3-sandbox14-1" and network.bridge() == "hop3sbr14"
    assert all(len(network.veth_name(i)) <= 15 for i in range(1, 51))
    monkeypatch.setenv("HOP3_SANDBOX_NET", "100")
    with pytest.raises(HopError):
        network.subnet()
    assert hosts.host_names(3) == ["sandbox-1", "sandbox-2", "sandbox-3"]
