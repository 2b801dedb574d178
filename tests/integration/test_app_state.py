"""Truthful app state on a real sandbox host: `hop apps`, `hop ps` and `hop
releases` agree with systemd and with HTTP through nginx when instances are
killed, stopped behind Hop3's back, stopped with `hop stop`, or crash-loop
past systemd's start limit; and a crash-looping app comes back by itself
once the cause is gone (hop3-recover@, roles/hop3_app/README.md)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from .conftest import hop, hop_json, http_get, ssh

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HOST = "sandbox-1"
APP = "st"
# module_utils/hop3_app_recover.py RECOVER_DELAY, plus a start limit's burst
# of failing starts and a slow machine: generous, never a timed assertion.
RECOVERY_WAIT = 240
NOT_UP = {"failed", "activating", "restarting", "starting"}  # the states of a crash loop
# The example exits at start while this file is in its shared dir: a cause
# on the host that the test can remove without any hop command.
CRASH_FILE = f"/srv/hop3/apps/{APP}/shared/crash"
CRASH_CODE = """
if (Path(os.environ.get("HOP3_SHARED_DIR", "/nonexistent")) / "crash").exists():
    raise SystemExit("the crash file is present")
"""


def get(address: str, path: str = "/") -> tuple[int, str]:
    return http_get(address, f"{APP}.{HOST}", path)


def apps_entry() -> dict:
    return next(a for a in hop_json("apps", "-t", HOST)[HOST] if a["app"] == APP)


def ps() -> dict:
    return hop_json("ps", APP, "-t", HOST)[HOST]


def releases() -> list[dict]:
    return hop_json("releases", APP, "-t", HOST)[HOST]


def check() -> int:
    proc = hop("apps", "--check", "-t", HOST, check=False)
    assert ("Not fully up" in proc.stderr) == (proc.returncode != 0), proc.stderr
    assert "Traceback" not in proc.stderr
    if proc.returncode:
        assert f"{HOST}: {APP} is " in proc.stderr
    return proc.returncode


def host_units(address: str) -> dict[str, dict]:
    """The app's instance units as systemd on the host sees them."""
    out = ssh(address, f"systemctl list-units --all --no-legend --plain 'hop3-{APP}-web@*'").stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    if not names:
        return {}
    shown = ssh(
        address, "systemctl show -p Id,ActiveState,SubState,UnitFileState " + " ".join(names)
    )
    units = {}
    for block in shown.stdout.split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        units[props["Id"]] = props
    return units


def wanted_units(report: dict) -> list[str]:
    return [p["unit"] for p in report["processes"]]


def listening(address: str) -> set[int]:
    """The host's TCP ports in LISTEN state (0A), read from /proc/net."""
    out = ssh(address, "cat /proc/net/tcp /proc/net/tcp6").stdout
    fields = [line.split() for line in out.splitlines()]
    return {int(f[1].rsplit(":", 1)[1], 16) for f in fields if len(f) > 3 and f[3] == "0A"}


def assert_ps_matches_host(report: dict, address: str) -> None:
    """Each instance `hop ps` calls running is active and listening on the
    host, and each it does not is not both (a crash loop moves on while hop
    runs, so only "up or not" is compared)."""
    units, ports = host_units(address), listening(address)
    for proc in report["processes"]:
        unit = units.get(proc["unit"], {"ActiveState": "inactive"})
        up = unit["ActiveState"] == "active" and proc["port"] in ports
        assert (proc["state"] == "running") == up, (proc, unit, sorted(ports))


def kill_until_failed(address: str, unit: str) -> None:
    """SIGKILL the unit's process each time systemd restarts it, until systemd
    gives up (its start limit): what a crash loop does. Rounds of 30 s keep
    each SSH command short on a busy machine."""
    round_ = (f"end=$(($(date +%s) + 30)); while [ $(date +%s) -lt $end ]; do "
              f"systemctl -q is-failed {unit} && exit 0; "
              f"systemctl kill -s KILL {unit} 2>/dev/null; sleep 0.3; done; exit 1")  # fmt: skip
    wait_for(f"{unit} failed", lambda: ssh(address, round_, check=False).returncode == 0)


