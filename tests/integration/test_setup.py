"""`hop setup` and `hop status` on real sandbox hosts."""

from __future__ import annotations

import subprocess

import pytest

import hop3
from hop3.sandbox import network

from .conftest import hop, hop_json, ssh


def _hosts(result):
    return sorted(result["stats"])


@pytest.mark.bare_setup
def test_first_setup_converges_all_hosts(setup_runs, sandbox_hosts):
    first, _ = setup_runs
    assert first["status"] == "successful"
    assert _hosts(first) == sorted(h["name"] for h in sandbox_hosts)
    for host, stats in first["stats"].items():
        assert stats["failed"] == 0 and stats["unreachable"] == 0, host
        assert stats["changed"] > 0, host


def test_second_setup_changes_nothing(setup_runs):
    _, second = setup_runs
    assert second["status"] == "successful"
    assert {host: stats["changed"] for host, stats in second["stats"].items()} == {
        host: 0 for host in second["stats"]
    }


@pytest.mark.last
def test_setup_after_everything_else_still_changes_nothing(setup_runs):
    """After every other module (apps with TLS and the WAF, firewall rules,
    backing services, backups), `hop setup` finds nothing to change."""
    again = hop_json("setup", "-t", "sandbox")
    assert again["status"] == "successful"
    assert {host: stats["changed"] for host, stats in again["stats"].items()} == {
        host: 0 for host in again["stats"]
    }


def test_unknown_hosts_get_404_from_default_server(setup_runs, sandbox_hosts):
    for host in sandbox_hosts:
        code = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: nope.example",
             f"http://{host['address']}/"],
            capture_output=True, text=True, timeout=10,
        ).stdout  # fmt: skip
        assert code == "404"


def test_ssh_password_login_is_refused(setup_runs, sandbox_hosts):
    address = sandbox_hosts[0]["address"]
    settings = ssh(address, "sshd -T").stdout
    assert "passwordauthentication no" in settings
    assert "kbdinteractiveauthentication no" in settings
    attempt = subprocess.run(
        ["ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "PreferredAuthentications=password,keyboard-interactive",
         "-o", "PubkeyAuthentication=no", "-o", "BatchMode=yes", f"root@{address}", "true"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert attempt.returncode == 255
    assert "Permission denied" in attempt.stderr


def test_platform_services_run(setup_runs, sandbox_hosts):
    out = ssh(sandbox_hosts[0]["address"],
              "systemctl is-active nginx ssh; systemctl is-enabled unattended-upgrades;"
              " python3 -c 'import json; f = open(\"/etc/hop3/platform.json\");"
              " print(json.load(f)[\"version\"])';"
              " stat -c '%a %U' /srv/hop3/apps").stdout  # fmt: skip
    lines = out.splitlines()
    assert lines[:3] == ["active", "active", "enabled"]
    assert lines[3] == hop3.__version__
    assert lines[4] == "755 root"


def test_status_reports_each_host(setup_runs, sandbox_hosts):
    report = hop_json("status", "-t", "sandbox")
    assert sorted(report["hosts"]) == sorted(h["name"] for h in sandbox_hosts)
    for host, data in report["hosts"].items():
        assert "Debian GNU/Linux 12" in data["os"], host
        assert data["hop3_version"], host
        assert data["services"]["nginx"] == "active", host
        assert data["memory_total_mb"] > 0 and data["disk_total_gb"] > 0, host
        assert data["uptime_s"] >= 0, host


def test_status_table_is_readable(setup_runs):
    out = hop("status", "-t", "sandbox-1").stdout
    assert "sandbox-1" in out and "nginx" in out


def test_history_records_runs(setup_runs):
    entries = hop_json("history", "-n", "1000")
    # Other modules set up their own hosts (e.g. sandbox-3): look at the group's runs.
    setups = [e for e in entries if e["verb"] == "setup" and e["target"] == "sandbox"]
    assert len(setups) >= 2
    assert setups[-1]["result"] == "successful" and setups[-1]["changed"] == 0
    assert setups[-2]["changed"] > 0


def test_unreachable_host_gets_a_clear_message(sandbox_hosts):
    hop("server", "add", "ghost", f"root@{network.host_address(89)}", "--group", "ghosts")
    try:
        proc = hop("setup", "-t", "ghost", check=False, timeout=120)
    finally:
        hop("server", "remove", "ghost")
    assert proc.returncode != 0
    assert "ghost" in proc.stderr and "unreachable" in proc.stderr.lower()
    assert "ssh" in proc.stderr.lower()
    assert "Traceback" not in proc.stderr + proc.stdout


def test_unknown_target_is_refused(sandbox_hosts):
    proc = hop("setup", "-t", "nosuchhost", check=False)
    assert proc.returncode != 0
    assert "Unknown target 'nosuchhost'" in proc.stderr
    assert "sandbox" in proc.stderr


def test_malformed_inventory_is_refused(tmp_path):
    bad = tmp_path / "hosts.yml"
    bad.write_text("all:\n  hosts:\n    - this is: [not, an inventory\n")
    proc = hop("setup", "-i", str(bad), "-t", "all", check=False)
    assert proc.returncode != 0
    assert str(bad) in proc.stderr or "inventory" in proc.stderr.lower()
    assert "Traceback" not in proc.stderr
