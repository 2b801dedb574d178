"""`hop sandbox down HOST...` removes only the named hosts (state, namespace,
inventory) and a later `up` boots them again; the machine is faked, no root needed."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hop3.cli.main import cli
from hop3.errors import HopError
from hop3.sandbox import hosts, network
from hop3.targets import hop_inventory_path, load_inventory


class FakeMachine:
    """Stands for nspawn processes and namespaces: which hosts run, what was stopped."""

    def __init__(self, tmp_path):
        self.rootfs = tmp_path / "image"
        self.alive: set[int] = set()
        self.stopped: list[int] = []
        self.booted: list[int] = []

    def stop(self, index, pid):
        self.stopped.append(index)
        self.alive.discard(pid)

    def boot(self, index, rootfs, authorized):
        self.booted.append(index)
        self.alive.add(1000 + index)
        return hosts.SandboxHost(
            name=f"sandbox-{index}", index=index, address=str(network.host_address(index)),
            pid=1000 + index, image=str(rootfs), started=0.0,
        )  # fmt: skip


@pytest.fixture
def machine(tmp_path, monkeypatch):
    for name in ("HOP3_CONFIG_DIR", "HOP3_STATE_DIR", "HOP3_CACHE_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    monkeypatch.delenv("HOP3_SANDBOX_NET", raising=False)
    fake = FakeMachine(tmp_path)

    def forbidden(*args, **kwargs):
        raise AssertionError("removing some hosts must leave the bridge alone")

    monkeypatch.setattr(hosts, "_preflight", lambda: None)
    monkeypatch.setattr(hosts, "_ensure_key", lambda: tmp_path / "authorized_keys")
    monkeypatch.setattr(hosts, "_stop", fake.stop)
    monkeypatch.setattr(hosts, "_boot", fake.boot)
    monkeypatch.setattr(hosts, "_wait_ready", lambda booted: None)
    monkeypatch.setattr(hosts, "_is_our_nspawn", lambda pid, index: pid in fake.alive)
    monkeypatch.setattr(hosts.image, "ensure_image", lambda echo: fake.rootfs)
    monkeypatch.setattr(hosts.image, "drop_other_images", lambda keep: None)
    monkeypatch.setattr(network, "read_forwarding", lambda: "0")
    monkeypatch.setattr(network, "ensure_bridge", lambda: None)
    monkeypatch.setattr(network, "netns_exists", lambda index: False)
    monkeypatch.setattr(network, "existing_indexes", lambda: [])
    monkeypatch.setattr(network, "remove_bridge", forbidden)
    monkeypatch.setattr(network, "write_forwarding", forbidden)
    return fake


def state_names() -> list[str]:
    return list(json.loads(hosts._state_file().read_text())["hosts"])


def group() -> list[str]:
    return load_inventory(hop_inventory_path()).hosts_of(hosts.GROUP)


def test_down_named_hosts_keeps_the_others(machine):
    hosts.up(4)
    assert machine.booted == [1, 2, 3, 4]
    assert hosts.down(["sandbox-3", "sandbox-4", "sandbox-3"]) == ["sandbox-3", "sandbox-4"]
    assert machine.stopped == [3, 4]
    assert state_names() == ["sandbox-1", "sandbox-2"]
    assert group() == ["sandbox-1", "sandbox-2"]
    assert [row["name"] for row in hosts.status()] == ["sandbox-1", "sandbox-2"]


def test_up_boots_the_removed_hosts_again(machine):
    hosts.up(3)
    hosts.down(["sandbox-2"])
    machine.booted.clear()
    up = hosts.up(3)
    assert machine.booted == [2]
    assert [h.name for h in up] == ["sandbox-1", "sandbox-2", "sandbox-3"]
    assert state_names() == ["sandbox-1", "sandbox-2", "sandbox-3"]
    assert group() == ["sandbox-1", "sandbox-2", "sandbox-3"]


def test_down_unknown_host_names_the_known_ones_and_stops_nothing(machine):
    hosts.up(2)
    with pytest.raises(HopError) as err:
        hosts.down(["sandbox-2", "sandbox-9"])
    assert "sandbox-9" in err.value.message
    assert err.value.hint == "Known sandbox hosts: sandbox-1, sandbox-2."
    assert machine.stopped == []
    assert group() == ["sandbox-1", "sandbox-2"]


def test_down_without_hosts_refuses_any_name(machine):
    with pytest.raises(HopError) as err:
        hosts.down(["sandbox-1"])
    assert err.value.hint == "Known sandbox hosts: none."


def test_down_named_host_whose_namespace_outlived_the_state(machine, monkeypatch):
    hosts.up(1)
    monkeypatch.setattr(network, "existing_indexes", lambda: [1, 5])
    assert hosts.down(["sandbox-5"]) == ["sandbox-5"]
    assert machine.stopped == [5]
    assert group() == ["sandbox-1"]


def test_down_the_last_host_removes_the_group(machine):
    hosts.up(1)
    hosts.down(["sandbox-1"])
    assert state_names() == []
    assert load_inventory(hop_inventory_path()).groups() == []


def test_cli_down_passes_the_hosts(monkeypatch):
    seen = []

    def fake_down(names=()):
        seen.append(tuple(names))
        return list(names) or ["sandbox-1", "sandbox-2"]

    monkeypatch.setattr("hop3.sandbox.down", fake_down)
    runner = CliRunner()
    result = runner.invoke(cli, ["sandbox", "down", "sandbox-3", "sandbox-4"])
    assert result.exit_code == 0, result.output
    assert result.output == "Removed sandbox-3, sandbox-4.\n"
    result = runner.invoke(cli, ["sandbox", "down"])
    assert result.output == "Removed 2 sandbox host(s).\n"
    assert seen == [("sandbox-3", "sandbox-4"), ()]
