"""Sandbox hosts: real Debian 12 under systemd-nspawn, own namespace, NAT."""

from __future__ import annotations

import subprocess

import pytest

from hop3.sandbox import network

from .conftest import HOST_COUNT, hop, hop_json, ssh


def test_hosts_run_and_answer_ssh(sandbox_hosts):
    rows = hop_json("sandbox", "status")
    assert [r["name"] for r in rows] == [f"sandbox-{i}" for i in range(1, HOST_COUNT + 1)]
    assert all(r["running"] and r["ssh"] for r in rows)


def test_up_is_idempotent(sandbox_hosts):
    before = {r["name"]: r["pid"] for r in hop_json("sandbox", "status")}
    again = hop_json("sandbox", "up", "-n", str(HOST_COUNT))
    assert [h["address"] for h in again] == [h["address"] for h in sandbox_hosts]
    after = {r["name"]: r["pid"] for r in hop_json("sandbox", "status")}
    assert after == before


def test_hosts_are_debian_with_systemd_and_own_identity(sandbox_hosts):
    for host in sandbox_hosts:
        out = ssh(host["address"], "hostname; . /etc/os-release; echo $VERSION_ID;"
                  " ps -p 1 -o comm=; ip -4 -o addr show eth0").stdout.split("\n")  # fmt: skip
        assert out[0] == host["name"]
        assert out[1] == "12"
        assert out[2] == "systemd"
        assert host["address"] + "/" in out[3]


def test_hosts_reach_https_registries_through_nat(sandbox_hosts):
    address = sandbox_hosts[0]["address"]
    # The machine's CA bundle must be trusted by curl, Python (pip, uv) and npm.
    proc = ssh(address, "curl -sS -o /dev/null -w '%{http_code}\\n' https://pypi.org/simple/ && "
               "python3 -c 'import urllib.request as u; "
               "print(u.urlopen(\"https://registry.npmjs.org/\").status)'")  # fmt: skip
    assert proc.stdout.split() == ["200", "200"]


def test_sandbox_registered_as_targets(sandbox_hosts):
    servers = {s["name"]: s for s in hop_json("server", "list")}
    for host in sandbox_hosts:
        assert host["name"] in servers
        assert "sandbox" in servers[host["name"]]["groups"]


def test_ssh_command_runs_on_host(sandbox_hosts):
    proc = hop("sandbox", "ssh", "sandbox-1", "hostname")
    assert proc.stdout.strip() == "sandbox-1"


def test_unknown_sandbox_host_is_a_clear_error(sandbox_hosts):
    proc = hop("sandbox", "ssh", "sandbox-99", "true", check=False)
    assert proc.returncode != 0
    assert "No sandbox host named 'sandbox-99'" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.teardown
def test_down_removes_everything_up_made(sandbox_hosts):
    hop("sandbox", "down")
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert network.netns_name(1) + " " not in netns + " "
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert f" {network.bridge()}:" not in links and f" {network.veth_name(1)}@" not in links
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert f"ip {network.nft_table()}\n" not in tables + "\n"
    procs = subprocess.run(["pgrep", "-af", "systemd-nspawn"], capture_output=True, text=True)
    assert f"--machine={network.netns_name(1)} " not in procs.stdout + " "
    assert hop_json("sandbox", "status") == []
    assert not [s for s in hop_json("server", "list") if "sandbox" in s["groups"]]
