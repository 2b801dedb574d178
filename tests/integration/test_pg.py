"""PostgreSQL databases for apps on a real sandbox host: create (idempotent),
link to a deployed app, use it from the app, isolation between databases,
no secret in output or run records, destroy."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .conftest import app_run, hop, hop_json, secrets_in_runs, services_and_app, ssh, stored

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HOST = "sandbox-1"
APP = "pgapp"


def sql(address: str, query: str) -> str:
    return ssh(address, f'cd / && runuser -u postgres -- psql -XAtc "{query}"').stdout.strip()


def app_sh(script: str, check: bool = True) -> subprocess.CompletedProcess:
    return app_run(APP, HOST, script, check)


@pytest.fixture(scope="module")
def databases(host, tmp_path_factory):
    """shopdb and otherdb on sandbox-1 and the Flask example as app pgapp."""
    yield from services_and_app("pg", ("shopdb", "otherdb"), APP, tmp_path_factory, HOST)


def test_create_is_idempotent_and_keeps_the_password_on_the_host(databases, host):
    first, second = databases
    assert first["ok"] and second["ok"]
    assert second["changed"] == 0
    record = stored(host, "postgres", "shopdb")
    assert len(record["password"]) >= 32
    mode = ssh(host, "stat -c '%a %U' /srv/hop3/services/postgres/shopdb.json").stdout.split()
    assert mode == ["600", "root"]
    assert record["password"] not in json.dumps(first) + json.dumps(second)
    assert sql(host, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname='shopdb'") \
        == "shopdb"  # fmt: skip
    listed = hop_json("pg:list", "-t", HOST)[HOST]
    assert {"shopdb", "otherdb"} <= {db["name"] for db in listed}


def test_link_gives_the_app_a_working_database(databases, host):
    hop("pg:link", "shopdb", APP, "-t", HOST)
    again = hop_json("pg:link", "shopdb", APP, "-t", HOST)
    assert again["changed"] == 0
    out = hop("run", APP, "-t", HOST, "--", "python", "-c",
              "import os; print(os.environ['DATABASE_URL'].split('@')[1])").stdout  # fmt: skip
    assert out.strip() == "127.0.0.1:5432/shopdb"
    made = app_sh('psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -Atc "CREATE TABLE items (n int)" '
                  '-c "INSERT INTO items VALUES (42)" -c "SELECT n FROM items"')  # fmt: skip
    assert made.stdout.strip().splitlines()[-1] == "42"
    info = hop_json("pg:info", "shopdb", "-t", HOST)[HOST]
    assert info["links"] == [APP] and info["size"] > 0


def test_another_database_refuses_shopdbs_role(databases, host):
    hop("pg:link", "shopdb", APP, "-t", HOST)
    proc = app_sh('psql "${DATABASE_URL%/shopdb}/otherdb" -Atc "SELECT 1"', check=False)
    assert proc.returncode != 0
    assert "permission denied" in proc.stdout + proc.stderr
    # Nor can the app's unix user get in without a password over the socket.
    proc = app_sh("psql -w -h /var/run/postgresql -U otherdb otherdb -Atc 'SELECT 1'", check=False)
    assert proc.returncode != 0


def test_secrets_appear_only_when_asked(databases, host):
    hop("pg:link", "shopdb", APP, "-t", HOST)
    password = stored(host, "postgres", "shopdb")["password"]
    plain = hop("pg:info", "shopdb", "-t", HOST)
    assert password not in plain.stdout + plain.stderr and "pgapp" in plain.stdout
    assert password not in hop("pg:info", "shopdb", "-t", HOST, "--json").stdout
    shown = hop("pg:info", "shopdb", "-t", HOST, "--show-secrets")
    assert f"shopdb:{password}@127.0.0.1:5432/shopdb" in shown.stdout
    assert secrets_in_runs(password, stored(host, "postgres", "otherdb")["password"]) == []


def test_destroy_refuses_while_linked_then_removes_everything(databases, host):
    hop("pg:link", "shopdb", APP, "-t", HOST)
    refused = hop("pg:destroy", "shopdb", "--yes", "-t", HOST, check=False)
    assert refused.returncode != 0 and "pg:unlink" in refused.stdout + refused.stderr
    hop("pg:unlink", "shopdb", APP, "-t", HOST)
    assert "DATABASE_URL" not in hop_json("config", APP, "-t", HOST)
    password = stored(host, "postgres", "shopdb")["password"]
    hop("pg:destroy", "shopdb", "--yes", "-t", HOST)
    assert stored(host, "postgres", "shopdb") is None
    assert sql(host, "SELECT count(*) FROM pg_database WHERE datname='shopdb'") == "0"
    assert sql(host, "SELECT count(*) FROM pg_roles WHERE rolname='shopdb'") == "0"
    again = hop_json("pg:destroy", "shopdb", "--yes", "-t", HOST)
    assert again["changed"] == 0
    assert secrets_in_runs(password) == []
