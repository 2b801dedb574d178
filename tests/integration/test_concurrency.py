"""Concurrent operations on real sandbox hosts: one operation per app at a time
(the per-app lock of role hop3_app), different apps in parallel, a clear error
after the wait, stale locks taken over, and never a half-built release."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from .conftest import HOP, hop, ssh
from .test_apps import EXAMPLES, HOST, get, set_version

APPS = ("conc", "conc-a", "conc-b", "conc-wait")
# Each build stamps its start and end in the release, and lasts a few seconds.
BUILD = '\n[build]\nbuild = ["date +%s.%N > .build-start", "sleep 4", "date +%s.%N > .build-end"]\n'


@pytest.fixture(scope="module")
def host(setup_runs, sandbox_hosts):
    address = sandbox_hosts[0]["address"]
    yield address
    for app in APPS:
        hop("destroy", app, "--yes", "-t", HOST, check=False)
    ssh(address, "rm -f /srv/hop3/locks/conc*.json", check=False)


def slow_app(tmp_path: Path, name: str, version: str) -> Path:
    target = tmp_path / name
    shutil.copytree(EXAMPLES / "python-flask", target)
    set_version(target, version)
    with (target / "hop3.toml").open("a") as toml:
        toml.write(BUILD)
    return target


def start_deploy(app_dir: Path, app: str, *extra: str) -> subprocess.Popen:
    args = [HOP, "deploy", str(app_dir), "--app", app, "-t", HOST, *extra]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, err = proc.communicate(timeout=900)
    return proc.returncode, out + err


def app_state(address: str, app: str) -> dict:
    return json.loads(ssh(address, f"cat /srv/hop3/apps/{app}/state.json").stdout)


def build_span(address: str, app: str, release: str) -> tuple[float, float]:
    folder = f"/srv/hop3/apps/{app}/releases/{release}"
    out = ssh(address, f"cat {folder}/.build-start {folder}/.build-end").stdout.split()
    return float(out[0]), float(out[1])


def assert_only_complete_releases(address: str, app: str) -> None:
    state = app_state(address, app)
    on_disk = ssh(address, f"ls /srv/hop3/apps/{app}/releases").stdout.split()
    assert sorted(on_disk) == sorted(r["id"] for r in state["releases"])
    for release in on_disk:  # complete: built to the end, venv and all
        folder = f"/srv/hop3/apps/{app}/releases/{release}"
        ssh(address, f"test -s {folder}/.build-end && test -x {folder}/.venv/bin/python")


def read_lock_while(address: str, app: str, procs: list[subprocess.Popen]) -> dict:
    """The app's lock record, read on the host while the runs go on."""
    while any(proc.poll() is None for proc in procs):
        out = ssh(address, f"cat /srv/hop3/locks/{app}.json", check=False).stdout
        if out.strip():
            return json.loads(out)
        time.sleep(0.2)
    pytest.fail("the lock record never showed up")


def test_two_deploys_of_one_app_run_one_after_the_other(host, tmp_path):
    first = slow_app(tmp_path, "one", "1.0.0")
    second = slow_app(tmp_path, "two", "2.0.0")
    procs = [start_deploy(first, "conc"), start_deploy(second, "conc")]
    held = read_lock_while(host, "conc", procs)
    results = [finish(proc) for proc in procs]
    assert held["operation"] == "deploy" and abs(held["since"] - time.time()) < 300
    assert re.fullmatch(r"\S+@\S+ pid \d+", held["controller"]), held
    assert re.fullmatch(r"\d{8}T\d{6}Z-deploy-[0-9a-f]+", held["run"]), held
    for code, output in results:
        assert code == 0, output
    waited = [out for _, out in results if "waited" in out]
    assert len(waited) == 1, results
    assert f"{HOST}: waited" in waited[0] and "s for another deploy of conc" in waited[0]

    state = app_state(host, "conc")
    built = [r["id"] for r in state["releases"]]
    assert built == ["v1", "v2"]
    spans = sorted(build_span(host, "conc", release) for release in built)
    assert spans[1][0] >= spans[0][1]  # the second build started after the first ended
    assert_only_complete_releases(host, "conc")
    served = get(host, "conc")
    current = ssh(host, f"cat /srv/hop3/apps/conc/releases/{state['current']}/VERSION").stdout
    assert served == (200, f"Hello from python-flask v{current.strip()}")
    assert ssh(host, "ls /srv/hop3/locks").stdout.split().count("conc.json") == 0


def test_two_apps_deploy_at_the_same_time(host, tmp_path):
    procs = [start_deploy(slow_app(tmp_path, app, "3.0.0"), app) for app in ("conc-a", "conc-b")]
    for proc in procs:
        code, output = finish(proc)
        assert code == 0 and "waited" not in output, output
    (a_start, a_end), (b_start, b_end) = (build_span(host, app, "v1") for app in APPS[1:3])
    assert a_start < b_end and b_start < a_end, "the two builds did not overlap"
    for app in ("conc-a", "conc-b"):
        assert get(host, app) == (200, "Hello from python-flask v3.0.0")
        assert_only_complete_releases(host, app)


def snapshot(address: str, app: str) -> str:
    """What a failed operation must leave as it was: state, releases, current, config."""
    root = f"/srv/hop3/apps/{app}"
    return ssh(address, f"cat {root}/state.json {root}/env; ls {root}/releases; "
                        f"readlink {root}/current").stdout  # fmt: skip


def hold_lock(address: str, app: str, age: float) -> None:
    since = time.time() - age
    record = {"app": app, "token": "feedbeef", "operation": "deploy", "since": since,
              "renewed": since, "controller": "ops@laptop pid 4242", "run": "test-run"}  # fmt: skip
    ssh(address, "mkdir -p /srv/hop3/locks && echo "
        f"{shlex.quote(json.dumps(record))} > /srv/hop3/locks/{app}.json")  # fmt: skip


