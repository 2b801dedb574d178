"""`hop catalog upgrade` on sandbox-1: Kinto 24.1.1 → 26.5.0 migrates its
PostgreSQL schema (25 → 26) and Synapse 1.150.0 → 1.163.2 its own (93 → 94),
both keeping their data; an upgrade whose release command fails after the
migration ran is rolled back, code and data (the schema is 25 again and the
records are the old ones)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import tomli_w

from .catalog_support import APP_HOST, Client, install
from .conftest import hop, hop_json, ssh
from .test_catalog_python import synapse_read, synapse_write

OLD, NEW = "24.1.1", "26.5.0"
USER = ("grace", "another-long-passphrase")
CATALOG = Path(__file__).resolve().parents[2] / "catalog"


def write_records(c: Client, titles: list[str]) -> None:
    c.json("POST", "/v1/accounts", {"data": {"id": USER[0], "password": USER[1]}})
    c.json("POST", "/v1/buckets", {"data": {"id": "shop"}}, auth=USER)
    c.json("POST", "/v1/buckets/shop/collections", {"data": {"id": "orders"}}, auth=USER)
    for title in titles:
        c.json("POST", "/v1/buckets/shop/collections/orders/records",
               {"data": {"title": title}}, auth=USER)  # fmt: skip


def records(c: Client) -> list[str]:
    data = c.json("GET", "/v1/buckets/shop/collections/orders/records", auth=USER)["data"]
    return sorted(r["title"] for r in data)


def served_version(c: Client) -> str:
    return c.json("GET", "/v1/")["project_version"]


def schema_version(c: Client, app: str) -> str:
    query = "select max(value::int) from metadata where name = 'storage_schema_version'"
    db = app.replace("-", "_")
    return ssh(c.address, f'runuser -u postgres -- psql -d {db} -Atc "{query}"').stdout.strip()


@pytest.fixture(scope="module")
def broken_catalog(tmp_path_factory):
    """A catalog folder whose Kinto entry fails after its migration ran."""
    entry = tomllib.loads((CATALOG / "kinto.toml").read_text())
    entry["processes"]["release"] += " && echo 'migrated; now failing on purpose' && exit 3"
    folder = tmp_path_factory.mktemp("broken-catalog")
    (folder / "kinto.toml").write_text(tomli_w.dumps(entry))
    return folder


def test_upgrade_migrates_the_schema_and_keeps_the_data(setup_runs):
    client, _ = install("kinto", APP_HOST, "--name", "kinto-up", "--version", OLD)
    write_records(client, ["order 1", "order 2"])
    assert (served_version(client), schema_version(client, "kinto-up")) == (OLD, "25")

    result = hop_json("catalog", "upgrade", "kinto-up", "-t", APP_HOST)
    (outcome,) = result["hosts"]
    assert outcome["result"] == "upgraded" and (outcome["from"], outcome["to"]) == (OLD, NEW)
    assert (served_version(client), schema_version(client, "kinto-up")) == (NEW, "26")
    assert records(client) == ["order 1", "order 2"]
    # Nothing left to do: a second upgrade changes nothing.
    again = hop_json("catalog", "upgrade", "kinto-up", "-t", APP_HOST)
    assert [h["result"] for h in again["hosts"]] == ["unchanged"]
    hop("destroy", "kinto-up", "--yes", "-t", APP_HOST)


def test_failed_upgrade_rolls_back_code_and_data(setup_runs, broken_catalog, monkeypatch):
    client, _ = install("kinto", APP_HOST, "--name", "kinto-fail", "--version", OLD)
    write_records(client, ["kept order"])

    monkeypatch.setenv("HOP3_CATALOG_PATH", str(broken_catalog))
    proc = hop("catalog", "upgrade", "kinto-fail", "-t", APP_HOST, check=False)
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode != 0
    assert "Traceback" not in out
    assert f"kinto-fail is back at {OLD} with its data from snapshot" in out
    assert "migrated; now failing on purpose" in out  # the reason, from the release command
    assert served_version(client) == OLD
    assert schema_version(client, "kinto-fail") == "25"  # the migration to 26 was undone
    assert records(client) == ["kept order"]
    # The audit log tells the story: backup, a failed upgrade, the restore.
    entries = hop_json("audit:log", "kinto-fail", "-t", APP_HOST)
    steps = [(e["step"], e["result"]) for e in entries if "upgrade" in e["command"]]
    assert steps == [("backup", "ok"), ("catalog:upgrade", "failed"), ("restore", "ok")], steps
    hop("destroy", "kinto-fail", "--yes", "-t", APP_HOST)


def test_synapse_upgrade_migrates_its_schema_and_keeps_the_messages(setup_runs):
    # Its own name: `hop destroy` keeps databases, and test_catalog_python's
    # synapse left one at schema 94.
    client, _ = install("synapse", APP_HOST, "--name", "synapse-up", "--version", "1.150.0")
    messages = synapse_write(client)
    query = "select version from schema_version"
    schema = f'runuser -u postgres -- psql -d synapse_up -Atc "{query}"'
    assert ssh(client.address, schema).stdout.strip() == "93"

    result = hop_json("catalog", "upgrade", "synapse-up", "-t", APP_HOST)
    assert [h["result"] for h in result["hosts"]] == ["upgraded"]
    assert ssh(client.address, schema).stdout.strip() == "94"
    assert client.json("GET", "/_matrix/federation/v1/version")["server"]["version"] == "1.163.2"
    assert synapse_read(client) == messages
    hop("destroy", "synapse-up", "--yes", "-t", APP_HOST)
