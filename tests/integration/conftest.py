"""Fixtures for tests on real sandbox hosts.

One set of sandbox hosts boots per test session and is shared: tests that
need a pristine host say so and reboot it with `hop sandbox up --fresh`.
The shared hosts boot from the converged image (`hop setup` already applied,
see hop3/sandbox/converged.py), so the session's first `hop setup` only
converges what changed since the image was built; a session that collects a
test marked `bare_setup` (one that checks a first setup on bare Debian)
boots them from the bare image instead, and HOP3_TEST_IMAGE=bare forces it.
The tests use their own inventory and history (HOP3_CONFIG_DIR and
HOP3_STATE_DIR), and the shared image cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

HOP = str(Path(sys.executable).with_name("hop"))
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HOST_COUNT = 2
SHARED_IMAGE = pytest.StashKey[str]()


def pytest_collection_modifyitems(config, items):
    """Tests marked `last` run after all others; `teardown` ones after those.
    Picks the image of the shared hosts (bare when a `bare_setup` test runs)."""
    bare = any(item.get_closest_marker("bare_setup") for item in items)
    forced = os.environ.get("HOP3_TEST_IMAGE")
    config.stash[SHARED_IMAGE] = forced or ("bare" if bare else "converged")

    def rank(item):
        return (
            2
            if item.get_closest_marker("teardown")
            else 1
            if item.get_closest_marker("last")
            else 0
        )

    items.sort(key=rank)


def pytest_configure(config):
    config.addinivalue_line("markers", "last: run after every other test (but teardown ones)")
    config.addinivalue_line("markers", "teardown: run at the very end (removes the sandbox)")
    config.addinivalue_line(
        "markers", "bare_setup: checks a first `hop setup`: the shared hosts boot bare Debian"
    )


@pytest.fixture(scope="session", autouse=True)
def hop_env(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.fail("Integration tests boot sandbox hosts and must run as root.")
    base = tmp_path_factory.mktemp("hop3")
    os.environ.pop("HOP3_TARGET", None)
    # A sandbox network of its own, so tests can run beside a demo sandbox.
    os.environ.setdefault("HOP3_SANDBOX_NET", "1")
    for name in ("HOP3_CONFIG_DIR", "HOP3_STATE_DIR"):
        os.environ.setdefault(name, str(base / name.lower()))
    # Hosts left by an interrupted session have their disks mounted under the
    # state dir: remove them with the sandbox, not by deleting files through them.
    if (Path(os.environ["HOP3_STATE_DIR"]) / "sandbox" / "disks").is_dir():
        subprocess.run([HOP, "sandbox", "down"], capture_output=True, timeout=300)
    for name in ("HOP3_CONFIG_DIR", "HOP3_STATE_DIR"):
        shutil.rmtree(os.environ[name], ignore_errors=True)
    return base


def hop(*args: str, check: bool = True, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run the real `hop` CLI; on unexpected failure show its output."""
    proc = subprocess.run([HOP, *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f"hop {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def hop_json(*args: str, check: bool = True):
    return json.loads(hop(*args, "--json", check=check).stdout)


@pytest.fixture(scope="session")
def sandbox_hosts(hop_env, request):
    """Boot the shared sandbox hosts once per session; remove them at the end."""
    image = request.config.stash.get(SHARED_IMAGE, "converged")
    hosts = hop_json("sandbox", "up", "-n", str(HOST_COUNT), "--image", image)
    yield hosts
    hop("sandbox", "down", check=False)


@pytest.fixture(scope="session")
def setup_runs(sandbox_hosts):
    """`hop setup` twice on all sandbox hosts: results of the first and second run
    (the second with --full: every step runs, and must change nothing)."""
    first = hop_json("setup", "-t", "sandbox")
    second = hop_json("setup", "-t", "sandbox", "--full")
    return first, second


@pytest.fixture(scope="module")
def host(setup_runs, sandbox_hosts):
    """The address of sandbox-1, set up: the host most modules deploy to."""
    return sandbox_hosts[0]["address"]


def hop_failure(*args: str) -> str:
    """Run a `hop` command that must fail without a traceback; its output on one line."""
    proc = hop(*args, check=False)
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    return " ".join((proc.stdout + proc.stderr).split())


def app_run(app: str, target: str, script: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a shell script in the app's release, as its user, with its config."""
    return hop("run", app, "-t", target, "--", "sh", "-c", script, check=check)


def http_get(address: str, vhost: str, path: str = "/", timeout: float = 10) -> tuple[int, str]:
    """GET http://ADDRESS/PATH with Host: VHOST; the status and the body (also of an error)."""
    request = urllib.request.Request(f"http://{address}{path}", headers={"Host": vhost})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def under_load(probe, action, *, seconds: float = 120, workers: int = 4) -> tuple[list, list]:
    """Run ACTION while WORKERS threads call PROBE over and over (each for at most
    SECONDS); PROBE yields (ok, detail) per request. The details of the requests
    that succeeded and of those that failed (an OSError is a failure)."""
    successes, failures, stop = [], [], threading.Event()

    def load():
        deadline = time.monotonic() + seconds  # bounded, stops by itself
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                for ok, detail in probe():
                    (successes if ok else failures).append(detail)
            except OSError as err:
                failures.append(repr(err))

    threads = [threading.Thread(target=load) for _ in range(workers)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1)
        action()
        time.sleep(1)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return successes, failures


def services_and_app(kind: str, names: tuple[str, ...], app: str, tmp_path_factory, target: str):
    """For a module fixture (``yield from``): service NAMES[0] of KIND ("pg",
    "redis") created twice, yielding both results, the other NAMES once, and the
    Flask example deployed as APP on TARGET; all removed afterwards."""
    first = hop_json(f"{kind}:create", names[0], "-t", target)
    second = hop_json(f"{kind}:create", names[0], "-t", target)
    for name in names[1:]:
        hop(f"{kind}:create", name, "-t", target)
    app_dir = tmp_path_factory.mktemp(app) / "python-flask"
    shutil.copytree(EXAMPLES / "python-flask", app_dir)
    hop("deploy", str(app_dir), "--app", app, "-t", target)
    yield first, second
    hop(f"{kind}:unlink", names[0], app, "-t", target, "--no-restart", check=False)
    for name in names:
        hop(f"{kind}:destroy", name, "--yes", "-t", target, check=False)
    hop("destroy", app, "--yes", "-t", target, check=False)


def ssh(address: str, *command: str, check: bool = True) -> subprocess.CompletedProcess:
    key = Path(os.environ["HOP3_STATE_DIR"]) / "sandbox" / "id_ed25519"
    args = ["ssh", "-i", str(key), "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", "BatchMode=yes", f"root@{address}", *command]  # fmt: skip
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        pytest.fail(f"ssh {address} {command} exited {proc.returncode}: {proc.stderr}")
    return proc


def stored(address: str, kind: str, name: str) -> dict | None:
    """Service NAME's credentials file on the host, from /srv/hop3/services/KIND/
    (KIND is "postgres" or "redis"); None when it is gone."""
    proc = ssh(address, f"cat /srv/hop3/services/{kind}/{name}.json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def secrets_in_runs(*secrets: str) -> list[str]:
    """The files of the run history (HOP3_STATE_DIR/runs) that hold one of ``secrets``."""
    runs = Path(os.environ["HOP3_STATE_DIR"]) / "runs"
    found = []
    for path in runs.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            found += [str(path) for s in secrets if s in text]
    return found
