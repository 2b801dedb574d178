"""MariaDB without a host: [[addons]] type = "mariadb" resolution and validation,
`hop mariadb:*` name checks, the module's SQL quoting and records, and the
backup tool's MariaDB dump/load (old snapshots without MariaDB included)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import subprocess
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from hop3.appspec import load_app, resolve_addons
from hop3.appspec.validate import app_name_error
from hop3.cli import mariadb
from hop3.errors import HopError

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "roles/hop3_mariadb/library/hop3_mariadb_database.py"
TOOL = ROOT / "roles/hop3_backup/files/hop3-backup"
PARTS = {
    "DATABASE_URL": "url",
    "MARIADB_HOST": "host",
    "MARIADB_PORT": "port",
    "MARIADB_DATABASE": "database",
    "MARIADB_USER": "user",
    "MARIADB_PASSWORD": "password",
}


def load_source(name: str, path: Path):
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader))
    loader.exec_module(module)
    return module


# --- the addon ---------------------------------------------------------------


def test_an_unnamed_mariadb_addon_gets_the_url_and_its_parts() -> None:
    assert resolve_addons("my-wiki", [{"type": "mariadb"}]) == [
        {
            "type": "mariadb",
            "instance": "my_wiki",
            "file": "/srv/hop3/services/mariadb/my_wiki.json",
            "env": PARTS,
        }
    ]


def test_a_named_mariadb_addon_prefixes_every_variable() -> None:
    (resolved,) = resolve_addons("shop", [{"type": "mariadb", "name": "legacy"}])
    assert resolved["instance"] == "shop_legacy"
    assert resolved["env"] == {f"LEGACY_{var}": field for var, field in PARTS.items()}


@pytest.mark.parametrize("app", ["information_schema", "performance_schema", "sys"])
def test_an_unnamed_addon_may_not_take_a_name_mariadb_keeps(app: str) -> None:
    with pytest.raises(HopError) as caught:
        resolve_addons(app.replace("_", "-"), [{"type": "mariadb"}])
    assert "is reserved by mariadb" in caught.value.message
    assert 'type = "mariadb", name = "main"' in (caught.value.hint or "")


@pytest.mark.parametrize("name", ["mysql", "mariadb"])
def test_apps_may_not_take_the_servers_names(name: str) -> None:
    assert app_name_error(name) is not None


def test_hop3_toml_accepts_mariadb_beside_the_other_addons(tmp_path: Path) -> None:
    (tmp_path / "hop3.toml").write_text(
        '[run]\nstart = "python app.py"\n\n'
        '[[addons]]\ntype = "mariadb"\n\n'
        '[[addons]]\ntype = "redis"\n'
    )
    spec = load_app(tmp_path, "wiki")
    assert [(a["type"], a["instance"]) for a in resolve_addons(spec.name, spec.addons)] == [
        ("mariadb", "wiki"),
        ("redis", "wiki"),
    ]


def test_an_unknown_addon_type_names_mariadb_among_the_choices(tmp_path: Path) -> None:
    (tmp_path / "hop3.toml").write_text('[run]\nstart = "x"\n\n[[addons]]\ntype = "mysql"\n')
    with pytest.raises(HopError) as caught:
        load_app(tmp_path, "wiki")
    assert "mariadb" in str(caught.value.message) + str(caught.value.hint or "")


def test_the_example_declares_a_mariadb_addon() -> None:
    spec = load_app(ROOT / "examples/python-mariadb", "guestbook")
    assert spec.addons == [{"type": "mariadb"}]


# --- the commands ------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch):
    """A group with the mariadb commands only; running a playbook is an error here."""

    def no_playbooks(*args, **kwargs):
        raise AssertionError("a playbook ran although the input was invalid")

    monkeypatch.setattr("hop3.runner.run_playbook", no_playbooks)
    group = click.Group("hop")
    for command in mariadb.COMMANDS:
        group.add_command(command)
    return group


def test_the_commands_mirror_pg() -> None:
    assert {c.name for c in mariadb.COMMANDS} == {
        "mariadb:create", "mariadb:list", "mariadb:info", "mariadb:link", "mariadb:unlink",
        "mariadb:destroy",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["mariadb:create", "mysql"], "reserved by MariaDB"),
        (["mariadb:info", "sys"], "reserved by MariaDB"),
        (["mariadb:create", "Bad-Name"], "not a valid database name"),
        (["mariadb:destroy", "x;drop", "-y"], "not a valid database name"),
        (["mariadb:link", "wiki", "Bad App"], "app name"),
    ],
)
def test_bad_names_are_refused_before_any_host_is_touched(cli, args, message) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    assert message in str(result.exception) + result.output


# --- the module --------------------------------------------------------------


@pytest.fixture
def module():
    return load_source("hop3_mariadb_database", MODULE)


def test_sql_names_and_strings_are_quoted(module) -> None:
    assert module.ident("my_wiki") == "`my_wiki`"
    # In GRANT, '_' is a wildcard: my_wiki must not also cover myxwiki.
    assert module.grant_ident("my_wiki") == "`my\\_wiki`"
    assert module.literal("it's a \\ test") == "'it\\'s a \\\\ test'"
    assert module.account("wiki", "127.0.0.1") == "'wiki'@'127.0.0.1'"
    for bad in ("Wiki", "a`b", "a b", "1wiki", ""):
        with pytest.raises(ValueError):
            module.ident(bad)


def test_a_new_record_holds_the_url_and_its_parts(module) -> None:
    from types import SimpleNamespace

    record = module.new_record(SimpleNamespace(params={"host": "127.0.0.1", "port": 3306}), "wiki")
    password = record.pop("password")
    assert len(password) >= 32 and set(password) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )
    assert record.pop("url") == f"mysql://wiki:{password}@127.0.0.1:3306/wiki"
    assert record == {
        "name": "wiki", "database": "wiki", "user": "wiki", "host": "127.0.0.1",
        "port": 3306, "links": [],
    }  # fmt: skip
    assert set(PARTS.values()) <= set(record) | {"url", "password"}


def test_the_servers_own_databases_are_reserved(module) -> None:
    assert set(mariadb.RESERVED_DB_NAMES) == module.RESERVED


# --- backups -----------------------------------------------------------------


@pytest.fixture
def tool(tmp_path, monkeypatch):
    module = load_source("hop3_backup_tool_mariadb", TOOL)
    monkeypatch.setattr(module, "SERVICES", str(tmp_path / "services"))
    monkeypatch.setattr(module, "RESTORING", str(tmp_path / "restore"))
    return module


def stage(tool, tmp_path, manifest: dict) -> Path:
    folder = tmp_path / "restore" / "guestbook" / tool.STAGING.lstrip("/") / "guestbook"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_a_snapshot_from_before_mariadb_still_loads(tool, tmp_path, monkeypatch) -> None:
    stage(tool, tmp_path, {"postgres": [], "redis": []})
    monkeypatch.setattr(tool.subprocess, "run", pytest.fail)
    assert tool.cmd_load("guestbook") == {
        "app": "guestbook", "databases": [], "mariadb": [], "redis_keys": {},
    }  # fmt: skip


def test_mariadb_dumps_are_loaded_as_root_from_stdin(tool, tmp_path, monkeypatch) -> None:
    folder = stage(tool, tmp_path, {"postgres": [], "mariadb": ["guestbook"], "redis": []})
    (folder / "mariadb").mkdir()
    (folder / "mariadb" / "guestbook.sql").write_text("CREATE TABLE t (n int);\n")
    calls = []

    def run(argv, stdin=None, **kwargs):
        calls.append((argv, stdin.read()))
        return subprocess.CompletedProcess(argv, 0, b"", b"")

    monkeypatch.setattr(tool.subprocess, "run", run)
    assert tool.cmd_load("guestbook")["mariadb"] == ["guestbook"]
    ((argv, fed),) = calls
    assert argv[0] == "mariadb" and "-u" in argv and argv[-1] == "--database=guestbook"
    assert fed == b"CREATE TABLE t (n int);\n"


def test_a_failing_mariadb_dump_makes_no_snapshot(tool, tmp_path, monkeypatch) -> None:
    def run(argv, **kwargs):
        assert argv[0] == "mariadb-dump" and "--single-transaction" in argv
        return subprocess.CompletedProcess(argv, 2, b"", b"Got error: 1049: Unknown database")

    monkeypatch.setattr(tool.subprocess, "run", run)
    with pytest.raises(tool.Failure, match="mariadb-dump of database guestbook failed"):
        tool.dump_mariadb("guestbook", str(tmp_path))


def test_a_restored_mariadb_record_is_put_in_place(tool, tmp_path) -> None:
    staged = tmp_path / "guestbook.json"
    staged.write_text(json.dumps({"name": "guestbook", "password": "p" * 43, "links": ["gb"]}))
    assert tool.place_record("mariadb", "guestbook", str(staged)) == "guestbook"
    placed = tmp_path / "services" / "mariadb" / "guestbook.json"
    assert json.loads(placed.read_text())["password"] == "p" * 43
    assert placed.stat().st_mode & 0o777 == 0o600
    assert tool.place_record("mariadb", "guestbook", str(staged)) is None
