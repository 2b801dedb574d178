"""Apps survive a host reboot: on sandbox-2, the notes example (PostgreSQL,
Redis, files) and the static site are deployed and given data, the host is
rebooted with `hop sandbox reboot` (its systemd shuts everything down, it
boots again from its disk, its firewall must load again), and then the apps
serve the same data through nginx, the platform's services and the apps'
units run, and `hop setup` finds nothing to change.

Also the disks themselves, on a third host: a file outlives a reboot and a
crash of the host, and `hop sandbox down` takes the disk with it.

Marked `last`: the reboot must not disturb the modules that share sandbox-2,
and it leaves the host healthy for the final `hop setup` checks.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from .conftest import hop, hop_json, ssh

pytestmark = pytest.mark.last

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HOST = "sandbox-2"
NOTES_APP, SITE_APP = "rbnotes", "rbsite"
NOTES = ["written before the reboot", "second note: still here"]
SPARE = "sandbox-3"


def http(address: str, app: str, path: str = "/", data: dict | None = None) -> tuple[int, str]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(
        f"http://{address}{path}", data=body, headers={"Host": f"{app}.{HOST}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read().decode()


def app_units(address: str, app: str) -> dict[str, str]:
    """The app's systemd units (services and timers) and their state."""
    out = ssh(address, f"systemctl list-units --all --plain --no-legend 'hop3-{app}-*'").stdout
    return {line.split()[0]: line.split()[2] for line in out.splitlines() if line.strip()}


def booted_at(address: str) -> int:
    """Seconds the host's PID 1 has run."""
    return int(ssh(address, "ps -o etimes= -p 1").stdout.strip())


@pytest.fixture(scope="module")
def host(setup_runs, sandbox_hosts):
    return next(h["address"] for h in sandbox_hosts if h["name"] == HOST)


@pytest.fixture(scope="module")
def deployed(host, tmp_path_factory):
    """Both apps on sandbox-2 with data; what they serve before the reboot."""
    base = tmp_path_factory.mktemp("reboot")
    for example, app in (("python-notes", NOTES_APP), ("static-site", SITE_APP)):
        shutil.copytree(EXAMPLES / example, base / example)
        hop("deploy", str(base / example), "--app", app, "-t", HOST)
    for text in NOTES:
        http(host, NOTES_APP, "/notes", {"text": text})
    before = {
        "notes": json.loads(http(host, NOTES_APP, "/notes")[1]),
        "site": http(host, SITE_APP)[1],
        "units": {app: app_units(host, app) for app in (NOTES_APP, SITE_APP)},
    }
    yield before
    hop("destroy", NOTES_APP, "--yes", "-t", HOST, check=False)
    hop("destroy", SITE_APP, "--yes", "-t", HOST, check=False)
    hop("pg:destroy", NOTES_APP, "-y", "-t", HOST, check=False)
    hop("redis:destroy", NOTES_APP, "-y", "-t", HOST, check=False)


@pytest.fixture(scope="module")
def rebooted(deployed, host):
    """sandbox-2 rebooted through the CLI; when the reboot began (epoch seconds)."""
    ssh(host, "echo volatile > /run/hop3-reboot-marker")
    pid_before = {r["name"]: r["pid"] for r in hop_json("sandbox", "status")}[HOST]
    started = time.time()
    out = hop_json("sandbox", "reboot", HOST)
    assert out == [{"name": HOST, "address": host}]
    status = {r["name"]: r for r in hop_json("sandbox", "status")}[HOST]
    assert status["running"] and status["ssh"] and status["pid"] != pid_before
    return started


def test_the_host_really_rebooted(rebooted, host):
    # /run is a tmpfs of the host's own: gone with the old boot.
    assert ssh(host, "test -e /run/hop3-reboot-marker", check=False).returncode == 1
    assert booted_at(host) <= time.time() - rebooted + 1
    assert ssh(host, "systemctl is-system-running").stdout.strip() == "running"