def low_wait_inventory(tmp_path: Path, seconds: int) -> Path:
    """Hop's inventory plus host vars that lower the lock wait of sandbox-1."""
    folder = tmp_path / "inventory"
    (folder / "host_vars").mkdir(parents=True)
    config = Path(os.environ["HOP3_CONFIG_DIR"])
    shutil.copy(config / "inventory.yml", folder / "inventory.yml")
    (folder / "host_vars" / f"{HOST}.yml").write_text(
        yaml.safe_dump({"hop3_app_lock_wait": seconds})
    )
    return folder


def test_a_deploy_that_waits_too_long_fails_clearly_and_changes_nothing(host, tmp_path):
    app_dir = slow_app(tmp_path, "wait", "4.0.0")
    hop("deploy", str(app_dir), "--app", "conc-wait", "-t", HOST)
    before = snapshot(host, "conc-wait")
    hold_lock(host, "conc-wait", age=5)
    set_version(app_dir, "4.1.0")
    inventory = low_wait_inventory(tmp_path, 3)
    started = time.monotonic()
    code, output = finish(start_deploy(app_dir, "conc-wait", "-i", str(inventory)))
    assert code != 0
    assert 3 <= time.monotonic() - started < 60
    flat = " ".join(output.split())
    assert "App 'conc-wait' is busy: a deploy started at" in flat
    assert "by ops@laptop pid 4242 (run test-run) holds its lock" in flat
    assert "this deploy waited 3 s for it" in flat and "hop3_app_lock_wait" in flat
    assert "Traceback" not in output
    assert snapshot(host, "conc-wait") == before
    assert get(host, "conc-wait") == (200, "Hello from python-flask v4.0.0")
    held = json.loads(ssh(host, "cat /srv/hop3/locks/conc-wait.json").stdout)
    assert held["token"] == "feedbeef"  # the failed run did not free another run's lock

    # config and rollback wait for the same lock and fail the same way. The
    # lease is renewed first: on a slow machine the runs above can outlast it
    # (45 s), and an expired lease is rightly taken over.
    hold_lock(host, "conc-wait", age=5)
    code = subprocess.run([HOP, "config:set", "conc-wait", "APP_X=1", "-t", HOST, "-i",
                           str(inventory)], capture_output=True, text=True)  # fmt: skip
    assert code.returncode != 0 and "this config waited 3 s" in " ".join(
        code.stdout.split() + code.stderr.split()
    )
    assert "APP_X" not in ssh(host, "cat /srv/hop3/apps/conc-wait/env").stdout
    hold_lock(host, "conc-wait", age=5)
    restart = subprocess.run([HOP, "restart", "conc-wait", "-t", HOST, "-i", str(inventory)],
                             capture_output=True, text=True)  # fmt: skip
    said = " ".join(restart.stdout.split() + restart.stderr.split())
    assert restart.returncode != 0 and "this restart waited 3 s" in said
    assert snapshot(host, "conc-wait") == before
    ssh(host, "rm /srv/hop3/locks/conc-wait.json")


def test_a_stale_lock_is_taken_over(host, tmp_path):
    app_dir = slow_app(tmp_path, "stale", "5.0.0")
    hold_lock(host, "conc-wait", age=3 * 3600)  # its controller died hours ago
    started = time.monotonic()
    code, output = finish(start_deploy(app_dir, "conc-wait"))
    assert code == 0, output
    assert "waited" not in output and time.monotonic() - started < 60
    assert get(host, "conc-wait") == (200, "Hello from python-flask v5.0.0")
    assert ssh(host, "ls /srv/hop3/locks").stdout.split().count("conc-wait.json") == 0
    assert_only_complete_releases(host, "conc-wait")


def test_a_failed_deploy_releases_the_lock(host, tmp_path):
    app_dir = slow_app(tmp_path, "broken", "7.0.0")
    toml = (app_dir / "hop3.toml").read_text().replace('contains = "ok"', 'contains = "nope"')
    (app_dir / "hop3.toml").write_text(toml.replace("[healthcheck]", "[healthcheck]\ntimeout = 5"))
    code, output = finish(start_deploy(app_dir, "conc-wait"))
    assert code != 0 and "health check" in output
    assert ssh(host, "ls /srv/hop3/locks").stdout.split().count("conc-wait.json") == 0
    assert get(host, "conc-wait") == (200, "Hello from python-flask v5.0.0")
    assert_only_complete_releases(host, "conc-wait")
    started = time.monotonic()
    done = hop("config:set", "conc-wait", "APP_AFTER=1", "-t", HOST)
    assert "waited" not in done.stdout and time.monotonic() - started < 60
    assert ssh(host, "ls /srv/hop3/locks").stdout.split().count("conc-wait.json") == 0


def test_a_killed_build_leaves_no_release_behind(host, tmp_path):
    """A run killed mid-build (its lock goes stale) leaves a half-built dir that
    state.json does not list; the next locked deploy removes it."""
    ssh(host, "mkdir /srv/hop3/apps/conc-wait/releases/v99 && "
              "touch /srv/hop3/apps/conc-wait/releases/v99/half-built")  # fmt: skip
    app_dir = slow_app(tmp_path, "after", "6.0.0")
    hop("deploy", str(app_dir), "--app", "conc-wait", "-t", HOST)
    assert_only_complete_releases(host, "conc-wait")
    again = json.loads(hop("deploy", str(app_dir), "--app", "conc-wait", "-t", HOST,
                           "--json").stdout)  # fmt: skip
    assert again["changed"] == 0
