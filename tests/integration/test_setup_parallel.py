"""`hop setup` of several fresh hosts at once on a busy machine, and a unit that
fails to start during setup.

The hosts' firewall once failed to start on one of two fresh hosts set up
together on a loaded machine: the rollback guard of the firewall fired while
the confirmation was running, and both went on at once. Here three fresh hosts
are set up at once beside busy loops (bounded in time), and each must end
converged: the firewall table loaded, its boot unit active, a second setup
changing nothing."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest

from .conftest import hop, hop_json, ssh

HOSTS = ("sandbox-3", "sandbox-4", "sandbox-5")
BUSY_SECONDS = 900
BROKEN = "/etc/systemd/system/hop3-firewall.service.d/99-hop3-test-broken.conf"


# A loop that ends by itself: killing timeout(1) would leave its child running.
BUSY_LOOP = (
    f"import time\nend = time.monotonic() + {BUSY_SECONDS}\nwhile time.monotonic() < end: pass"
)


@pytest.fixture(scope="module")
def busy_machine():
    """Busy loops, one per core, bounded in time and stopped at the end."""
    cores = os.cpu_count() or 2
    loops = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(cores)]
    yield
    for loop in loops:
        loop.kill()
        loop.wait()


@pytest.fixture(scope="module")
def fresh_hosts(sandbox_hosts):
    """sandbox-3..5 booted fresh beside the shared hosts; removed afterwards."""
    for name in HOSTS:
        hop("sandbox", "down", name, check=False)
    booted = {h["name"]: h["address"] for h in hop_json("sandbox", "up", "-n", str(2 + len(HOSTS)))}
    yield {name: booted[name] for name in HOSTS}
    for name in HOSTS:
        hop("sandbox", "down", name, check=False)


@pytest.fixture(scope="module")
def parallel_runs(fresh_hosts, busy_machine):
    """The first and second `hop setup` of the fresh hosts, all at once, under load."""
    target = ",".join(HOSTS)
    first = hop_json("setup", "-t", target, check=False)
    second = hop_json("setup", "-t", target, "--full", check=False)
    return first, second


def test_every_fresh_host_is_set_up(parallel_runs):
    first, _ = parallel_runs
    assert first["status"] == "successful", first["failures"]
    assert sorted(first["stats"]) == sorted(HOSTS)
    for host, stats in first["stats"].items():
        assert stats["failed"] == 0 and stats["unreachable"] == 0, (host, first)


def test_second_parallel_setup_changes_nothing(parallel_runs):
    _, second = parallel_runs
    assert second["status"] == "successful", second
    assert {h: s["changed"] for h, s in second["stats"].items()} == dict.fromkeys(HOSTS, 0)


def test_each_host_loaded_its_firewall(parallel_runs, fresh_hosts):
    for name, address in fresh_hosts.items():
        table = ssh(address, "nft list table inet hop3").stdout
        assert "policy drop" in table and "dport 22 accept" in table, name
        state = ssh(address, "systemctl is-active hop3-firewall.service", check=False)
        assert state.stdout.strip() == "active", (name, state.stdout)
        enabled = ssh(address, "systemctl is-enabled hop3-firewall.service", check=False)
        assert enabled.stdout.strip() == "enabled", name
        # No guard is left armed, nor a rollback pending.
        guard = ssh(address, "ls /run/hop3-firewall", check=False).stdout.split()
        assert "pending" not in guard and "rollback.sh" not in guard, (name, guard)


def test_a_unit_that_fails_to_start_shows_its_journal(parallel_runs, fresh_hosts):
    """A broken drop-in stops the firewall's boot unit from starting: hop's error
    names the unit and carries its status and journal, fetched by Hop3 itself."""
    address = fresh_hosts[HOSTS[-1]]
    dropin = "[Service]\nExecStartPre=/bin/sh -c 'echo hop3-test-broken-dropin >&2; exit 3'\n"
    ssh(
        address,
        f"mkdir -p {os.path.dirname(BROKEN)} && printf %s {shlex.quote(dropin)} > {BROKEN}"
        " && systemctl daemon-reload && systemctl stop hop3-firewall.service",
    )
    try:
        failed = hop("setup", "-t", HOSTS[-1], check=False)
        output = failed.stdout + failed.stderr
        assert failed.returncode != 0, output
        assert "hop3-firewall.service failed to start" in output, output
        assert "hop3-test-broken-dropin" in output, output  # a journal line
        assert "status=3" in output, output  # from systemctl status
    finally:
        ssh(address, f"rm -f {BROKEN} && systemctl daemon-reload", check=False)
    repaired = hop_json("setup", "-t", HOSTS[-1])
    assert repaired["status"] == "successful"
    state = ssh(address, "systemctl is-active hop3-firewall.service", check=False)
    assert state.stdout.strip() == "active"
