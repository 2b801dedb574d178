"""[[addons]] type = "mariadb" on real sandbox hosts: the guestbook example
(Flask + PyMySQL) deployed on sandbox-1 gets a utf8mb4 database and user of
its own, stores rows over HTTP, redeploys without touching the role; the
role's second run changes nothing; port 3306 is closed to other hosts; a
backup (in a repository on sandbox-3) restored onto sandbox-2 serves the same
rows with the same credentials; destroying removes the database, its users and its record."""

from __future__ import annotations

import json
import shutil
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from .conftest import hop, hop_failure, hop_json, secrets_in_runs, ssh, stored

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "python-mariadb"
APP = DB = "guestbook"
HOST, TARGET, REPO = "sandbox-1", "sandbox-2", "sandbox-3"
ENTRIES = ["first entry", 'second: "quotes" & an ampersand', "third ✓ unicode"]


def deploy(app_dir: Path) -> dict:
    return json.loads(hop("deploy", str(app_dir), "-t", HOST, "--json").stdout)


def http(address: str, host: str, path: str, data: dict | None = None) -> dict:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(
        f"http://{address}{path}", data=body, headers={"Host": f"{APP}.{host}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def sql(address: str, query: str) -> str:
    """A query as MariaDB's root (unix socket) on the host; tab-separated rows."""
    return ssh(address, f'cd / && mariadb -NBe "{query}"').stdout.strip()


def roles_run(result: dict) -> set[str]:
    """The roles whose tasks ran a module in a run."""
    ran = set()
    for path in Path(result["run_dir"]).glob("artifacts/*/job_events/*.json"):
        event = json.loads(path.read_text())
        if event.get("event") == "runner_on_ok":
            ran.add(event["event_data"].get("role", ""))
    return ran


@pytest.fixture(scope="module")
def addresses(setup_runs, sandbox_hosts):
    return {h["name"]: h["address"] for h in sandbox_hosts}


@pytest.fixture(scope="module")
def deploys(addresses, tmp_path_factory):
    """Guestbook deployed, three entries written, deployed again unchanged."""
    app_dir = tmp_path_factory.mktemp("guestbook") / "python-mariadb"
    shutil.copytree(EXAMPLE, app_dir)
    first = deploy(app_dir)
    for text in ENTRIES:
        http(addresses[HOST], HOST, "/entries", {"text": text})
    second = deploy(app_dir)
    yield first, second
    for host in (HOST, TARGET):
        hop("destroy", APP, "--yes", "-t", host, check=False)
        hop("mariadb:destroy", DB, "-y", "-t", host, check=False)


def test_first_deploy_creates_a_database_and_user_of_its_own(deploys, addresses):
    first, _ = deploys
    assert first["ok"] and "hop3_mariadb" in roles_run(first)
    address = addresses[HOST]
    record = stored(address, "mariadb", DB)
    password = record["password"]
    assert record["url"] == f"mysql://{DB}:{password}@127.0.0.1:3306/{DB}"
    assert (record["host"], record["port"], record["database"], record["user"]) == (
        "127.0.0.1", 3306, DB, DB,
    )  # fmt: skip
    assert record["links"] == [APP] and len(password) >= 32
    mode = ssh(address, f"stat -c '%a %U' /srv/hop3/services/mariadb/{DB}.json").stdout.split()
    assert mode == ["600", "root"]
    charset = sql(address, f"SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA "
                           f"WHERE SCHEMA_NAME='{DB}'")  # fmt: skip
    assert charset == "utf8mb4"
    users = sql(address, f"SELECT Host FROM mysql.global_priv WHERE User='{DB}' ORDER BY Host")
    assert users.split() == ["127.0.0.1", "localhost"]
    # Its privileges are on its own database only.
    grants = sql(address, f"SHOW GRANTS FOR '{DB}'@'127.0.0.1'").splitlines()
    assert len(grants) == 2 and grants[0].startswith("GRANT USAGE ON *.* TO")
    assert grants[1].startswith(f"GRANT ALL PRIVILEGES ON `{DB}`.* TO")


def test_the_app_stores_and_lists_rows(deploys, addresses):
    rows = http(addresses[HOST], HOST, "/entries")["rows"]
    assert [body for _, body in rows] == ENTRIES
    script = (
        'echo "$MARIADB_HOST $MARIADB_PORT $MARIADB_DATABASE $MARIADB_USER ${DATABASE_URL%%:*}"'
    )
    env = hop("run", APP, "-t", HOST, "--", "sh", "-c", script).stdout.split()
    assert env == ["127.0.0.1", "3306", DB, DB, "mysql"]


def test_unchanged_redeploy_does_not_run_the_role(deploys):
    _, second = deploys
    assert second["ok"] and second["changed"] == 0
    assert "hop3_mariadb" not in roles_run(second)


def test_second_create_changes_nothing(deploys):
    result = hop_json("mariadb:create", DB, "-t", HOST)
    assert result["ok"] and result["changed"] == 0
    listed = hop_json("mariadb:list", "-t", HOST)[HOST]
    assert [(d["name"], d["links"]) for d in listed] == [(DB, [APP])]
    assert "password" not in json.dumps(listed)


def test_port_3306_is_closed_to_other_hosts(deploys, addresses):
    assert sql(addresses[HOST], "SELECT @@bind_address, @@port").split() == ["127.0.0.1", "3306"]
    probe = f"import socket; socket.create_connection(('{addresses[HOST]}', 3306), timeout=5)"
    refused = ssh(addresses[TARGET], "python3", "-c", f'"{probe}"', check=False)
    # Refused (nothing listens there) or dropped (the firewall): never connected.
    assert refused.returncode != 0
    assert "ConnectionRefused" in refused.stderr or "timed out" in refused.stderr


def test_bad_names_and_a_linked_database_are_refused(deploys, addresses):
    assert "reserved by MariaDB" in hop_failure("mariadb:create", "mysql", "-t", HOST)
    assert "not a valid database name" in hop_failure("mariadb:create", "Bad-Name", "-t", HOST)
    linked = hop_failure("mariadb:destroy", DB, "-y", "-t", HOST)
    assert "Apps still use guestbook" in linked and "mariadb:unlink" in linked
    assert stored(addresses[HOST], "mariadb", DB) is not None


@pytest.fixture
def repository(deploys):
    """sandbox-3, set up, to hold the repository (a host never stores its own
    backups remotely, and the restore goes to sandbox-2); removed afterwards."""
    hop("sandbox", "up", "-n", "3", "--image", "converged")
    try:
        hop("setup", "-t", REPO)
        yield REPO
    finally:
        hop("sandbox", "down", REPO, check=False)


def test_backup_restores_onto_another_host(repository, addresses, tmp_path):
    report = hop_json("backup", APP, "-t", HOST, "--repo", REPO)["reports"][HOST]
    assert report["mariadb"] == [DB] and report["databases"] == []
    key = tmp_path / "backup.key"
    key.write_text(hop_json("backup:key", "-t", HOST)[HOST] + "\n")
    hop("restore", APP, "-t", TARGET, "--from", HOST, "--repo", REPO, "--key-file", str(key))
    rows = http(addresses[TARGET], TARGET, "/entries")["rows"]
    assert [body for _, body in rows] == ENTRIES
    # Same credentials: the restored config keeps working.
    source, restored = (
        stored(addresses[HOST], "mariadb", DB),
        stored(addresses[TARGET], "mariadb", DB),
    )
    assert restored["password"] == source["password"] and restored["links"] == [APP]
    http(addresses[TARGET], TARGET, "/entries", {"text": "after the restore"})
    assert len(http(addresses[TARGET], TARGET, "/entries")["rows"]) == 4


def test_no_secret_reaches_the_run_records(deploys, addresses):
    passwords = [stored(addresses[h], "mariadb", DB)["password"] for h in (HOST,)]
    assert secrets_in_runs(*passwords) == []


def test_destroy_removes_the_database_and_its_users(deploys, addresses):
    for host in (HOST, TARGET):
        address = addresses[host]
        hop("destroy", APP, "--yes", "-t", host)
        assert stored(address, "mariadb", DB) is not None  # like postgres: data outlives the app
        hop("mariadb:destroy", DB, "-y", "-t", host)
        assert stored(address, "mariadb", DB) is None
        assert sql(address, f"SHOW DATABASES LIKE '{DB}'") == ""
        assert sql(address, f"SELECT count(*) FROM mysql.global_priv WHERE User='{DB}'") == "0"
        again = hop_json("mariadb:destroy", DB, "-y", "-t", host)
        assert again["ok"] and again["changed"] == 0
