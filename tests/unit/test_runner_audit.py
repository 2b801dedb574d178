"""The runner's records of runs that never reached their audit play: an
interrupted run is recorded on the hosts it reached, with result interrupted."""

from __future__ import annotations

from pathlib import Path

from hop3 import runner
from hop3.runner import HostStats, RunResult


def interrupted(stats: dict[str, HostStats]) -> RunResult:
    return RunResult(verb="deploy", target="sandbox-1,sandbox-2", status="interrupted", rc=-1,
                     duration=1.0, started="2026-12-02T00:00:00Z", run_dir=Path("/nonexistent"),
                     stats=stats, signal="SIGTERM")  # fmt: skip


def recorded_runs(monkeypatch) -> list[dict]:
    calls = []

    def fake_run(name, **kwargs):
        calls.append({"playbook": name, **kwargs})
        return RunResult(verb=kwargs["verb"], target=kwargs["limit"], status="successful", rc=0,
                         duration=0.1, started="", run_dir=Path("/nonexistent"))  # fmt: skip

    monkeypatch.setattr(runner, "run_playbook", fake_run)
    return calls


def test_an_interrupted_run_is_recorded_on_the_hosts_it_reached(monkeypatch):
    calls = recorded_runs(monkeypatch)
    stats = {"sandbox-1": HostStats(ok=3), "sandbox-2": HostStats(unreachable=1)}
    runner.record_interrupted(interrupted(stats), {"user": "ops"}, Path("inventory.yml"))
    [call] = calls
    assert call["playbook"] == "audit-record" and call["limit"] == "sandbox-1"
    assert call["verb"] == "deploy (audit)" and call["record"] is False
    assert call["extravars"] == {
        "hop3_audit": {"user": "ops"},
        "hop3_auditlog_result": "interrupted",
        "hop3_auditlog_errors": {"sandbox-1": "interrupted by SIGTERM"},
    }


def test_a_run_interrupted_before_any_host_answered_is_recorded_on_its_target(monkeypatch):
    calls = recorded_runs(monkeypatch)
    runner.record_interrupted(interrupted({}), {"user": "ops"}, Path("inventory.yml"))
    assert calls[0]["limit"] == "sandbox-1,sandbox-2"
    assert calls[0]["extravars"]["hop3_auditlog_errors"] == dict.fromkeys(
        ["sandbox-1", "sandbox-2"], "interrupted by SIGTERM"
    )
