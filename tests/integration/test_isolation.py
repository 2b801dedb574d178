"""Isolation between apps on one host, seen from inside a running app process
(its mount namespace, user and group, as systemd started it), and the
security report (`hop audit`).

Two copies of the Flask example, isoa and isob, run on sandbox-1.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import hop, hop_json, ssh

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "python-flask"
HOST = "sandbox-1"
APPS = ("isoa", "isob")


@pytest.fixture(scope="module")
def host(setup_runs, sandbox_hosts, tmp_path_factory):
    address = sandbox_hosts[0]["address"]
    for app in APPS:
        app_dir = tmp_path_factory.mktemp(app) / "python-flask"
        shutil.copytree(EXAMPLE, app_dir)
        hop("deploy", str(app_dir), "--app", app, "-t", HOST)
        hop("config:set", app, f"APP_SECRET=secret-of-{app}", "-t", HOST)
    yield address
    for app in APPS:
        hop("destroy", app, "--yes", "-t", HOST, check=False)


def web_pid(address: str, app: str) -> str:
    units = ssh(address, f"systemctl list-units --plain --no-legend 'hop3-{app}-web@*'").stdout
    unit = units.split()[0]
    return ssh(address, f"systemctl show -p MainPID --value {unit}").stdout.strip()


def inside(address: str, app: str, script: str) -> tuple[int, str]:
    """Run a shell script as APP's web process sees the host: its mount
    namespace (ProtectSystem, ProtectProc, PrivateTmp), its user and group."""
    pid = web_pid(address, app)
    command = (f"nsenter --target {pid} --mount --setuid $(id -u {app}) --setgid $(id -g {app}) "
               f"-- sh -c '{script}'")  # fmt: skip
    proc = ssh(address, command, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_env_files_are_private(host):
    for app in APPS:
        mode = ssh(host, f"stat -c '%a %U' /srv/hop3/apps/{app}/env").stdout.split()
        assert mode == ["600", app]


def test_an_app_cannot_read_another_apps_env_or_files(host):
    ssh(host, "install -o isob -g isob -m 600 /dev/null /srv/hop3/apps/isob/shared/data.txt")
    for path in ("/srv/hop3/apps/isob/env", "/srv/hop3/apps/isob/shared/data.txt"):
        code, out = inside(host, "isoa", f"cat {path}")
        assert code != 0 and "Permission denied" in out
    code, out = inside(host, "isoa", "ls /srv/hop3/apps/isob/shared")
    assert code != 0


def test_an_app_writes_only_its_own_directories(host):
    code, _ = inside(host, "isoa", "touch /srv/hop3/apps/isoa/shared/mine && echo ok")
    assert code == 0
    for path in ("/srv/hop3/apps/isob/shared/theirs", "/srv/hop3/apps/isoa/current/x",
                 "/etc/hop3-x", "/usr/local/bin/x", "/srv/hop3/uploads/x"):  # fmt: skip
        code, out = inside(host, "isoa", f"touch {path}")
        assert code != 0, f"isoa could write {path}"
        assert "Read-only file system" in out or "Permission denied" in out
    # /tmp and /var/tmp are the app's own (PrivateTmp): nobody else sees them.
    assert inside(host, "isoa", "touch /tmp/isoa-probe /var/tmp/isoa-probe")[0] == 0
    assert inside(host, "isob", "ls /tmp/isoa-probe /var/tmp/isoa-probe")[0] != 0
    assert ssh(host, "ls /tmp/isoa-probe /var/tmp/isoa-probe", check=False).returncode != 0


def test_an_app_cannot_see_other_apps_processes(host):
    other = web_pid(host, "isob")
    code, out = inside(host, "isoa", "ls /proc")
    assert code == 0
    assert other not in out.split()
    assert web_pid(host, "isoa") in out.split()
    code, out = inside(host, "isoa", f"cat /proc/{other}/environ")
    assert code != 0
    assert "secret-of-isob" not in out


def test_audit_reports_each_check_with_a_fix(host):
    proc = hop("audit", "-t", HOST, "--json", check=False)
    report = hop_json_text(proc.stdout)[HOST]
    checks = {c["id"]: c for c in report["checks"]}
    assert checks["ssh_password"]["status"] == "pass"
    assert checks["unattended_upgrades"]["status"] == "pass"
    assert checks["secret_modes"]["status"] == "pass"
    assert checks["ssh_root"]["status"] in ("pass", "warn")
    for app in APPS:
        assert checks[f"tls:{app}"]["status"] in ("pass", "warn")
        assert f"waf:{app}" in checks
    assert all(c["fix"] for c in report["checks"] if c["status"] != "pass")
    assert proc.returncode == (1 if report["counts"]["fail"] else 0)
    # A world-readable env file is a failure, with the path in the finding.
    ssh(host, "chmod 644 /srv/hop3/apps/isob/env")
    try:
        proc = hop("audit", "-t", HOST, "--json", check=False)
    finally:
        ssh(host, "chmod 600 /srv/hop3/apps/isob/env")
    loose = {c["id"]: c for c in hop_json_text(proc.stdout)[HOST]["checks"]}["secret_modes"]
    assert loose["status"] == "fail" and "/srv/hop3/apps/isob/env (644)" in loose["found"]
    assert proc.returncode == 1


def hop_json_text(text: str) -> dict:
    import json

    return json.loads(text)


def test_audit_table_is_readable(host):
    proc = hop("audit", "-t", HOST, check=False)
    assert "SSH password login off" in proc.stdout
    assert "pass" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    assert hop_json("status", "-t", HOST)
