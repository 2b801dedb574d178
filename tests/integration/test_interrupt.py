"""Interrupting `hop deploy` on real sandbox hosts: SIGINT during the build and
after the switch, SIGTERM, SIGKILL of hop; then what serves over HTTP, what
runs on the host, the lock, the controller's processes, the audit entry
(result interrupted), and that `hop apps`, `hop ps` and `hop releases` agree
with the host. `hop unlock` and its audit entry; a second run of the recovery
and of the unlock playbook changes nothing. The build sleeps (a `[build]`
command) so a signal lands in it deterministically; the switch is watched on
the host."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from hop3.runner import run_playbook
from hop3.targets import resolve_target

from .conftest import HOP, hop, hop_json, ssh
from .test_apps import EXAMPLES, HOST, get, set_version

APP = "intr"
BUILD_SECONDS = 47  # a unique `sleep N` to find on the host


@pytest.fixture(scope="module")
def host(setup_runs, sandbox_hosts):
    address = sandbox_hosts[0]["address"]
    yield address
    hop("destroy", APP, "--yes", "-t", HOST, check=False)
    ssh(address, f"rm -f /srv/hop3/locks/{APP}.json", check=False)


@pytest.fixture(scope="module")
def app_dir(host, tmp_path_factory) -> Path:
    """The flask example with a build that sleeps, deployed once (v1.0.0)."""
    target = tmp_path_factory.mktemp("intr") / "app"
    shutil.copytree(EXAMPLES / "python-flask", target)
    with (target / "hop3.toml").open("a") as toml:
        toml.write(f'\n[build]\nbuild = ["touch .build-start", "sleep {BUILD_SECONDS}", '
                   '"touch .build-end"]\n')  # fmt: skip
    set_version(target, "1.0.0")
    hop("deploy", str(target), "--app", APP, "-t", HOST)
    return target


def start_deploy(app_dir: Path, version: str) -> subprocess.Popen:
    set_version(app_dir, version)
    args = [HOP, "deploy", str(app_dir), "--app", APP, "-t", HOST]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_build(address: str, proc: subprocess.Popen) -> None:
    """Until a release is half-built (its build started, not ended)."""
    check = (f"for d in /srv/hop3/apps/{APP}/releases/*; do [ -e $d/.build-start ] && "
             "[ ! -e $d/.build-end ] && echo $d; done; true")  # fmt: skip
    deadline = time.monotonic() + 600
    while not ssh(address, check).stdout.strip():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the build never started"
        time.sleep(0.5)


def wait_for_switch(address: str, before: str) -> None:
    """Until the app's `current` link points elsewhere (watched on the host)."""
    ssh(address, f"cd /srv/hop3/apps/{APP}; for i in $(seq 12000); do "
                 f"[ \"$(readlink current)\" != releases/{before} ] && exit 0; sleep 0.05; done; "
                 "exit 1")  # fmt: skip


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=600)
    return proc.returncode, out


def run_dir_of(output: str) -> str:
    match = re.search(r"The run's files are in (\S+?)\.?$", output, re.M)
    assert match, output
    return match.group(1)


def controller_leftovers(run_dir: str) -> list[str]:
    """Processes on this machine that still belong to the run (ansible-playbook, ssh)."""
    deadline = time.monotonic() + 15
    while True:
        out = subprocess.run(["pgrep", "-af", run_dir], capture_output=True, text=True).stdout
        left = [line for line in out.splitlines() if "pgrep" not in line]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def host_state(address: str) -> dict:
    return json.loads(ssh(address, f"cat /srv/hop3/apps/{APP}/state.json").stdout)


def running_units(address: str) -> list[str]:
    out = ssh(address, f"systemctl list-units --plain --no-legend --state=active 'hop3-{APP}-*'")
    return sorted(line.split()[0] for line in out.stdout.splitlines() if "@" in line)


def assert_host_consistent(address: str) -> dict:
    """The host agrees with itself and with hop apps / ps / releases."""
    state = host_state(address)
    on_disk = ssh(address, f"ls /srv/hop3/apps/{APP}/releases").stdout.split()
    assert sorted(on_disk) == sorted(r["id"] for r in state["releases"])
    current = state["current"]
    assert ssh(address, f"readlink /srv/hop3/apps/{APP}/current").stdout.strip() == (
        f"releases/{current}"
    )
    recorded = sorted(f"hop3-{APP}-{p}@{i['id']}.service"
                      for p, group in state["instances"].items() for i in group)  # fmt: skip
    assert running_units(address) == recorded
    listed = [a for a in hop_json("apps", "-t", HOST)[HOST] if a.get("app") == APP]
    assert listed and listed[0]["release"] == current
    ps = hop_json("ps", APP, "-t", HOST)[HOST]
    assert ps["release"] == current and ps["instances_up"] == len(recorded)
    releases = hop_json("releases", APP, "-t", HOST)[HOST]
    assert [r["id"] for r in releases] == [r["id"] for r in state["releases"]]
    assert [r["id"] for r in releases if r["status"] == "active"] == [current]
    assert f"{APP}.json" not in ssh(address, "ls /srv/hop3/locks").stdout.split()
    assert not ssh(address, f"pgrep -f 'sleep {BUILD_SECONDS}'", check=False).stdout.strip()
    return state


