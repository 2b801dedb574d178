"""`hop pg:*`: names are validated before any host is touched; every command has help;
the module quotes what it puts in SQL."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from hop3.cli import pg
from hop3.errors import HopError

MODULE = Path(__file__).resolve().parents[2] / "roles/hop3_postgresql/library/hop3_pg_database.py"


@pytest.fixture
def cli(monkeypatch):
    """A group with the pg commands only; running a playbook is an error here."""

    def no_playbooks(*args, **kwargs):
        raise AssertionError("a playbook ran although the input was invalid")

    monkeypatch.setattr("hop3.runner.run_playbook", no_playbooks)
    group = click.Group("hop")
    for command in pg.COMMANDS:
        group.add_command(command)
    return group


def test_commands_are_exported():
    names = {c.name for c in pg.COMMANDS}
    assert names == {"pg:create", "pg:list", "pg:info", "pg:link", "pg:unlink",
                     "pg:destroy", "pg:psql"}  # fmt: skip


@pytest.mark.parametrize("name", sorted(c.name for c in pg.COMMANDS))
def test_every_pg_command_has_help_and_run_options(cli, name):
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    for flag in ("-t, --target", "-i, --inventory", "--json", "-v, --verbose"):
        assert flag in result.output


def test_info_and_link_options(cli):
    assert "--show-secrets" in CliRunner().invoke(cli, ["pg:info", "--help"]).output
    for name in ("pg:link", "pg:unlink"):
        assert "--no-restart" in CliRunner().invoke(cli, [name, "--help"]).output
    assert "--yes" in CliRunner().invoke(cli, ["pg:destroy", "--help"]).output


@pytest.mark.parametrize("name", ["shop", "shop_db", "a", "db2", "a" * 63])
def test_valid_names(name):
    assert pg.validate_db_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "Shop", "2shop", "_shop", "shop-db", "shop db", "shop;drop", 'x"y', "a" * 64,
     "shop\n", "ünï", "postgres", "template1", "public"],
)  # fmt: skip
def test_invalid_names_are_refused(name):
    with pytest.raises(HopError):
        pg.validate_db_name(name)


@pytest.mark.parametrize(
    "args",
    [
        ["pg:create", "Bad-Name"],
        ["pg:info", "x;drop"],
        ["pg:link", "bad name", "app"],
        ["pg:unlink", "ok_db", "Bad_App"],
        ["pg:link", "ok_db", "app;id"],
        ["pg:destroy", "postgres", "--yes"],
        ["pg:psql", "a'b"],
    ],
)
def test_commands_refuse_bad_names_before_running(cli, args):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    assert isinstance(result.exception, HopError), result.output


def test_bad_name_message_says_what_to_use(cli):
    result = CliRunner().invoke(cli, ["pg:create", "Shop"])
    assert "not a valid database name" in result.exception.message
    assert "lowercase" in result.exception.hint


def test_destroy_asks_first(cli):
    result = CliRunner().invoke(cli, ["pg:destroy", "shopdb"], input="n\n")
    assert result.exit_code != 0
    assert "Drop database shopdb" in result.output


@pytest.fixture(scope="module")
def module():
    pytest.importorskip("ansible")
    spec = importlib.util.spec_from_file_location("hop3_pg_database", MODULE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_module_validates_and_quotes(module):
    assert module.ident("shop_db") == '"shop_db"'
    assert module.literal("it's") == "'it''s'"
    for bad in ('a"; DROP ROLE x; --', "Shop", "a" * 64, ""):
        with pytest.raises(ValueError):
            module.ident(bad)


def test_module_and_cli_agree_on_names(module):
    assert module.NAME_RE.pattern == pg.DB_NAME_RE.pattern
    assert module.RESERVED == pg.RESERVED_DB_NAMES


class FakePg:
    def __init__(self, acl):
        self.acl = acl

    def one(self, sql):
        return self.acl


@pytest.mark.parametrize(
    ("acl", "public"),
    [
        ("NULL", True),  # the default ACL: PUBLIC may connect
        ("{=Tc/shop,shop=CTc/shop}", True),
        ("{=T/shop,shop=CTc/shop}", False),
        ("{shop=CTc/shop}", False),
        ('{"=c/shop",shop=CTc/shop}', True),
    ],
)
def test_module_reads_public_connect_from_the_acl(module, acl, public):
    assert module.public_can_connect(FakePg(acl), "shop") is public


def test_module_refuses_a_trailing_newline(module):
    with pytest.raises(ValueError):
        module.ident("shop\n")
