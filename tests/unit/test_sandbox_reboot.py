"""Host disks through `up`/`down`, and `reboot`: which hosts keep their disk,
which lose it, what a reboot does in which order. The machine (nspawn, mounts,
namespaces) is faked; disks are real directories. No root needed."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hop3.cli.main import cli
from hop3.errors import HopError
from hop3.sandbox import disk, hosts, network


class FakeMachine:
    """Stands for nspawn and the mounts: which hosts run, and the order of events."""

    def __init__(self, tmp_path):
        self.rootfs = tmp_path / "image"
        (self.rootfs / "etc").mkdir(parents=True)
        (self.rootfs / "etc/os-release").write_text("ID=debian\n")
        self.alive: set[int] = set()
        self.events: list[tuple[str, int]] = []
        self.next_pid = 1000

    def boot(self, index, rootfs, authorized):
        self.events.append(("boot", index))
        hosts._disk(index).upper.mkdir(parents=True, exist_ok=True)
        self.next_pid += 1
        self.alive.add(self.next_pid)
        return hosts.SandboxHost(
            name=f"sandbox-{index}", index=index, address=str(network.host_address(index)),
            pid=self.next_pid, image=str(rootfs), started=0.0,
        )  # fmt: skip

    def power_off(self, index, pid):
        self.events.append(("power_off", index))
        self.alive.discard(pid)


@pytest.fixture
def machine(tmp_path, monkeypatch):
    for name in ("HOP3_CONFIG_DIR", "HOP3_STATE_DIR", "HOP3_CACHE_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    monkeypatch.delenv("HOP3_SANDBOX_NET", raising=False)
    fake = FakeMachine(tmp_path)
    monkeypatch.setattr(hosts, "_preflight", lambda: None)
    monkeypatch.setattr(hosts, "_raise_inotify_limit", lambda: None)
    monkeypatch.setattr(hosts, "_ensure_key", lambda: tmp_path / "authorized_keys")
    monkeypatch.setattr(hosts, "_boot", fake.boot)
    monkeypatch.setattr(hosts, "_power_off", fake.power_off)
    monkeypatch.setattr(hosts, "_wait_ready", lambda booted: None)
    monkeypatch.setattr(hosts, "_is_our_nspawn", lambda pid, index: pid in fake.alive)
    monkeypatch.setattr(hosts.image, "ensure_image", lambda echo: fake.rootfs)
    monkeypatch.setattr(hosts.image, "drop_other_images", lambda keep: None)
    monkeypatch.setattr(network, "read_forwarding", lambda: "0")
    monkeypatch.setattr(network, "write_forwarding", lambda value: None)
    monkeypatch.setattr(network, "ensure_bridge", lambda: None)
    monkeypatch.setattr(network, "remove_bridge", lambda: None)
    monkeypatch.setattr(network, "netns_exists", lambda index: False)
    monkeypatch.setattr(network, "remove_netns", lambda index: None)
    monkeypatch.setattr(network, "existing_indexes", lambda: [])
    monkeypatch.setattr(network, "flush_firewall", lambda i: fake.events.append(("flush", i)))
    return fake


def write_on_disk(index: int) -> None:
    (hosts._disk(index).upper / "data").write_text("kept")


def on_disk(index: int) -> bool:
    return (hosts._disk(index).upper / "data").exists()


def test_up_keeps_disks_and_fresh_wipes_them(machine):
    hosts.up(2)
    write_on_disk(1)
    write_on_disk(2)
    machine.events.clear()
    hosts.up(2)
    assert machine.events == [] and on_disk(1)
    hosts.up(2, fresh=True)
    assert not on_disk(1) and not on_disk(2)


def test_a_stopped_host_boots_again_on_its_disk(machine):
    (host,) = hosts.up(1)
    write_on_disk(1)
    machine.alive.discard(host.pid)  # it crashed or rebooted by itself
    hosts.up(1)
    assert on_disk(1)


def test_down_and_fewer_hosts_remove_the_disks(machine):
    hosts.up(3)
    for index in (1, 2, 3):
        write_on_disk(index)
    hosts.up(2)
    assert not hosts._disk(3).base.exists()
    hosts.down(["sandbox-2"])
    assert not hosts._disk(2).base.exists() and on_disk(1)
    hosts.down()
    assert disk.machines_with_disks() == []


def test_down_removes_a_disk_left_without_state(machine):
    hosts._disk(7).upper.mkdir(parents=True)
    assert hosts.down(["sandbox-7"]) == ["sandbox-7"]
    hosts._disk(8).upper.mkdir(parents=True)
    assert hosts.down() == ["sandbox-8"]
    assert disk.machines_with_disks() == []


def test_old_images_stay_while_a_disk_lies_over_one(machine, monkeypatch):
    dropped = []
    monkeypatch.setattr(hosts.image, "drop_other_images", lambda keep: dropped.append(keep))
    old = hosts.image.images_dir() / "old"
    mountinfo = f"9 1 0:5 / /x rw - overlay overlay rw,lowerdir={old},upperdir=/u,workdir=/w\n"
    monkeypatch.setattr(disk, "mountinfo", lambda: mountinfo)
    hosts._drop_unused_images(keep=machine.rootfs)
    assert dropped == []
    mountinfo = mountinfo.replace(str(old), str(machine.rootfs))
    hosts._drop_unused_images(keep=machine.rootfs)
    assert dropped == [machine.rootfs]


def test_reboot_shuts_down_then_boots_on_the_same_disk(machine, monkeypatch):
    hosts.up(3)
    write_on_disk(2)
    asked = []

    def request(host):
        asked.append(host.name)
        machine.alive.discard(host.pid)  # the host shut down: nspawn exited

    monkeypatch.setattr(hosts, "_request_reboot", request)
    machine.events.clear()
    before = {h.name: h.pid for h in map(hosts.find, ["sandbox-1", "sandbox-2", "sandbox-3"])}
    rebooted = hosts.reboot(2, "sandbox-3")
    assert asked == ["sandbox-2", "sandbox-3"]
    assert machine.events == [
        ("power_off", 2), ("flush", 2), ("power_off", 3), ("flush", 3), ("boot", 2), ("boot", 3),
    ]  # fmt: skip
    assert [h.name for h in rebooted] == ["sandbox-2", "sandbox-3"]
    assert on_disk(2)
    after = {name: hosts.find(name).pid for name in before}
    assert after["sandbox-1"] == before["sandbox-1"]
    assert after["sandbox-2"] != before["sandbox-2"]
    assert after["sandbox-2"] == rebooted[0].pid and after["sandbox-3"] == rebooted[1].pid


def test_reboot_without_names_reboots_every_host(machine, monkeypatch):
    hosts.up(2)
    monkeypatch.setattr(hosts, "_request_reboot", lambda host: machine.alive.discard(host.pid))
    assert [h.name for h in hosts.reboot()] == ["sandbox-1", "sandbox-2"]


def test_reboot_of_unknown_hosts_names_them_and_touches_nothing(machine, monkeypatch):
    hosts.up(2)
    machine.events.clear()
    with pytest.raises(HopError) as err:
        hosts.reboot("sandbox-2", 9, "web")
    assert err.value.message == "No sandbox host named 'sandbox-9', 'web'."
    assert err.value.hint == "Known sandbox hosts: sandbox-1, sandbox-2."
    assert machine.events == []


def test_reboot_refuses_when_the_image_is_gone(machine, monkeypatch):
    hosts.up(1)
    (machine.rootfs / "etc/os-release").unlink()
    with pytest.raises(HopError) as err:
        hosts.reboot(1)
    assert "hop sandbox up --fresh" in err.value.hint


def test_resolve_names_takes_indexes_and_names_once_each():
    known = dict.fromkeys(["sandbox-1", "sandbox-2", "sandbox-3"])
    assert hosts.resolve_names([2, "sandbox-1", "sandbox-2"], known) == ["sandbox-2", "sandbox-1"]
    assert hosts.resolve_names([], known) == ["sandbox-1", "sandbox-2", "sandbox-3"]
    with pytest.raises(HopError) as err:
        hosts.resolve_names(["x"], {})
    assert err.value.hint == "Known sandbox hosts: none (run `hop sandbox up`)."


def test_cli_reboot_passes_the_hosts(monkeypatch):
    seen = []

    def fake_reboot(*names):
        seen.append(names)
        return [hosts.SandboxHost(name=n, index=int(n[-1]), address=f"10.0.0.{n[-1]}", pid=1,
                                  image="/i", started=0.0) for n in names]  # fmt: skip

    monkeypatch.setattr("hop3.sandbox.reboot", fake_reboot)
    runner = CliRunner()
    result = runner.invoke(cli, ["sandbox", "reboot", "sandbox-2"])
    assert result.exit_code == 0, result.output
    assert result.output == "sandbox-2  10.0.0.2  rebooted\n"
    result = runner.invoke(cli, ["sandbox", "reboot", "sandbox-1", "sandbox-3", "--json"])
    assert json.loads(result.output) == [
        {"name": "sandbox-1", "address": "10.0.0.1"},
        {"name": "sandbox-3", "address": "10.0.0.3"},
    ]
    assert seen == [("sandbox-2",), ("sandbox-1", "sandbox-3")]


def test_a_host_keeps_its_mac_address_across_boots(monkeypatch):
    """Other hosts cache it in their ARP tables: a host booted again on a new
    veth must answer at the same MAC (locally administered, from its IP)."""
    from hop3.sandbox import network

    monkeypatch.setenv("HOP3_SANDBOX_NET", "9")
    macs = [network.host_mac(i) for i in range(1, 51)]
    assert macs[2] == "02:00:0a:d5:09:0d" and len(set(macs)) == 50
    assert all(int(m.split(":")[0], 16) & 0b10 for m in macs)  # locally administered
