"""The per-app lock of role hop3_app (module_utils/hop3_app_lock.py), on real
files in tmp_path and real processes: take, wait, time out, take over a stale
lock, release by the owner only."""

from __future__ import annotations

import importlib.util
import itertools
import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest

LOCK_FILE = Path(__file__).resolve().parents[2] / "roles/hop3_app/module_utils/hop3_app_lock.py"
_spec = importlib.util.spec_from_file_location("hop3_app_lock", LOCK_FILE)
lock_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lock_module)
AppLock, LockBusy, LockLost, ModuleLock = (
    lock_module.AppLock,
    lock_module.LockBusy,
    lock_module.LockLost,
    lock_module.ModuleLock,
)


def new_lock(tmp_path: Path, app: str = "shop") -> AppLock:
    return AppLock(app, str(tmp_path / "locks"), poll=0.05)


def record(tmp_path: Path, app: str = "shop") -> dict:
    return json.loads((tmp_path / "locks" / f"{app}.json").read_text())


def test_acquire_records_the_owner(tmp_path):
    grant = new_lock(tmp_path).acquire("deploy", controller="me@ctl pid 42", run="run-1")
    held = record(tmp_path)
    assert held["token"] == grant["token"]
    assert (held["operation"], held["controller"], held["run"]) == (
        "deploy",
        "me@ctl pid 42",
        "run-1",
    )
    assert abs(held["since"] - time.time()) < 5
    assert grant["waited"] == 0 and grant["waited_for"] is None and grant["took_over"] is None


def test_other_apps_are_independent(tmp_path):
    new_lock(tmp_path, "shop").acquire("deploy")
    started = time.monotonic()
    new_lock(tmp_path, "blog").acquire("deploy", wait=0)
    assert time.monotonic() - started < 1


def test_second_operation_times_out_with_a_clear_message(tmp_path):
    new_lock(tmp_path).acquire("deploy", controller="me@ctl pid 42", run="run-1")
    started = time.monotonic()
    with pytest.raises(LockBusy) as caught:
        new_lock(tmp_path).acquire("config", wait=1, timeout=600)
    assert 1 <= time.monotonic() - started < 3
    message = str(caught.value)
    assert "App 'shop' is busy: a deploy started at" in message
    assert "by me@ctl pid 42 (run run-1)" in message
    assert "this config waited 1 s" in message
    assert "hop3_app_lock_timeout" in message and "hop3_app_lock_wait" in message
    assert "\n" not in message


def _hold_then_release(directory: str, held: float, ready) -> None:
    lock = AppLock("shop", directory, poll=0.05)
    grant = lock.acquire("deploy")
    ready.set()
    time.sleep(held)
    lock.release(grant["token"])


def test_second_operation_waits_then_gets_the_lock(tmp_path):
    ready = multiprocessing.Event()
    holder = multiprocessing.Process(
        target=_hold_then_release, args=(str(tmp_path / "locks"), 1.5, ready)
    )
    holder.start()
    assert ready.wait(10)
    grant = new_lock(tmp_path).acquire("restart", wait=30)
    holder.join(10)
    assert grant["waited_for"] == "deploy"
    assert 0.8 <= grant["waited"] < 10
    assert record(tmp_path)["operation"] == "restart"


