"""`hop pg:*` and `hop redis:*` share one implementation (hop3/cli/services.py):
what each command hands to its playbook and what it prints, with the runner faked."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from hop3.cli import pg, redis
from hop3.errors import HopError
from hop3.runner import HostStats, RunResult
from hop3.targets import Target


class FakeRunner:
    """Stands for run_playbook: records each call and returns a canned result."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.calls: list[dict] = []
        self.reports: dict[str, dict] = {}
        self.changed = 1

    def __call__(self, name, **kwargs):
        self.calls.append({"playbook": name, **kwargs})
        run_dir = self.tmp_path / "run"
        run_dir.mkdir(exist_ok=True)
        return RunResult(
            verb=kwargs["verb"], target=kwargs["limit"], status="successful", rc=0,
            duration=0.1, started="2024-01-01T00:00:00Z", run_dir=run_dir,
            stats={"web-1": HostStats(changed=self.changed)}, reports=self.reports,
        )  # fmt: skip


@pytest.fixture
def runner(monkeypatch, tmp_path):
    fake = FakeRunner(tmp_path)
    monkeypatch.setattr("hop3.runner.run_playbook", fake)
    target = Target(inventory=tmp_path / "inventory.yml", limit="web-1", hosts=["web-1"])
    monkeypatch.setattr("hop3.targets.resolve_target", lambda target_, inventory: target)
    return fake


def invoke(module, *args):
    group = click.Group("hop")
    for command in module.COMMANDS:
        group.add_command(command)
    return CliRunner().invoke(group, list(args))


@pytest.mark.parametrize(
    ("module", "args", "playbook", "verb", "extravars", "record", "output"),
    [
        (pg, ["pg:create", "shop"], "pg", "pg:create",
         {"hop3_pg_action": "create", "hop3_postgresql_name": "shop"}, True,
         "Database shop is ready. Use it with `hop pg:link shop APP`.\n"),
        (redis, ["redis:create", "cache"], "redis", "redis:create",
         {"hop3_redis_action": "create", "hop3_redis_name": "cache"}, True,
         "Redis cache is ready. Use it with `hop redis:link cache APP`.\n"),
        (pg, ["pg:link", "shop", "app1"], "pg", "pg:link",
         {"hop3_pg_action": "link", "hop3_postgresql_name": "shop",
          "hop3_postgresql_app": "app1", "hop3_postgresql_restart": True}, True,
         "Linked shop to app1 (DATABASE_URL).\n"),
        (redis, ["redis:link", "cache", "app1"], "redis", "redis:link",
         {"hop3_redis_action": "link", "hop3_redis_name": "cache", "hop3_redis_app": "app1",
          "hop3_redis_restart": True}, True,
         "Linked cache to app1 (REDIS_URL, REDIS_KEY_PREFIX=cache:).\n"),
        (pg, ["pg:unlink", "shop", "app1", "--no-restart"], "pg", "pg:unlink",
         {"hop3_pg_action": "unlink", "hop3_postgresql_name": "shop",
          "hop3_postgresql_app": "app1", "hop3_postgresql_restart": False}, True,
         "Unlinked shop from app1.\n"),
        (redis, ["redis:unlink", "cache", "app1"], "redis", "redis:unlink",
         {"hop3_redis_action": "unlink", "hop3_redis_name": "cache", "hop3_redis_app": "app1",
          "hop3_redis_restart": True}, True,
         "Unlinked cache from app1.\n"),
        (pg, ["pg:destroy", "shop", "--yes"], "pg", "pg:destroy",
         {"hop3_pg_action": "destroy", "hop3_postgresql_name": "shop"}, True,
         "Destroyed database shop.\n"),
        (redis, ["redis:destroy", "cache", "-y"], "redis", "redis:destroy",
         {"hop3_redis_action": "destroy", "hop3_redis_name": "cache"}, True,
         "Destroyed Redis instance cache.\n"),
        (pg, ["pg:list"], "pg", "pg:list", {"hop3_pg_action": "list"}, False,
         "No databases. Create one with `hop pg:create NAME`.\n"),
        (redis, ["redis:list"], "redis", "redis:list", {"hop3_redis_action": "list"}, False,
         "No Redis instances. Create one with `hop redis:create NAME`.\n"),
    ],
)  # fmt: skip
def test_commands_run_their_playbook(runner, module, args, playbook, verb, extravars, record,
                                     output):  # fmt: skip
    result = invoke(module, *args)
    assert result.exit_code == 0, result.output
    assert result.output == output
    (call,) = runner.calls
    assert call["playbook"] == playbook and call["verb"] == verb
    assert call["extravars"] == extravars
    assert call["record"] is record
    assert call["limit"] == "web-1"


def test_create_says_when_nothing_changed(runner):
    runner.changed = 0
    assert invoke(pg, "pg:create", "shop").output.startswith("Database shop exists.")
    assert invoke(redis, "redis:create", "cache").output.startswith("Redis cache exists.")