def served_version(address: str) -> str:
    status, body = get(address, APP)
    assert status == 200, body
    return body.rsplit(" v", 1)[-1]


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_the_build_keeps_the_old_release(host, app_dir, signum, code):
    before = host_state(host)
    serving = served_version(host)
    proc = start_deploy(app_dir, f"2.{signum}.0")
    wait_for_build(host, proc)
    proc.send_signal(signum)
    rc, output = finish(proc)
    assert rc == code, output
    flat = " ".join(output.split())
    assert f"deploy was interrupted ({signal.Signals(signum).name})" in flat
    assert f"{HOST}: interrupted before the switch: {before['current']} still serves" in flat
    assert "the partial release" in flat and "was removed" in flat
    assert "Traceback" not in output
    assert controller_leftovers(run_dir_of(output)) == []
    state = assert_host_consistent(host)
    assert state["current"] == before["current"]
    assert [r["id"] for r in state["releases"]] == [r["id"] for r in before["releases"]]
    assert served_version(host) == serving
    # The run never reached its audit play: hop recorded it afterwards.
    deploys = [e for e in hop_json("audit:log", APP, "-t", HOST) if e.get("step") == "deploy"]
    assert deploys[-1]["result"] == "interrupted", deploys[-1]
    assert deploys[-1]["error"] == f"interrupted by {signal.Signals(signum).name}", deploys[-1]


def test_sigint_after_the_switch_says_the_new_release_is_live(host, app_dir):
    for attempt in range(3):  # the signal must land between the switch and the end
        before = host_state(host)["current"]
        version = f"3.{attempt}.0"
        proc = start_deploy(app_dir, version)
        wait_for_switch(host, before)
        proc.send_signal(signal.SIGINT)
        rc, output = finish(proc)
        if rc != 0:
            break
    assert rc == 130, output
    state = host_state(host)
    assert state["current"] != before
    flat = " ".join(output.split())
    assert f"{HOST}: interrupted after the switch: {state['current']} (the new release) is live" \
        in flat  # fmt: skip
    assert controller_leftovers(run_dir_of(output)) == []
    assert_host_consistent(host)
    assert served_version(host) == version
    again = hop_json("deploy", str(app_dir), "--app", APP, "-t", HOST)
    assert again["ok"] and again["changed"] == 0  # the interrupted deploy had done it all


def test_a_killed_hop_ends_its_run_and_the_next_deploy_takes_the_lock(host, app_dir):
    before = host_state(host)["current"]
    proc = start_deploy(app_dir, "4.0.0")
    wait_for_build(host, proc)
    proc.kill()
    proc.communicate(timeout=60)
    runs = sorted((Path(subprocess.os.environ["HOP3_STATE_DIR"]) / "runs").glob("*-deploy-*"))
    assert controller_leftovers(str(runs[-1])) == []
    held = json.loads(ssh(host, f"cat /srv/hop3/locks/{APP}.json").stdout)
    assert held["run"] == runs[-1].name and held["timeout"] == 45
    assert host_state(host)["current"] == before  # nothing switched
    set_version(app_dir, "4.1.0")
    done = hop("deploy", str(app_dir), "--app", APP, "-t", HOST)
    assert "is live" in done.stdout
    assert served_version(host) == "4.1.0"
    assert_host_consistent(host)


