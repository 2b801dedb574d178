"""The audit log on real sandbox hosts: what `hop` records in
/var/log/hop3/audit.jsonl (ok, failed, masked secrets), `hop audit:log`, the
append-only attribute, rotation without loss, and setup staying changed=0."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest

from .conftest import hop, hop_json, ssh

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
IMPLEMENTATION = ROOT / "roles/hop3_auditlog/module_utils/hop3_auditlog.py"
HOST = "sandbox-1"
APP = "audited"
LOG = "/var/log/hop3/audit.jsonl"
SECRET = "tok-5f1e9c0d-never-logged"


def entries(host: str) -> list[dict]:
    """Every entry on the host, rotated files included, oldest first."""
    text = ssh(host, "cd /var/log/hop3 && for f in $(ls -r audit.jsonl.*[0-9]* 2>/dev/null) "
                     "audit.jsonl; do zcat -f $f; done").stdout  # fmt: skip
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def copy_example(name: str, tmp_path: Path) -> Path:
    app_dir = tmp_path / name
    shutil.copytree(EXAMPLES / name, app_dir)
    return app_dir


@pytest.fixture(scope="module")
def deployed(host, tmp_path_factory):
    """APP deployed once from the controller; its "ok" entry."""
    app_dir = copy_example("static-site", tmp_path_factory.mktemp("audit"))
    before = len(entries(host))
    result = hop_json("deploy", str(app_dir), "--app", APP, "-t", HOST)
    new = entries(host)[before:]
    return result, new


def test_deploy_from_the_controller_is_recorded_ok(deployed, host):
    result, new = deployed
    assert len(new) == 1
    entry = new[0]
    assert set(entry) == {"time", "host", "user", "key", "source", "via", "command", "step",
                          "app", "result", "release", "error"}  # fmt: skip
    assert entry["result"] == "ok" and entry["via"] == "cli" and entry["app"] == APP
    assert entry["release"] == result["reports"][HOST]["release"]
    assert entry["command"][:2] == ["hop", "deploy"] and APP in entry["command"]
    assert "@" in entry["user"] and entry["error"] is None
    assert entry["time"].endswith("Z")
    # The module found the client's address in the SSH session (ExposeAuthInfo
    # is another role's job: the key is null until sshd exposes it).
    assert entry["source"] == host.rsplit(".", 1)[0] + ".1"  # the controller's bridge address


def test_config_set_masks_the_secret(deployed, host):
    before = len(entries(host))
    hop("config:set", APP, f"SECRET_TOKEN={SECRET}", "PLAIN=1", "-t", HOST)
    grep = ssh(host, f"grep -r -l -F {SECRET} /var/log/hop3/", check=False)
    assert grep.returncode == 1 and grep.stdout == ""
    [entry] = entries(host)[before:]
    assert entry["command"][1:4] == ["config:set", APP, "SECRET_TOKEN=***"]
    assert entry["result"] == "ok"


def test_failed_deploy_is_recorded_with_the_reason(deployed, host, tmp_path):
    before = len(entries(host))
    broken = copy_example("python-flask", tmp_path)
    (broken / "Procfile").write_text("web: python3 -c 'raise SystemExit(3)'\n")
    toml = broken / "hop3.toml"
    toml.write_text(
        toml.read_text().replace("[healthcheck]", "[healthcheck]\ntimeout = 3\nretries = 1")
    )
    proc = hop("deploy", str(broken), "--app", APP, "-t", HOST, check=False)
    assert proc.returncode != 0, proc.stdout
    new = entries(host)[before:]
    assert [e["result"] for e in new] == ["failed"]
    assert new[0]["error"] and new[0]["app"] == APP and new[0]["release"] == deployed[0][
        "reports"][HOST]["release"]  # fmt: skip


def test_audit_log_command_shows_the_entries(deployed, host):
    shown = hop_json("audit:log", APP, "-t", HOST)
    assert [e["result"] for e in shown][-3:] == ["ok", "ok", "failed"]
    assert all(e["app"] == APP for e in shown)
    assert SECRET not in json.dumps(shown)
    assert hop_json("audit:log", APP, "--since", "2000-01-01", "-t", HOST) == shown
    assert hop_json("audit:log", APP, "--since", "2999-01-01", "-t", HOST) == []
    table = hop("audit:log", APP, "-t", HOST).stdout
    assert "config:set" in table and "failed" in table
    bad = hop("audit:log", "--since", "soon", "-t", HOST, check=False)
    assert bad.returncode != 0 and "--since 'soon'" in bad.stderr and "Traceback" not in bad.stderr


def test_log_is_append_only_even_for_root(deployed, host):
    assert ssh(host, f"lsattr {LOG}").stdout.split()[0][5] == "a"
    assert ssh(host, f"stat -c '%U:%G %a' {LOG}").stdout.strip() == "root:adm 640"
    size = int(ssh(host, f"stat -c %s {LOG}").stdout)
    truncate = ssh(host, f": > {LOG}", check=False)
    assert truncate.returncode != 0 and "Operation not permitted" in truncate.stderr
    assert ssh(host, f"rm -f {LOG}", check=False).returncode != 0
    assert int(ssh(host, f"stat -c %s {LOG}").stdout) == size
    # Appending works, with the code hop3-shell uses (hop3.auditlog loads this file).
    code = base64.b64encode(IMPLEMENTATION.read_bytes()).decode()
    ssh(host, f"echo {code} | base64 -d > /tmp/hop3_auditlog.py")
    ssh(host, "cd /tmp && python3 -c 'import hop3_auditlog as a; a.record(\"mallory\", "
              "[\"hop\", \"destroy\", \"x\"], result=\"denied\", via=\"ssh\", "
              "error=\"not allowed\")'")  # fmt: skip
    last = entries(host)[-1]
    assert (last["user"], last["result"], last["via"]) == ("mallory", "denied", "ssh")
    assert int(ssh(host, f"stat -c %s {LOG}").stdout) > size


def test_rotation_keeps_every_entry_and_the_new_file_is_append_only(deployed, host):
    before = entries(host)
    ssh(host, "logrotate -f /etc/logrotate.d/hop3-audit")
    assert ssh(host, f"test -s {LOG}.1 && test -e {LOG}").returncode == 0
    assert ssh(host, f"lsattr {LOG}").stdout.split()[0][5] == "a"
    assert ssh(host, f"stat -c '%U:%G %a' {LOG}").stdout.strip() == "root:adm 640"
    assert entries(host) == before
    # The next action goes to the new file; a second rotation compresses the first.
    hop("restart", APP, "-t", HOST)
    assert [e["command"][1] for e in entries(host)[len(before) :]] == ["restart"]
    ssh(host, "logrotate -f /etc/logrotate.d/hop3-audit")
    assert ssh(host, f"test -e {LOG}.2.gz").returncode == 0
    assert len(entries(host)) == len(before) + 1
    assert len(hop_json("audit:log", APP, "-t", HOST)) >= 4


@pytest.mark.last
def test_setup_records_itself_and_still_changes_nothing(host):
    before = len(entries(host))
    again = hop_json("setup", "-t", "sandbox")
    assert {h: s["changed"] for h, s in again["stats"].items()} == dict.fromkeys(again["stats"], 0)
    new = entries(host)[before:]
    assert [(e["command"][1], e["result"], e["app"]) for e in new] == [("setup", "ok", None)]


@pytest.mark.last
def test_destroy_is_recorded(deployed, host):
    hop("destroy", APP, "--yes", "-t", HOST)
    last = entries(host)[-1]
    assert last["command"][1] == "destroy" and last["app"] == APP and last["result"] == "ok"
