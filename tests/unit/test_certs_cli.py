"""`hop certs APP`: what it asks of its playbook and what it prints, with the runner faked."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from hop3.cli import certs
from hop3.runner import HostStats, RunResult
from hop3.targets import Target

CERT = {
    "names": ["shop.example.com"],
    "issuer": "CN=Pebble Intermediate CA 044f40",
    "subject": "CN=shop.example.com",
    "serial": "4051496B44A7FA",
    "not_after": "2031-11-27T06:22:26Z",
    "days_left": 1825,
    "path": "/etc/letsencrypt/live/hop3-shop/fullchain.pem",
}
ACME_REPORT = {
    "app": "shop",
    "exists": True,
    "mode": "acme",
    "names": ["shop.example.com"],
    "certificate": CERT,
    "domains": [
        {"name": "shop.web-1", "mode": "acme", "covered": False, "issuer": None,
         "not_after": None, "serial": None},
        {"name": "shop.example.com", "mode": "acme", "covered": True, "issuer": CERT["issuer"],
         "not_after": CERT["not_after"], "serial": CERT["serial"]},
    ],
}  # fmt: skip


@pytest.fixture
def calls(monkeypatch, tmp_path):
    recorded: list[dict] = []
    reports: dict[str, dict] = {}

    def fake(name, **kwargs):
        recorded.append({"playbook": name, **kwargs})
        run_dir = tmp_path / "run"
        run_dir.mkdir(exist_ok=True)
        return RunResult(
            verb=kwargs["verb"], target=kwargs["limit"], status="successful", rc=0,
            duration=0.1, started="2024-01-01T00:00:00Z", run_dir=run_dir,
            stats={"web-1": HostStats()}, reports=reports,
        )  # fmt: skip

    monkeypatch.setattr("hop3.runner.run_playbook", fake)
    target = Target(inventory=tmp_path / "inventory.yml", limit="web-1", hosts=["web-1"])
    monkeypatch.setattr("hop3.targets.resolve_target", lambda target_, inventory: target)
    return recorded, reports


def invoke(*args):
    group = click.Group("hop")
    group.add_command(certs.certs)
    return CliRunner().invoke(group, list(args))


def test_table_per_host_and_domain(calls):
    recorded, reports = calls
    reports["web-1"] = ACME_REPORT
    result = invoke("certs", "shop")
    assert result.exit_code == 0, result.output
    assert recorded[0]["playbook"] == "certs"
    assert recorded[0]["extravars"] == {"hop3_app_name": "shop"}
    assert recorded[0]["record"] is False  # read-only: no run history entry
    lines = result.output.splitlines()
    covered = next(line for line in lines if "shop.example.com" in line)
    for text in (
        "web-1",
        "acme",
        "CN=Pebble Intermediate CA 044f40",
        "2031-11-27T06:22:26Z",
        "1825",
    ):
        assert text in covered
    assert "not covered" in next(line for line in lines if "shop.web-1" in line)


def test_json_is_the_report_per_host(calls):
    _, reports = calls
    reports["web-1"] = ACME_REPORT
    result = invoke("certs", "shop", "--json")
    assert json.loads(result.output) == {"web-1": ACME_REPORT}


def test_off_and_pending_modes(calls):
    _, reports = calls
    reports["web-1"] = {
        "app": "shop", "exists": True, "mode": "off", "names": [], "certificate": None,
        "domains": [{"name": "shop.web-1", "mode": "off", "covered": False, "issuer": None,
                     "not_after": None, "serial": None}],
    }  # fmt: skip
    line = next(x for x in invoke("certs", "shop").output.splitlines() if "shop.web-1" in x)
    assert " off " in line
    reports["web-1"] = {**ACME_REPORT, "certificate": None,
                        "domains": [{**ACME_REPORT["domains"][1], "covered": False}]}  # fmt: skip
    line = next(x for x in invoke("certs", "shop").output.splitlines() if "shop.example" in x)
    assert "no certificate yet" in line


def test_unknown_app_and_bad_name(calls, tmp_path: Path):
    _, reports = calls
    reports["web-1"] = {"app": "nope", "exists": False, "mode": None, "domains": []}
    result = invoke("certs", "nope")
    assert result.exit_code != 0
    assert "There is no app named 'nope' on web-1." in str(result.exception)
    bad = invoke("certs", "Bad_Name")
    assert bad.exit_code != 0 and "not a valid app name" in str(bad.exception)
