"""The CLI's shape: every command has help, and errors are one clear paragraph."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from hop3.cli.main import cli

COMMANDS = [
    [],
    ["setup"],
    ["status"],
    ["history"],
    ["server"],
    ["server", "add"],
    ["server", "list"],
    ["server", "remove"],
    ["sandbox"],
    ["sandbox", "up"],
    ["sandbox", "down"],
    ["sandbox", "status"],
    ["sandbox", "ssh"],
    *[
        [c]
        for c in (
            "deploy",
            "apps",
            "ps",
            "ps:scale",
            "start",
            "stop",
            "restart",
            "releases",
            "rollback",
            "destroy",
            "config",
            "config:get",
            "config:set",
            "config:unset",
            "domains:add",
            "domains:remove",
            "logs",
            "run",
            "sbom",
            "pg:create",
            "pg:list",
            "pg:info",
            "pg:link",
            "pg:unlink",
            "pg:destroy",
            "pg:psql",
            "redis:create",
            "redis:list",
            "redis:info",
            "redis:link",
            "redis:unlink",
            "redis:destroy",
            "redis:cli",
        )
    ],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "hop")
def test_every_command_has_help(command):
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


@pytest.mark.parametrize("command", [["setup"], ["status"], ["deploy"], ["config:set"], ["ps"]])
def test_host_commands_take_target_and_inventory(command):
    result = CliRunner().invoke(cli, [*command, "--help"])
    for flag in ("-t, --target", "-i, --inventory", "--json", "-v, --verbose"):
        assert flag in result.output


def test_setup_without_servers_explains_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOP3_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("HOP3_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("HOP3_TARGET", raising=False)
    from hop3.cli import main

    with pytest.raises(SystemExit) as exit_info:
        monkeypatch.setattr("sys.argv", ["hop", "setup"])
        main.main()
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert "No servers configured" in err and "hop server add" in err
    assert "Traceback" not in err


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and "hop" in result.output