def test_apps_serve_the_same_data_through_nginx(rebooted, deployed, host):
    notes = json.loads(http(host, NOTES_APP, "/notes")[1])
    assert notes == deployed["notes"]
    assert [body for _, body in notes["rows"]] == NOTES
    assert notes["count"] == len(NOTES) and len(notes["files"]) == len(NOTES)
    assert http(host, SITE_APP) == (200, deployed["site"])
    assert "Hello from static-site" in deployed["site"]


def test_the_firewall_table_is_loaded_again(rebooted, host):
    table = ssh(host, "nft list table inet hop3", check=False)
    assert table.returncode == 0, table.stderr
    assert "dport" in table.stdout


def test_platform_services_and_app_units_run(rebooted, deployed, host):
    services = ssh(host, "systemctl is-active nginx postgresql@15-main redis-server ssh"
                   " hop3-firewall", check=False).stdout.split()  # fmt: skip
    assert services == ["active"] * 5
    # The static site is served by nginx alone: no units of its own.
    assert deployed["units"][SITE_APP] == {}
    assert set(deployed["units"][NOTES_APP].values()) == {"active"}
    for app, units in deployed["units"].items():
        assert app_units(host, app) == units


def test_setup_after_the_reboot_changes_nothing(rebooted, host):
    result = hop_json("setup", "-t", HOST, "--full")
    assert result["status"] == "successful"
    assert {h: s["changed"] for h, s in result["stats"].items()} == {HOST: 0}


@pytest.fixture(scope="module")
def spare(setup_runs, sandbox_hosts):
    """sandbox-3 beside the shared hosts, removed afterwards."""
    booted = {h["name"]: h["address"] for h in hop_json("sandbox", "up", "-n", "3")}
    yield booted[SPARE]
    hop("sandbox", "down", SPARE, check=False)


def disk_of(name: str) -> Path:
    machine = f"hop3-sandbox{os.environ['HOP3_SANDBOX_NET']}-{name.rsplit('-', 1)[1]}"
    return Path(os.environ["HOP3_STATE_DIR"]) / "sandbox" / "disks" / machine


def overlay_mounted(path: Path) -> bool:
    return f" {path} " in Path("/proc/self/mountinfo").read_text()


def test_a_disk_outlives_reboot_and_crash_and_goes_with_down(spare):
    ssh(spare, "echo kept > /root/disk-marker")
    hop("sandbox", "reboot", SPARE)
    assert ssh(spare, "cat /root/disk-marker").stdout == "kept\n"
    # A crash (nspawn killed) leaves the overlay mounted; `up` boots on it again.
    pid = {r["name"]: r["pid"] for r in hop_json("sandbox", "status")}[SPARE]
    os.kill(pid, signal.SIGKILL)
    assert overlay_mounted(disk_of(SPARE) / "root")
    up = hop_json("sandbox", "up", "-n", "3")
    assert [h["name"] for h in up] == ["sandbox-1", "sandbox-2", SPARE]
    assert ssh(spare, "cat /root/disk-marker").stdout == "kept\n"
    # Removing the host removes its disk: booted again, it is clean.
    hop("sandbox", "down", SPARE)
    assert not overlay_mounted(disk_of(SPARE) / "root")
    assert not disk_of(SPARE).exists()
    hop_json("sandbox", "up", "-n", "3")
    assert ssh(spare, "test -e /root/disk-marker", check=False).returncode == 1


def test_reboot_of_an_unknown_host_is_a_clear_error(sandbox_hosts):
    proc = hop("sandbox", "reboot", "sandbox-99", check=False)
    assert proc.returncode != 0
    assert "No sandbox host named 'sandbox-99'" in proc.stderr
    assert "Known sandbox hosts: sandbox-1, sandbox-2" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert all(r["running"] for r in hop_json("sandbox", "status"))