def test_lists_print_a_table(runner):
    db = {"name": "shop", "size": 8 * 1024 * 1024, "connections": 2, "links": ["a", "b"]}
    runner.reports = {"web-1": {"databases": [db]}}
    assert invoke(pg, "pg:list").output.splitlines() == [
        f"{'HOST':<16} {'NAME':<24} {'SIZE':>10} {'CONN':>5}  LINKED APPS",
        f"{'web-1':<16} {'shop':<24} {'8.0 MB':>10} {2:>5}  a, b",
    ]
    runner.reports = {"web-1": {"instances": [{"name": "cache", "key_prefix": "cache:"}]}}
    assert invoke(redis, "redis:list").output.splitlines() == [
        f"{'HOST':<16} {'NAME':<24} {'PREFIX':<25}  LINKED APPS",
        f"{'web-1':<16} {'cache':<24} {'cache:':<25}  -",
    ]


@pytest.mark.parametrize(
    ("module", "args", "report", "lines", "extravars"),
    [
        (pg, ["pg:info", "shop"],
         {"exists": True, "name": "shop", "host": "127.0.0.1", "port": 5432, "size": 2048,
          "connections": 1, "links": ["app1"]},
         ["Name:        shop", "Host:        web-1 (127.0.0.1:5432)", "Size:        2.0 kB",
          "Connections: 1", "Linked apps: app1"],
         {"hop3_pg_action": "info", "hop3_postgresql_name": "shop",
          "hop3_postgresql_show_secrets": False}),
        (redis, ["redis:info", "cache"],
         {"exists": True, "name": "cache", "host": "127.0.0.1", "port": 6379, "links": []},
         ["Name:        cache", "Host:        web-1 (127.0.0.1:6379)", "Key prefix:  cache:",
          "Linked apps: -"],
         {"hop3_redis_action": "info", "hop3_redis_name": "cache",
          "hop3_redis_show_secrets": False}),
    ],
)  # fmt: skip
def test_info_prints_the_report(runner, module, args, report, lines, extravars):
    runner.reports = {"web-1": report}
    result = invoke(module, *args)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == lines
    assert runner.calls[0]["extravars"] == extravars
    assert runner.calls[0]["record"] is False and runner.calls[0]["quiet"] is True
    assert (runner.tmp_path / "run").is_dir()


@pytest.mark.parametrize(("module", "name"), [(pg, "pg:info"), (redis, "redis:info")])
def test_info_with_secrets_deletes_the_run_dir(runner, module, name):
    runner.reports = {"web-1": {"exists": True, "name": "x", "url": "proto://x:pw@h/x"}}
    result = invoke(module, name, "x", "--show-secrets")
    assert result.exit_code == 0, result.output
    assert "URL:         proto://x:pw@h/x" in result.output
    assert list(runner.calls[0]["extravars"].values())[-1] is True
    assert not (runner.tmp_path / "run").exists()


@pytest.mark.parametrize(("module", "name"), [(pg, "pg:create"), (redis, "redis:create")])
def test_create_with_secrets_shows_the_url_and_deletes_the_run_dir(runner, module, name):
    runner.reports = {"web-1": {"name": "x", "url": "proto://x:pw@h/x"}}
    result = invoke(module, name, "x", "--show-secrets")
    assert result.exit_code == 0, result.output
    assert "URL on web-1: proto://x:pw@h/x" in result.output
    assert list(runner.calls[0]["extravars"].values())[-1] is True
    assert not (runner.tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("module", "name", "message", "hint"),
    [
        (pg, "pg:info", "There is no database named 'x' on web-1.",
         "`hop pg:list` lists the databases."),
        (redis, "redis:info", "There is no Redis instance named 'x' on web-1.",
         "`hop redis:list` lists the instances."),
    ],
)  # fmt: skip
def test_info_of_a_missing_service(runner, module, name, message, hint):
    runner.reports = {"web-1": {"exists": False}}
    result = invoke(module, name, "x")
    assert isinstance(result.exception, HopError)
    assert (result.exception.message, result.exception.hint) == (message, hint)


def test_info_json_keeps_only_hosts_that_have_it(runner):
    runner.reports = {"web-1": {"exists": True, "name": "x"}, "web-2": {"exists": False}}
    result = invoke(pg, "pg:info", "x", "--json")
    assert result.exit_code == 0, result.output
    assert '"web-2"' not in result.output and '"web-1"' in result.output


@pytest.mark.parametrize(("module", "name"), [(pg, "pg:psql"), (redis, "redis:cli")])
def test_shells_open_one_host_only(monkeypatch, tmp_path, module, name):
    target = Target(inventory=tmp_path / "i.yml", limit="all", hosts=["web-1", "web-2"])
    monkeypatch.setattr("hop3.targets.resolve_target", lambda target_, inventory: target)
    result = invoke(module, name, "x")
    assert isinstance(result.exception, HopError)
    assert result.exception.message == f"{name} opens one host, but the target has 2."
    assert result.exception.hint == "Pick one with -t (web-1, web-2)."
