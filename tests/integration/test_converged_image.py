"""A host booted from the converged image (`hop sandbox up --image converged`):
setup already applied, yet its own name and identity, and a normal `hop setup`
on it converges and then changes nothing. Its neighbours keep running."""

from __future__ import annotations

import json
import subprocess

import pytest

from hop3.sandbox import converged

from .conftest import hop, hop_json, ssh

HOST = "sandbox-3"


@pytest.fixture(scope="module")
def booted(sandbox_hosts):
    """sandbox-3 from the converged image; the shared hosts' pids before; removed after."""
    before = {r["name"]: r["pid"] for r in hop_json("sandbox", "status")}
    up = hop_json("sandbox", "up", "-n", "3", "--image", "converged")
    yield {h["name"]: h["address"] for h in up}, before
    hop("sandbox", "down", HOST, check=False)


@pytest.fixture(scope="module")
def address(booted):
    return booted[0][HOST]


def test_running_hosts_keep_running_on_their_image(booted, sandbox_hosts):
    _, before = booted
    after = {r["name"]: r["pid"] for r in hop_json("sandbox", "status")}
    assert {h["name"]: after[h["name"]] for h in sandbox_hosts} == before
    assert sorted(after) == ["sandbox-1", "sandbox-2", HOST]


def test_the_host_has_its_own_name_and_identity(address, sandbox_hosts):
    out = ssh(address, "hostname; cat /etc/machine-id; ip -4 -o addr show eth0").stdout
    name, machine_id, addr = out.split("\n")[:3]
    assert name == HOST and address + "/" in addr
    other = ssh(sandbox_hosts[0]["address"], "cat /etc/machine-id").stdout.strip()
    assert len(machine_id) == 32 and machine_id != other
    inventory = ssh(address, "cat /etc/hop3/cli/inventory.yml").stdout
    assert f"    {HOST}:\n" in inventory and converged.BUILDER_NAME not in inventory
    # The builder's history is not this host's.
    assert ssh(address, "cat /var/log/hop3/audit.jsonl").stdout == ""


def test_setup_is_already_applied(address):
    out = ssh(address, "systemctl is-active nginx fail2ban ssh; nft list table inet hop3 >/dev/null"
              " && echo firewall; test -x /usr/local/bin/hop && echo cli; id -u hop3 >/dev/null"
              " && echo user").stdout.split()  # fmt: skip
    assert out == ["active", "active", "active", "firewall", "cli", "user"]
    code = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: nope.example",
         f"http://{address}/"], capture_output=True, text=True, timeout=30,
    ).stdout  # fmt: skip
    assert code == "404"


def test_setup_on_it_converges_then_changes_nothing(address):
    first = hop_json("setup", "-t", HOST)
    assert first["status"] == "successful"
    assert first["stats"][HOST]["failed"] == 0
    second = hop_json("setup", "-t", HOST, "--full")
    assert second["stats"][HOST]["changed"] == 0
    entries = [json.loads(line) for line in ssh(address, "cat /var/log/hop3/audit.jsonl")
               .stdout.splitlines()]  # fmt: skip
    assert [e["command"][1] for e in entries] == ["setup", "setup"]
    assert {e["host"] for e in entries} == {HOST}