def test_two_deploys_at_once_one_waits_and_both_succeed(host, app_dir, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(app_dir, other)
    first = start_deploy(app_dir, "5.0.0")
    wait_for_build(host, first)
    set_version(other, "5.1.0")
    args = [HOP, "deploy", str(other), "--app", APP, "-t", HOST]
    second = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    results = [finish(first), finish(second)]
    for rc, output in results:
        assert rc == 0, output
    assert f"{HOST}: waited" in results[1][1]
    assert served_version(host) == "5.1.0"
    assert_host_consistent(host)


def plant_lock(address: str, controller: str, run: str) -> None:
    """A lock of the app held by a deploy whose holder is stuck (renewed 5 s ago)."""
    since = time.time() - 5
    record = {"app": APP, "token": "feedbeef", "operation": "deploy", "since": since,
              "renewed": since, "controller": controller, "run": run,
              "pid": 1, "timeout": 45}  # fmt: skip
    ssh(address, f"echo '{json.dumps(record)}' > /srv/hop3/locks/{APP}.json")


def test_unlock_shows_the_holder_removes_the_lock_and_is_audited(host, app_dir):
    plant_lock(host, "ops@laptop pid 4242", "stuck-run")
    busy = hop("config:set", APP, "APP_X=1", "-t", HOST, "-i", str(low_wait(app_dir)), check=False)
    flat = " ".join((busy.stdout + busy.stderr).split())
    assert busy.returncode != 0 and f"`hop unlock {APP}`" in flat
    assert "stopped renewing it" in flat
    done = hop("unlock", APP, "--yes", "-t", HOST)
    assert "held by a deploy" in done.stdout and "ops@laptop pid 4242" in done.stdout
    assert "run stuck-run" in done.stdout and f"lock of {APP} removed" in done.stdout
    assert f"{APP}.json" not in ssh(host, "ls /srv/hop3/locks").stdout.split()
    assert "feedbeef" not in done.stdout  # the token is never shown
    again = hop("unlock", APP, "--yes", "-t", HOST)
    assert f"App '{APP}' is not locked" in again.stdout
    log = hop_json("audit:log", APP, "-t", HOST)
    unlocks = [e for e in log if e.get("step") == "unlock"]
    assert unlocks and unlocks[-1]["result"] == "ok" and unlocks[-1]["app"] == APP, log
    assert hop("config:set", APP, "APP_X=1", "-t", HOST).returncode == 0


def recap_changed(run_dir: Path) -> dict[str, int]:
    """Per host, the changed count of a run's recap (its playbook_on_stats event)."""
    for path in (run_dir / "artifacts" / "job" / "job_events").glob("*.json"):
        event = json.loads(path.read_text())
        if event.get("event") == "playbook_on_stats":
            return event["event_data"]["changed"]
    raise AssertionError(f"no recap in {run_dir}")


def run_again(playbook: str, verb: str, **extravars: str):
    """Run one of Hop3's playbooks on HOST the way hop runs it (for playbooks no
    command runs a second time by itself)."""
    target = resolve_target(HOST, None)
    return run_playbook(playbook, inventory=target.inventory, limit=target.limit, verb=verb,
                        extravars={"hop3_app_name": APP, **extravars}, quiet=True)  # fmt: skip


def test_a_second_recovery_changes_nothing(host, app_dir):
    """app-recover after an interrupted deploy removes the partial release; run
    again for the same run, it reports changed=0."""
    proc = start_deploy(app_dir, "6.0.0")
    wait_for_build(host, proc)
    proc.send_signal(signal.SIGINT)
    rc, output = finish(proc)
    assert rc == 130 and "the partial release" in output, output
    runs = Path(subprocess.os.environ["HOP3_STATE_DIR"]) / "runs"
    recovery = sorted(runs.glob("*-deploy_recovery_-*"))[-1]
    assert recap_changed(recovery).get(HOST, 0) >= 1, recovery
    again = run_again("app-recover", "deploy (recovery)",
                      hop3_app_recover_run=Path(run_dir_of(output)).name)  # fmt: skip
    assert again.ok, again.failures
    assert again.stats[HOST].changed == 0, again.stats
    assert again.reports[HOST]["removed"] == [] and again.reports[HOST]["stopped"] == []
    assert_host_consistent(host)


def test_a_second_unlock_changes_nothing(host, app_dir):
    """The unlock playbook removes a stuck lock (changed), then reports changed=0."""
    plant_lock(host, "ops@laptop pid 4243", "stuck-run-2")
    hop("unlock", APP, "--yes", "-t", HOST)
    first = [r for r in hop_json("history") if r["verb"] == "unlock"][-1]
    assert first["changed"] >= 1, first
    # `hop unlock` of an unlocked app stops at its read-only show: run the
    # remove playbook again as `hop unlock` runs it.
    again = run_again("unlock", "unlock", hop3_app_lock_admin_action="remove")
    assert again.ok, again.failures
    assert again.stats[HOST].changed == 0, again.stats
    assert again.reports[HOST]["removed"] is False


def test_unlock_refuses_bad_input():
    bad = hop("unlock", "Not An App", "--yes", check=False)
    assert bad.returncode != 0 and "is not a valid app name" in bad.stderr
    assert "Traceback" not in bad.stderr


def low_wait(app_dir: Path) -> Path:
    import os

    import yaml

    folder = app_dir.parent / "inventory"
    (folder / "host_vars").mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(os.environ["HOP3_CONFIG_DIR"]) / "inventory.yml", folder / "inventory.yml")
    (folder / "host_vars" / f"{HOST}.yml").write_text(yaml.safe_dump({"hop3_app_lock_wait": 2}))
    return folder
