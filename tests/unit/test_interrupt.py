"""Interrupting hop while a playbook runs (hop3/interrupt.py), with real
processes on this machine: a local playbook whose task sleeps, hop driven by
a small script, then SIGINT, SIGTERM or SIGKILL sent to it. Nothing of the
run may stay behind: not ansible-playbook, not the task's command."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hop3 import interrupt, runner
from hop3.progress import format_elapsed, timing_lines

DRIVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from hop3 import runner
    from hop3.errors import HopError
    try:
        runner.run_playbook(sys.argv[1], inventory=Path(sys.argv[2]), limit="localhost",
                            verb="test", quiet=True)
    except HopError as err:
        print(err.message)
        sys.exit(err.exit_code)
    """
)


@pytest.fixture
def slow_run(tmp_path, monkeypatch):
    """Start hop on a playbook whose task sleeps; return (process, tag, marker)."""
    tag = "hop3-interrupt-test-" + secrets.token_hex(4)
    marker = tmp_path / "started"
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        textwrap.dedent(
            f"""\
            - hosts: all
              gather_facts: false
              tasks:
                - name: Sleep
                  ansible.builtin.shell: "touch {marker}; sleep 300; echo {tag}"
            """
        )
    )
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    env = {**os.environ, "HOP3_STATE_DIR": str(tmp_path / "state"), "HOP3_MITOGEN": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(playbook), str(inventory)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 180
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.1)
    yield proc, tag
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def left_behind(tag: str) -> list[str]:
    """Processes whose command line holds ``tag`` (the task's shell and its children)."""
    out = subprocess.run(["pgrep", "-af", tag], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pgrep" not in line]


def wait_gone(tag: str, seconds: float = 30) -> list[str]:
    deadline = time.monotonic() + seconds
    while left_behind(tag) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left_behind(tag)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_whole_run_and_exits_with_its_code(slow_run, signum, code):
    proc, tag = slow_run
    assert left_behind(tag)  # the task's command runs
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == code, out
    assert f"test was interrupted ({signal.Signals(signum).name})" in out
    assert "Traceback" not in out
    assert wait_gone(tag, 5) == []


def test_a_killed_hop_takes_ansible_playbook_with_it(slow_run):
    proc, tag = slow_run
    proc.kill()
    proc.wait()
    assert wait_gone(tag) == []


def test_run_processes_finds_children_grandchildren_and_their_session(tmp_path):
    tag = "hop3-tree-" + secrets.token_hex(4)
    child = subprocess.Popen(
        ["sh", "-c", f"sleep 300 & (sleep 301; echo {tag}) & wait"], start_new_session=True
    )
    try:
        deadline = time.monotonic() + 10
        while len(interrupt.run_processes()) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        found = interrupt.run_processes()
        assert child.pid in found and len(found) >= 3
        assert interrupt.terminate_runs(grace=5) == set()  # SIGTERM was enough
        child.wait(timeout=5)
        assert interrupt.run_processes() == set()
    finally:
        if child.poll() is None:
            child.kill()


def test_exit_codes():
    assert interrupt.exit_code("SIGINT") == 130
    assert interrupt.exit_code("SIGTERM") == 143
    assert interrupt.exit_code(None) == 130
    assert interrupt.exit_code("SIGBOGUS") == 130


def test_shim_runs_the_real_ansible_playbook(tmp_path):
    real_dir = Path(sys.executable).parent
    shim = interrupt.write_shim(tmp_path / "bin", str(real_dir) + os.pathsep + os.environ["PATH"])
    assert shim is not None and os.access(shim, os.X_OK)
    # The shim checks that its parent is the process that wrote it (hop).
    script = (
        f"import subprocess,sys; sys.exit(subprocess.run([{str(shim)!r}, '--version']).returncode)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 143  # another parent: the shim refuses to run
    done = subprocess.run([str(shim), "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and "ansible-playbook" in done.stdout


# -- what hop says after an interrupted app run ------------------------------------------


STARTED = "2026-12-01T10:00:00Z"


def test_after_the_switch_the_new_release_is_live():
    report = {"exists": True, "current": "v7", "current_time": "2026-12-01T10:00:09Z",
              "removed": [], "stopped": []}  # fmt: skip
    line = runner.recovery_line("shop", "sandbox-1", report, STARTED)
    assert line == "sandbox-1: interrupted after the switch: v7 (the new release) is live."


def test_before_the_switch_the_old_release_serves_and_the_partial_one_is_removed():
    report = {"exists": True, "current": "v6", "current_time": "2026-11-30T09:00:00Z",
              "removed": ["v7"], "stopped": ["hop3-shop-web@v7-5001.service"]}  # fmt: skip
    line = runner.recovery_line("shop", "sandbox-1", report, STARTED)
    assert line == (
        "sandbox-1: interrupted before the switch: v6 still serves; the partial release v7 "
        "was removed; 1 instance(s) it had started were stopped."
    )


def test_a_first_deploy_interrupted_leaves_nothing_serving():
    report = {"exists": True, "current": None, "removed": ["v1"], "stopped": []}
    line = runner.recovery_line("shop", "sandbox-1", report, STARTED)
    assert line.startswith("sandbox-1: interrupted before the switch: no release of 'shop'")
    missing = runner.recovery_line("shop", "sandbox-1", {"exists": False}, STARTED)
    assert "does not exist" in missing


# -- timings --------------------------------------------------------------------------------


def test_task_timings_come_from_the_events(tmp_path):
    collector = runner.EventCollector(tmp_path)
    collector.handle({"event": "playbook_on_task_start", "event_data": {"task": "Build"}})
    for host, seconds in (("web1", 3.5), ("web2", 4.25)):
        data = {"host": host, "task": "Build", "duration": seconds}
        collector.handle({"event": "runner_on_ok", "event_data": data})
    collector.handle({"event": "runner_on_ok", "event_data": {
        "host": "web1", "task": "Switch", "start": "2026-12-01T10:00:00.000000",
        "end": "2026-12-01T10:00:01.500000"}})  # fmt: skip
    assert collector.timings == {"Build": 4.25, "Switch": 1.5}
    assert timing_lines([("Build", 4.25)]) == ["   4.25  Build"]


def test_elapsed_time_format():
    assert format_elapsed(0.4) == "0 s"
    assert format_elapsed(59.9) == "59 s"
    assert format_elapsed(61) == "1:01"
    assert format_elapsed(3725) == "62:05"
