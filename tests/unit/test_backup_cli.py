"""`hop backup*` and `hop restore`: validation at the edge and what each command
hands to its playbook, with the runner faked and a real inventory file."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from hop3.cli import backup
from hop3.runner import HostStats, RunResult

HOSTS = ("web-1", "web-2", "store")


class FakeRunner:
    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.calls: list[dict] = []
        self.reports: dict[str, dict] = {}

    def __call__(self, name, **kwargs):
        self.calls.append({"playbook": name, **kwargs})
        run_dir = self.tmp_path / f"run{len(self.calls)}"
        run_dir.mkdir()
        hosts = kwargs["limit"].split(",")
        return RunResult(
            verb=kwargs["verb"],
            target=kwargs["limit"],
            status="successful",
            rc=0,
            duration=0.1,
            started="2024-01-01T00:00:00Z",
            run_dir=run_dir,
            stats={h: HostStats(changed=1) for h in hosts},
            reports=self.reports,
        )


@pytest.fixture
def inventory(tmp_path):
    path = tmp_path / "inventory.yml"
    hosts = {name: {"ansible_host": f"10.0.0.{i}"} for i, name in enumerate(HOSTS, 1)}
    path.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    return path


@pytest.fixture
def runner(monkeypatch, tmp_path):
    fake = FakeRunner(tmp_path)
    monkeypatch.setattr("hop3.runner.run_playbook", fake)
    return fake


def invoke(*args):
    group = click.Group("hop")
    for command in backup.COMMANDS:
        group.add_command(command)
    return CliRunner().invoke(group, list(args))


def failure_text(result) -> str:
    return " ".join((result.output + " " + str(result.exception)).split())


def test_backup_to_a_repository_host_runs_on_both(runner, inventory):
    runner.reports = {
        "web-1": {
            "snapshot": "abcd1234",
            "files": 3,
            "databases": ["shop"],
            "redis": [],
            "repository": "sftp:x",
        }
    }
    result = invoke("backup", "shop", "-t", "web-1", "--repo", "store", "-i", str(inventory))
    assert result.exit_code == 0, result.output
    call = runner.calls[0]
    assert call["playbook"] == "backup"
    assert call["limit"] == "web-1,store"
    assert call["extravars"] == {
        "hop3_backup_hosts": "web-1",
        "hop3_backup_repo_host": "store",
        "hop3_backup_app": "shop",
        "hop3_backup_action": "backup",
    }
    assert "snapshot abcd1234 (3 files, 1 database(s), 0 Redis instance(s))" in result.output


def test_repository_host_from_the_inventory(runner, tmp_path):
    path = tmp_path / "inventory.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {"web-1": {}, "store": {}},
                    "vars": {"hop3_backup_repo_host": "store"},
                }
            }
        )
    )
    result = invoke("backups", "-t", "web-1", "-i", str(path))
    assert result.exit_code == 0, result.output
    assert runner.calls[0]["extravars"]["hop3_backup_repo_host"] == "store"
    assert runner.calls[0]["record"] is False


def test_new_key_is_shown_once_and_its_run_deleted(runner, inventory):
    runner.reports = {
        "web-1": {
            "snapshot": "abcd1234",
            "files": 1,
            "repository": "/r",
            "key_created": True,
            "key": "k" * 43,
        }
    }
    result = invoke("backup", "shop", "-t", "web-1", "-i", str(inventory))
    assert result.exit_code == 0, result.output
    assert "New backup key (made on web-1): " + "k" * 43 in result.output
    assert "Store it somewhere safe" in result.output
    key_run = runner.calls[1]
    assert key_run["extravars"]["hop3_backup_action"] == "key"
    assert key_run["record"] is False
    assert not (runner.tmp_path / "run2").exists()


def test_key_file_is_passed_to_the_host(runner, inventory, tmp_path):
    key = tmp_path / "key.txt"
    key.write_text("A" * 43 + "\n")
    runner.reports = {
        "web-2": {
            "snapshot": "abcd1234",
            "time": "t",
            "from": "web-1",
            "release": "v3",
            "databases": [],
            "redis": [],
            "files": 2,
            "domains": ["shop.web-2"],
            "address": "10.0.0.2",
        }
    }
    result = invoke(
        "restore",
        "shop",
        "-t",
        "web-2",
        "--from",
        "web-1",
        "--repo",
        "store",
        "--key-file",
        str(key),
        "-i",
        str(inventory),
    )
    assert result.exit_code == 0, result.output
    extravars = runner.calls[0]["extravars"]
    assert extravars["hop3_backup_key"] == "A" * 43
    assert extravars["hop3_backup_from"] == "web-1"
    assert extravars["hop3_backup_snapshot"] == "latest"
    assert extravars["hop3_deploy_hosts"] == "web-2"
    assert "Restored shop on web-2 from snapshot abcd1234" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["backup", "../x", "-t", "web-1"], "not a valid app name"),
        (["backup", "shop", "-t", "web-1", "--repo", "nowhere"], "not in the inventory"),
        (["backup", "shop", "-t", "web-1", "--repo", "web-1"], "cannot store its own backups"),
        (["restore", "shop", "-t", "web-1,web-2"], "restore puts shop on one host"),
        (["restore", "shop", "$(id)", "-t", "web-1"], "is not a snapshot id"),
        (["backup:schedule", "shop", "every tuesday", "-t", "web-1"], "is not a schedule"),
        (["backup:schedule", "shop", "daily", "--keep-daily", "0", "-t", "web-1"], "1<=x"),
    ],
)
def test_bad_input_is_refused_before_any_run(runner, inventory, args, message):
    result = invoke(*args, "-i", str(inventory))
    assert result.exit_code != 0
    assert message in failure_text(result)
    assert runner.calls == []


def test_a_key_file_that_holds_no_key(runner, inventory, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("two words\n")
    result = invoke("backup", "shop", "-t", "web-1", "--key-file", str(bad), "-i", str(inventory))
    assert result.exit_code != 0
    assert "does not hold a backup key" in failure_text(result)
    assert runner.calls == []


@pytest.mark.parametrize(
    ("when", "calendar"),
    [("daily", "daily"), ("hourly", "hourly"), ("30 2 * * *", "*-*-* 02:30:00")],
)
def test_schedule_and_retention(runner, inventory, when, calendar):
    result = invoke(
        "backup:schedule",
        "shop",
        when,
        "--keep-daily",
        "7",
        "--keep-weekly",
        "4",
        "-t",
        "web-1",
        "-i",
        str(inventory),
    )
    assert result.exit_code == 0, result.output
    extravars = runner.calls[0]["extravars"]
    assert extravars["hop3_backup_on_calendar"] == calendar
    assert extravars["hop3_backup_keep"] == {"daily": 7, "weekly": 4}
    assert "keeping 7 daily, 4 weekly" in result.output


def test_backups_lists_shared_snapshots_once(runner, inventory):
    snap = {"id": "abcd1234", "time": "2026-01-02T03:04:05Z", "host": "web-1", "app": "shop"}
    runner.reports = {h: {"repository": "sftp:r", "snapshots": [snap]} for h in ("web-1", "web-2")}
    result = invoke("backups", "-t", "web-1,web-2", "-i", str(inventory))
    assert result.exit_code == 0, result.output
    assert result.output.count("abcd1234") == 1
    assert "2026-01-02 03:04:05" in result.output
