"""`hop audit`: rendering of the report and its exit code, with the runner faked."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hop3.cli.audit import audit
from hop3.runner import HostStats, RunResult
from hop3.targets import Target


def report(*statuses: str) -> dict:
    checks = [
        {"id": f"c{i}", "title": f"Check {i}", "status": s, "found": f"found {i}",
         "fix": "" if s == "pass" else f"fix {i}"}
        for i, s in enumerate(statuses)
    ]  # fmt: skip
    counts = {s: statuses.count(s) for s in ("pass", "warn", "fail")}
    return {"checks": checks, "counts": counts}


@pytest.fixture
def fake(monkeypatch, tmp_path):
    calls = []
    reports: dict = {}

    def run_playbook(name, **kwargs):
        calls.append({"playbook": name, **kwargs})
        return RunResult(
            verb="audit", target="web-1", status="successful", rc=0, duration=0.1,
            started="2024-01-01T00:00:00Z", run_dir=tmp_path,
            stats={"web-1": HostStats()}, reports=reports,
        )  # fmt: skip

    monkeypatch.setattr("hop3.runner.run_playbook", run_playbook)
    target = Target(inventory=tmp_path / "inventory.yml", limit="web-1", hosts=["web-1"])
    monkeypatch.setattr("hop3.targets.resolve_target", lambda target_, inventory: target)
    return calls, reports


def test_warnings_alone_exit_zero(fake):
    calls, reports = fake
    reports["web-1"] = report("pass", "warn")
    result = CliRunner().invoke(audit, ["-t", "web-1"])
    assert result.exit_code == 0, result.output
    assert "Check 1" in result.output and "fix 1" in result.output
    assert "web-1: 1 pass, 1 warn, 0 fail" in result.output
    assert calls[0]["playbook"] == "audit" and calls[0]["record"] is False


def test_a_failed_check_exits_one_with_the_json_report(fake):
    _, reports = fake
    reports["web-1"] = report("pass", "fail")
    result = CliRunner().invoke(audit, ["-t", "web-1", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.output)["web-1"]["counts"]["fail"] == 1


def test_a_failed_check_says_what_to_do(fake):
    _, reports = fake
    reports["web-1"] = report("fail")
    result = CliRunner().invoke(audit, ["-t", "web-1"])
    assert result.exit_code != 0
    assert "1 check(s) failed" in str(result.exception)


def test_the_hop_program_exits_one_too(fake, monkeypatch):
    """`hop ... --json` reports failure by exit code, through the real entry point."""
    from hop3.cli.main import main

    _, reports = fake
    reports["web-1"] = report("fail")
    monkeypatch.setattr("sys.argv", ["hop", "audit", "-t", "web-1", "--json"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
