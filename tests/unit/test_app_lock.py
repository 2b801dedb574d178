"""The per-app lock of role hop3_app (module_utils/hop3_app_lock.py), on real
files in tmp_path and real processes: take, wait, time out, take over a stale
lock, release by the owner only."""

from __future__ import annotations

import importlib.util
import itertools
import json
import multiprocessing
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
