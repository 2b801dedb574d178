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
    again = hop_json("setup", "-t", "sandbox", "--full")
    assert again["status"] == "successful"
    assert {host: stats["changed"] for host, stats in again["stats"].items()} == {
        host: 0 for host in again["stats"]
    }


def test_a_setup_with_nothing_to_do_checks_each_host_in_one_step(setup_runs, sandbox_hosts):
    """After a full setup, the next one finds every host as it left it and runs
    none of the roles' steps; the record it keeps on each host is root's alone."""
    names = sorted(h["name"] for h in sandbox_hosts)
    hop_json("setup", "-t", "sandbox")  # whatever earlier modules changed
    again = hop_json("setup", "-t", "sandbox")
    assert again["status"] == "successful" and again["changed"] == 0
    assert {h: r["setup"] for h, r in again["reports"].items()} == dict.fromkeys(names, "unchanged")
    # The comparison, the audit entry and their argument checks: no role's step.
    assert {h: s["ok"] for h, s in again["stats"].items()} == dict.fromkeys(names, 4)
    mode = ssh(sandbox_hosts[0]["address"], "stat -c '%a %U' /var/lib/hop3/setup-state.json")
    assert mode.stdout.split() == ["600", "root"]


def test_a_setup_repairs_what_changed_by_hand_and_says_what(setup_runs, sandbox_hosts):
    """A file setup manages, edited by hand on one host: the next setup runs
    every step there (and names the file with -v), puts the file back, and
    leaves the other host out."""
    edited, other = sandbox_hosts[1], sandbox_hosts[0]
    jail = "/etc/fail2ban/jail.d/hop3.local"
    hop_json("setup", "-t", "sandbox")
    before = ssh(edited["address"], f"cat {jail}").stdout
    ssh(edited["address"], f"echo '# edited by hand' >> {jail}")
    out = hop("setup", "-t", "sandbox", "-v").stdout
    assert f"{edited['name']}: every step ran: {jail} changed since the last setup." in out
    assert f"checked in one step: {other['name']} " in out
    assert ssh(edited["address"], f"cat {jail}").stdout == before
    again = hop_json("setup", "-t", "sandbox")
    assert {h: r["setup"] for h, r in again["reports"].items()} == {
        edited["name"]: "unchanged", other["name"]: "unchanged",
    }  # fmt: skip


def test_setup_full_runs_every_step_on_an_unchanged_host(setup_runs, sandbox_hosts):
    name = sandbox_hosts[0]["name"]
    hop_json("setup", "-t", name)
    full = hop_json("setup", "-t", name, "--full")
    assert full["reports"][name] == {"setup": "converging",
                                     "reason": "every step was asked for (--full)"}  # fmt: skip
    assert full["stats"][name]["changed"] == 0 and full["stats"][name]["ok"] > 20


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