def test_many_runs_at_once_hold_the_lock_one_at_a_time(tmp_path):
    directory = str(tmp_path / "locks")
    log = tmp_path / "log"
    workers = [
        multiprocessing.Process(target=_take_and_log, args=(directory, str(log), n))
        for n in range(6)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    spans = sorted(tuple(map(float, line.split())) for line in log.read_text().splitlines())
    assert len(spans) == 6
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end  # no two holders at the same time


def _take_and_log(directory: str, log: str, n: int) -> None:
    lock = AppLock("shop", directory, poll=0.02)
    grant = lock.acquire(f"deploy {n}", wait=30)
    start = time.time()
    time.sleep(0.1)
    end = time.time()
    with open(log, "a") as handle:
        handle.write(f"{start} {end}\n")
    lock.release(grant["token"])


def test_a_stale_lock_is_taken_over(tmp_path):
    (tmp_path / "locks").mkdir()
    old = time.time() - 3600
    stale = {"app": "shop", "token": "dead", "operation": "deploy", "since": old, "renewed": old}
    (tmp_path / "locks" / "shop.json").write_text(json.dumps(stale))
    started = time.monotonic()
    grant = new_lock(tmp_path).acquire("deploy", wait=30, timeout=1800)
    assert time.monotonic() - started < 1
    assert grant["took_over"]["token"] == "dead"
    assert record(tmp_path)["token"] == grant["token"]


def test_a_renewed_lock_is_not_stale(tmp_path):
    lock = new_lock(tmp_path)
    grant = lock.acquire("deploy")
    held = record(tmp_path)
    held["since"] = time.time() - 3600  # a long run, but still active
    (tmp_path / "locks" / "shop.json").write_text(json.dumps(held))
    lock.renew(grant["token"])
    with pytest.raises(LockBusy):
        new_lock(tmp_path).acquire("config", wait=0, timeout=1800)


def test_only_the_owner_releases(tmp_path):
    lock = new_lock(tmp_path)
    grant = lock.acquire("deploy")
    assert lock.release("not-the-token") is False
    assert record(tmp_path)["token"] == grant["token"]
    assert lock.release(grant["token"]) is True
    assert not (tmp_path / "locks" / "shop.json").exists()
    assert lock.release(grant["token"]) is False  # released once only


def test_a_run_whose_lock_was_taken_over_stops(tmp_path):
    first = new_lock(tmp_path).acquire("deploy")
    held = record(tmp_path)
    held["renewed"] = time.time() - 3600
    (tmp_path / "locks" / "shop.json").write_text(json.dumps(held))
    second = new_lock(tmp_path).acquire("config", timeout=1800)
    with pytest.raises(LockLost, match="taken over by a config"):
        new_lock(tmp_path).renew(first["token"])
    assert new_lock(tmp_path).release(first["token"]) is False
    assert record(tmp_path)["token"] == second["token"]


def test_module_lock_releases_on_failure_only_what_it_took(tmp_path):
    directory = str(tmp_path / "locks")
    options = {"operation": "deploy", "token": None, "release": False, "wait": 1,
               "timeout": 1800, "controller": "", "run": ""}  # fmt: skip
    taking = ModuleLock("shop", options, directory)
    taking.take()
    token = taking.token
    # A later module of the same run fails: the playbook's unlock step frees it.
    later = ModuleLock("shop", dict(options, operation=None, token=token), directory)
    later.take()
    later.finish(ok=False)
    assert record(tmp_path)["token"] == token
    # The module that took the lock fails: it frees it itself, once.
    taking.finish(ok=False)
    taking.finish(ok=True)
    assert not (tmp_path / "locks" / "shop.json").exists()


def test_module_lock_releases_at_the_end_when_asked(tmp_path):
    directory = str(tmp_path / "locks")
    options = {"operation": "restart", "token": None, "release": True, "wait": 1,
               "timeout": 1800, "controller": "", "run": ""}  # fmt: skip
    lock = ModuleLock("shop", options, directory)
    lock.take()
    lock.finish(ok=True)
    assert lock.report["released"] is True
    assert not (tmp_path / "locks" / "shop.json").exists()


def test_without_lock_option_nothing_is_locked(tmp_path):
    lock = ModuleLock("shop", None, str(tmp_path / "locks"))
    lock.take()
    lock.finish(ok=True)
    assert lock.report == {} and not (tmp_path / "locks").exists()


def test_cli_says_when_a_run_waited(capsys):
    from hop3.cli.appcommon import echo_lock_waits

    echo_lock_waits(
        "shop",
        {
            "sandbox-2": {"lock_waited": "0"},
            "sandbox-1": {"lock_waited": "14.2", "lock_waited_for": "deploy"},
        },
    )
    assert capsys.readouterr().out == "sandbox-1: waited 14 s for another deploy of shop\n"


def test_heartbeat_keeps_a_long_run_and_stops_a_taken_over_one(tmp_path):
    directory = str(tmp_path / "locks")
    options = {"operation": "deploy", "token": None, "release": False, "wait": 0,
               "timeout": 1800, "controller": "", "run": ""}  # fmt: skip
    lock = ModuleLock("shop", options, directory)
    lock.take()
    held = record(tmp_path)
    held["renewed"] = time.time() - 1700
    (tmp_path / "locks" / "shop.json").write_text(json.dumps(held))
    lock.heartbeat()
    assert time.time() - record(tmp_path)["renewed"] < 5
    (tmp_path / "locks" / "shop.json").unlink()
    with pytest.raises(LockLost, match="removed"):
        lock.heartbeat()


def test_tokens_never_contain_values_ansible_would_mask():
    avoid = {"1", "a", "Zq", "secret"}
    for _ in range(200):
        token = lock_module.new_token(avoid)
        assert len(token) == 24 and not any(value in token for value in avoid)


# -- the lease: renewed while its holder works, taken over soon after it stops -----------


def options(**extra) -> dict:
    return {"operation": "deploy", "token": None, "release": False, "wait": 0,
            "timeout": 45, "controller": "", "run": "", **extra}  # fmt: skip


def age(tmp_path: Path, seconds: float, app: str = "shop") -> None:
    held = record(tmp_path, app)
    held["renewed"] = time.time() - seconds
    (tmp_path / "locks" / f"{app}.json").write_text(json.dumps(held))


def test_a_working_module_renews_its_lease_from_a_thread(tmp_path):
    lock = ModuleLock("shop", options(), str(tmp_path / "locks"))
    lock.take()
    lock.stop_renewing()
    lock._renewer = None
    lock.keep_renewed(interval=0.05)  # a build that lasts longer than the lease
    age(tmp_path, 44)
    time.sleep(0.3)
    assert time.time() - record(tmp_path)["renewed"] < 1
    lock.finish(ok=False)
    assert not (tmp_path / "locks" / "shop.json").exists()


def test_a_lease_not_renewed_for_its_timeout_is_taken_over(tmp_path):
    first = new_lock(tmp_path).acquire("deploy", timeout=45)
    age(tmp_path, 46)
    grant = new_lock(tmp_path).acquire("config", wait=0, timeout=45)
    assert grant["took_over"]["token"] == first["token"]


def test_busy_message_says_when_the_lease_was_renewed_and_how_to_unlock(tmp_path):
    new_lock(tmp_path).acquire("deploy", timeout=45)
    age(tmp_path, 7)
    with pytest.raises(LockBusy) as caught:
        new_lock(tmp_path).acquire("config", wait=0, timeout=45)
    flat = " ".join(str(caught.value).split())
    assert "its holder renewed it 7 s ago" in flat
    assert "taken over automatically 45 s after its holder stopped renewing it" in flat
    assert "`hop unlock shop`" in flat


def test_recovery_takes_the_lock_of_its_interrupted_run_once_no_process_renews_it(tmp_path):
    grant = new_lock(tmp_path).acquire("deploy", timeout=45, run="run-1")
    held = record(tmp_path)
    assert held["pid"] == lock_module.os.getpid()
    # Its module still runs (this process): the recovery waits.
    with pytest.raises(LockBusy):
        new_lock(tmp_path).acquire("recovery", wait=0, timeout=45, steal_run="run-1")
    dead = multiprocessing.Process(target=lambda: None)
    dead.start()
    dead.join()
    held["pid"] = dead.pid
    (tmp_path / "locks" / "shop.json").write_text(json.dumps(held))
    with pytest.raises(LockBusy):  # another run's lock is never stolen
        new_lock(tmp_path).acquire("recovery", wait=0, timeout=45, steal_run="run-2")
    taken = new_lock(tmp_path).acquire("recovery", wait=0, timeout=45, steal_run="run-1")
    assert taken["took_over"]["token"] == grant["token"]


def test_remove_takes_any_holder_away(tmp_path):
    new_lock(tmp_path).acquire("deploy", timeout=45, controller="ops@laptop pid 1")
    removed = new_lock(tmp_path).remove()
    assert removed["controller"] == "ops@laptop pid 1"
    assert new_lock(tmp_path).remove() is None
    assert not (tmp_path / "locks" / "shop.json").exists()


def test_the_keeper_renews_while_its_anchor_lives_and_stops_when_released(tmp_path):
    lock = new_lock(tmp_path)
    token = lock.acquire("deploy", timeout=45)["token"]
    anchor = multiprocessing.Process(target=time.sleep, args=(30,))
    anchor.start()
    try:
        assert lock_module.spawn_keeper(lock, token, 0.05, anchor.pid, lifetime=20)
        age(tmp_path, 44)
        time.sleep(0.5)
        assert time.time() - record(tmp_path)["renewed"] < 1
        anchor.terminate()
        anchor.join()
        time.sleep(0.3)  # the keeper saw its anchor go
        age(tmp_path, 44)
        time.sleep(0.5)
        assert time.time() - record(tmp_path)["renewed"] > 40
    finally:
        anchor.kill()
        lock.release(token)


def test_no_anchor_no_keeper(tmp_path):
    lock = new_lock(tmp_path)
    token = lock.acquire("deploy", timeout=45)["token"]
    assert lock_module.spawn_keeper(lock, token, 0.05, None) is None


def test_controller_gone_sees_the_other_end_of_stdout_close():
    """A module whose run was killed must not start a swap: its stdout pipe
    (to sshd, with SSH pipelining) has no reader any more."""
    read_end, write_end = os.pipe()
    try:
        assert lock_module.controller_gone(write_end) is False
        os.close(read_end)
        read_end = None
        assert lock_module.controller_gone(write_end) is True
    finally:
        os.close(write_end)
        if read_end is not None:
            os.close(read_end)
