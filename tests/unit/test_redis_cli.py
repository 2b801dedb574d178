"""`hop redis:*`: names are validated before any host is touched; every command has help;
redis:cli never puts a password on a command line; the module's ACL rules."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from hop3.cli import redis
from hop3.errors import HopError

MODULE = Path(__file__).resolve().parents[2] / "roles/hop3_redis/library/hop3_redis_instance.py"


@pytest.fixture
def cli(monkeypatch):
    """A group with the redis commands only; running a playbook is an error here."""

    def no_playbooks(*args, **kwargs):
        raise AssertionError("a playbook ran although the input was invalid")

    monkeypatch.setattr("hop3.runner.run_playbook", no_playbooks)
    group = click.Group("hop")
    for command in redis.COMMANDS:
        group.add_command(command)
    return group


def test_commands_are_exported():
    names = {c.name for c in redis.COMMANDS}
    assert names == {"redis:create", "redis:list", "redis:info", "redis:link", "redis:unlink",
                     "redis:destroy", "redis:cli"}  # fmt: skip


@pytest.mark.parametrize("name", sorted(c.name for c in redis.COMMANDS))
def test_every_redis_command_has_help_and_run_options(cli, name):
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    for flag in ("-t, --target", "-i, --inventory", "--json", "-v, --verbose"):
        assert flag in result.output


def test_info_link_and_destroy_options(cli):
    assert "--show-secrets" in CliRunner().invoke(cli, ["redis:info", "--help"]).output
    for name in ("redis:link", "redis:unlink"):
        assert "--no-restart" in CliRunner().invoke(cli, [name, "--help"]).output
    assert "--yes" in CliRunner().invoke(cli, ["redis:destroy", "--help"]).output


@pytest.mark.parametrize("name", ["cache", "cache1", "a", "shop_cache", "a" * 63])
def test_valid_names(name):
    assert redis.validate_redis_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "Cache", "2cache", "_cache", "cache-1", "cache 1", "c;flushall", "a:b", "a*", "a" * 64,
     "cache\n", "ünï", "default", "hop3admin"],
)  # fmt: skip
def test_invalid_names_are_refused(name):
    with pytest.raises(HopError):
        redis.validate_redis_name(name)


@pytest.mark.parametrize(
    "args",
    [
        ["redis:create", "Bad-Name"],
        ["redis:info", "x;drop"],
        ["redis:link", "bad name", "app"],
        ["redis:unlink", "ok_cache", "Bad_App"],
        ["redis:link", "ok_cache", "app;id"],
        ["redis:destroy", "default", "--yes"],
        ["redis:cli", "a'b"],
    ],
)
def test_commands_refuse_bad_names_before_running(cli, args):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    assert isinstance(result.exception, HopError), result.output


def test_bad_name_message_says_what_to_use(cli):
    result = CliRunner().invoke(cli, ["redis:create", "Cache"])
    assert "not a valid Redis instance name" in result.exception.message
    assert "lowercase" in result.exception.hint


def test_destroy_asks_first(cli):
    result = CliRunner().invoke(cli, ["redis:destroy", "cache1"], input="n\n")
    assert result.exit_code != 0
    assert "Destroy Redis instance cache1" in result.output


def test_cli_script_reads_the_password_on_the_host():
    script = redis.cli_script("cache1")
    assert "/srv/hop3/services/redis/cache1.json" in script
    assert "export REDISCLI_AUTH" in script
    assert script.endswith("redis-cli --no-auth-warning --user cache1")
    assert " -a " not in script and "-u " not in script


@pytest.fixture(scope="module")
def module():
    pytest.importorskip("ansible")
    spec = importlib.util.spec_from_file_location("hop3_redis_instance", MODULE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_module_and_cli_agree_on_names(module):
    assert module.NAME_RE.pattern == redis.REDIS_NAME_RE.pattern
    assert module.RESERVED == redis.RESERVED_REDIS_NAMES


def test_module_rules_restrict_keys_and_channels(module):
    rules = module.rules("cache1", "pw")
    assert rules.split() == ["reset", "on", ">pw", "~cache1:*", "resetchannels", "&cache1:*",
                             "+@all", "-@admin", "-@dangerous"]  # fmt: skip
    for bad in ("cache1 ~*", "Cache", "a" * 64, "", "cache1\n"):
        with pytest.raises(ValueError):
            module.rules(bad, "pw")


def test_module_compares_with_what_acl_list_shows(module):
    import hashlib

    line = ("user cache1 on sanitize-payload #" + hashlib.sha256(b"pw").hexdigest()
            + " ~cache1:* resetchannels &cache1:* +@all -@dangerous").split()  # fmt: skip
    assert module.wanted_tokens("cache1", "pw") <= set(line)
    assert not module.wanted_tokens("cache1", "other") <= set(line)