def wait_for(what: str, predicate, timeout: float = RECOVERY_WAIT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(2)
    pytest.fail(f"not {what} after {timeout} s")


def all_active(address: str, units: list[str]) -> bool:
    states = ssh(address, "systemctl is-active " + " ".join(units), check=False).stdout.split()
    return states == ["active"] * len(units)


def serving_ports(address: str) -> set[int]:
    ports = set()
    for _ in range(20):
        status, body = get(address, "/whoami")
        if status == 200:
            ports.add(json.loads(body)["port"])
    return ports


def assert_running(address: str) -> dict:
    """Fully up: 2/2 in every view, both ports answer through nginx."""
    entry = apps_entry()
    assert (entry["status"], entry["instances_up"], entry["instances_wanted"]) == ("running", 2, 2)
    report = ps()
    assert [p["state"] for p in report["processes"]] == ["running", "running"]
    assert all_active(address, wanted_units(report))
    assert_ps_matches_host(report, address)
    current = [r for r in releases() if r["current"]]
    assert len(current) == 1 and current[0]["serving"] and current[0]["instances_up"] == 2
    assert serving_ports(address) == {p["port"] for p in report["processes"]}
    assert check() == 0
    return report


@pytest.fixture(scope="module")
def app_dir(host, tmp_path_factory):
    """The Flask example, able to crash at start, deployed with web=2."""
    target = tmp_path_factory.mktemp("state") / APP
    shutil.copytree(EXAMPLES / "python-flask", target)
    source = (target / "app.py").read_text()
    head, marker, rest = source.partition("app = Flask(__name__)")
    (target / "app.py").write_text(head + CRASH_CODE + "\n" + marker + rest)
    # --preload: gunicorn imports the app before it binds the port, so a
    # crashing start never listens (never looks up for a moment).
    procfile = target / "Procfile"
    procfile.write_text(procfile.read_text().replace("gunicorn ", "gunicorn --preload ", 1))
    hop("deploy", str(target), "--app", APP, "-t", HOST, "--json")
    hop("ps:scale", APP, "web=2", "-t", HOST)
    yield target
    ssh(host, f"rm -f {CRASH_FILE}", check=False)
    hop("destroy", APP, "--yes", "-t", HOST, check=False)


def test_running_app_is_running_everywhere(app_dir, host):
    assert_running(host)


def test_one_instance_stopped_on_the_host_is_degraded(app_dir, host):
    report = assert_running(host)
    stopped, alive = report["processes"]
    ssh(host, f"systemctl stop {stopped['unit']}")
    entry = apps_entry()
    assert (entry["status"], entry["instances_up"], entry["instances_wanted"]) == ("degraded", 1, 2)
    report = ps()
    assert report["status"] == "degraded"
    assert {p["unit"]: p["state"] for p in report["processes"]} == {
        stopped["unit"]: "inactive",
        alive["unit"]: "running",
    }
    assert_ps_matches_host(report, host)
    current = next(r for r in releases() if r["current"])
    assert (current["instances_up"], current["instances_wanted"]) == (1, 2)
    assert check() == 1
    assert serving_ports(host) == {alive["port"]}  # nginx skips the dead one
    # Stopped, not failed: Hop3 does not start it behind the user's back.
    assert ssh(host, f"systemctl is-active {stopped['unit']}", check=False).stdout.strip() == (
        "inactive"
    )
    ssh(host, f"systemctl start {stopped['unit']}")
    wait_for("listening", lambda: apps_entry()["status"] == "running", 60)


def test_instance_killed_past_its_start_limit_comes_back_by_itself(app_dir, host):
    report = assert_running(host)
    victim, alive = report["processes"]
    kill_until_failed(host, victim["unit"])
    entry = apps_entry()
    assert (entry["status"], entry["instances_up"], entry["instances_wanted"]) == ("degraded", 1, 2)
    assert check() == 1
    report = ps()
    states = {p["unit"]: p for p in report["processes"]}
    assert states[alive["unit"]]["state"] == "running"
    assert states[victim["unit"]]["state"] in ("failed", "activating", "running", "starting")
    assert_ps_matches_host(report, host)
    assert get(host)[0] == 200  # the other instance serves meanwhile
    # No hop command from here on: systemd and hop3-recover@ bring it back.
    wait_for("started again", lambda: all_active(host, [victim["unit"], alive["unit"]]))
    wait_for(
        "serving on both ports", lambda: serving_ports(host) == {victim["port"], alive["port"]}
    )
    assert_running(host)


def test_both_instances_stopped_on_the_host_are_down(app_dir, host):
    report = assert_running(host)
    ssh(host, "systemctl stop " + " ".join(wanted_units(report)))
    entry = apps_entry()
    assert (entry["status"], entry["instances_up"], entry["instances_wanted"]) == ("down", 0, 2)
    report = ps()
    assert [p["state"] for p in report["processes"]] == ["inactive", "inactive"]
    assert_ps_matches_host(report, host)
    current = next(r for r in releases() if r["current"])
    assert current["instances_up"] == 0 and not current["serving"]
    assert check() == 1
    assert get(host)[0] == 502
    hop("start", APP, "-t", HOST)
    assert_running(host)


def test_crash_loop_fails_then_recovers_once_the_cause_is_gone(app_dir, host):
    report = assert_running(host)
    units = wanted_units(report)
    ssh(host, f"touch {CRASH_FILE}")
    for unit in units:  # the next start of each exits at once
        ssh(host, f"systemctl kill -s KILL {unit}")
    both = " ".join(units)
    failed = f"[ \"$(systemctl is-failed {both} | grep -c '^failed$')\" = 2 ]"
    wait_for("both failed", lambda: ssh(host, failed, check=False).returncode == 0)
    entry = apps_entry()
    assert (entry["status"], entry["instances_up"], entry["instances_wanted"]) == ("failed", 0, 2)
    assert check() == 1
    assert get(host)[0] == 502
    report = ps()
    assert report["instances_up"] == 0
    assert {p["state"] for p in report["processes"]} <= NOT_UP
    assert_ps_matches_host(report, host)
    current = next(r for r in releases() if r["current"])
    assert current["instances_up"] == 0 and not current["serving"]
    # The cause goes away; no hop command: the app serves again by itself.
    ssh(host, f"rm {CRASH_FILE}")
    wait_for("serving again", lambda: get(host)[0] == 200)
    wait_for("both started again", lambda: all_active(host, units))
    assert_running(host)


def test_hop_stop_is_stopped_and_never_revived(app_dir, host):
    report = assert_running(host)
    victim = report["processes"][0]
    kill_until_failed(host, victim["unit"])  # its recovery is now pending
    hop("stop", APP, "-t", HOST)
    entry = apps_entry()
    assert (entry["status"], entry["instances_up"], entry["instances_wanted"]) == ("stopped", 0, 0)
    assert check() == 0  # stopped on purpose is as wanted
    assert ps()["processes"] == []
    assert get(host)[0] == 502
    # Past the recovery delay, nothing of the app was started again.
    recover = f"hop3-recover@{victim['unit']}.service"
    wait_for("recovery done", lambda: ssh(host, f"systemctl is-active {recover}",
                                          check=False).stdout.strip() != "activating")  # fmt: skip
    units = host_units(host)
    assert all(u["ActiveState"] != "active" for u in units.values()), units
    assert all(u["UnitFileState"] != "enabled" for u in units.values()), units
    assert apps_entry()["status"] == "stopped"
    hop("start", APP, "-t", HOST)
    assert_running(host)


def test_releases_show_which_release_serves_after_a_redeploy(app_dir, host):
    before = {r["id"] for r in releases()}
    (app_dir / "VERSION").write_text("2.0.0\n")
    hop("deploy", str(app_dir), "--app", APP, "-t", HOST, "--json")
    rows = {r["id"]: r for r in releases()}
    (new,) = set(rows) - before
    assert rows[new]["current"] and rows[new]["serving"] and rows[new]["instances_up"] == 2
    assert all(not rows[r]["current"] and not rows[r]["serving"] for r in before)
    assert get(host) == (200, "Hello from python-flask v2.0.0")
    assert_running(host)
