"""[[addons]] in hop3.toml on a real sandbox host: the first deploy creates a
PostgreSQL database and a Redis instance and links them, the app's processes
get their URLs and can use them, an unchanged redeploy changes nothing and
only checks that they exist, an instance of another app is refused, and no
secret reaches the run records."""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

import pytest

from .conftest import app_run, hop, secrets_in_runs, ssh, stored

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HOST = "sandbox-1"
APP = "addonapp"
ADDONS_TOML = """
[env]
REDIS_URL = "redis://set-in-hop3-toml"

[[addons]]
type = "postgres"

[[addons]]
type = "redis"
"""


def deploy(app_dir: Path, app: str = APP, check: bool = True) -> dict:
    proc = hop("deploy", str(app_dir), "--app", app, "-t", HOST, "--json", check=check)
    return json.loads(proc.stdout)


def sql(address: str, query: str) -> str:
    return ssh(address, f'cd / && runuser -u postgres -- psql -XAtc "{query}"').stdout.strip()


def app_sh(script: str) -> str:
    """Run a shell script in the app's release, as its user, with its config."""
    return app_run(APP, HOST, script).stdout.strip()


def roles_run(result: dict) -> dict[str, set[str]]:
    """Per role ("" for the playbook's own tasks), the tasks that ran a module in a deploy."""
    ran: dict[str, set[str]] = {}
    for path in Path(result["run_dir"]).glob("artifacts/*/job_events/*.json"):
        event = json.loads(path.read_text())
        if event.get("event") == "runner_on_ok":
            data = event["event_data"]
            ran.setdefault(data.get("role", ""), set()).add(data["task"])
    return ran


@pytest.fixture(scope="module")
def deploys(host, tmp_path_factory):
    """The Flask example with a postgres and a redis addon, deployed twice as addonapp."""
    app_dir = tmp_path_factory.mktemp("addonapp") / "python-flask"
    shutil.copytree(EXAMPLES / "python-flask", app_dir)
    with (app_dir / "hop3.toml").open("a") as toml:
        toml.write(ADDONS_TOML)
    first = deploy(app_dir)
    second = deploy(app_dir)
    yield first, second
    hop("destroy", APP, "--yes", "-t", HOST, check=False)
    hop("pg:destroy", "addonapp", "-y", "-t", HOST, check=False)
    hop("redis:destroy", "addonapp", "-y", "-t", HOST, check=False)


def test_first_deploy_creates_and_links_the_addons(deploys, host):
    first, _ = deploys
    assert first["ok"] and first["changed"] > 0
    database, redis = stored(host, "postgres", "addonapp"), stored(host, "redis", "addonapp")
    assert database["links"] == [APP] and redis["links"] == [APP]
    assert redis["key_prefix"] == "addonapp:"
    modes = ssh(host, "stat -c '%a %U' /srv/hop3/services/postgres/addonapp.json "
                      "/srv/hop3/services/redis/addonapp.json").stdout.split()  # fmt: skip
    assert modes == ["600", "root", "600", "root"]
    owner = sql(host, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname='addonapp'")
    assert owner == "addonapp"
    assert "user addonapp on" in ssh(host, "cat /etc/redis/users.acl").stdout


def test_the_app_gets_the_urls_and_can_use_them(deploys, host):
    shown = app_sh('echo "${DATABASE_URL#*@}" "${REDIS_URL#*@}" "$REDIS_KEY_PREFIX"')
    assert shown.split() == ["127.0.0.1:5432/addonapp", "127.0.0.1:6379/0", "addonapp:"]
    rows = app_sh('psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -Atc "CREATE TABLE t (n int)" '
                  '-c "INSERT INTO t VALUES (7)" -c "SELECT n FROM t"')  # fmt: skip
    assert rows.splitlines()[-1] == "7"
    app_sh('redis-cli --no-auth-warning -u "$REDIS_URL" SET "${REDIS_KEY_PREFIX}k" v')
    assert app_sh('redis-cli --no-auth-warning -u "$REDIS_URL" GET "${REDIS_KEY_PREFIX}k"') == "v"
    # The running web process got them too.
    request = urllib.request.Request(f"http://{host}/whoami", headers={"Host": f"{APP}.{HOST}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        pid = json.loads(response.read())["pid"]
    environ = ssh(host, f"tr '\\0' '\\n' < /proc/{pid}/environ | cut -d= -f1").stdout.split()
    assert {"DATABASE_URL", "REDIS_URL", "REDIS_KEY_PREFIX"} <= set(environ)


def test_unchanged_redeploy_runs_no_playbook(deploys):
    first, second = deploys
    assert {"hop3_postgresql", "hop3_redis"} <= set(roles_run(first))
    # The host reports this very deploy, untouched and running (hop3/deployed.py).
    assert second["ok"] and second["changed"] == 0
    assert second["reports"][HOST]["unchanged"] is True
    assert not roles_run(second)


def test_an_instance_linked_to_another_app_is_refused(deploys, tmp_path):
    # App "addon" with a redis addon named "app" would get instance addon_app,
    # which another app may own: here, one linked to nobody.
    hop("redis:create", "addon_app", "-t", HOST)
    app_dir = tmp_path / "python-flask"
    shutil.copytree(EXAMPLES / "python-flask", app_dir)
    with (app_dir / "hop3.toml").open("a") as toml:
        toml.write('\n[[addons]]\ntype = "redis"\nname = "app"\n')
    try:
        refused = deploy(app_dir, "addon", check=False)
        assert not refused["ok"]
        message = json.dumps(refused["failures"])
        assert "not linked to addon" in message and "redis:link addon_app addon" in message
    finally:
        hop("destroy", "addon", "--yes", "-t", HOST, check=False)
        hop("redis:destroy", "addon_app", "-y", "-t", HOST)


def test_no_secret_reaches_the_run_records(deploys, host):
    passwords = [stored(host, kind, "addonapp")["password"] for kind in ("postgres", "redis")]
    admin = ssh(host, "cat /etc/redis/hop3-admin.pass").stdout.strip()
    assert secrets_in_runs(*passwords, admin) == []


def test_destroy_removes_the_app_then_its_instances(deploys, host):
    hop("destroy", APP, "--yes", "-t", HOST)
    hop("pg:destroy", "addonapp", "-y", "-t", HOST)
    hop("redis:destroy", "addonapp", "-y", "-t", HOST)
    assert stored(host, "postgres", "addonapp") is None
    assert stored(host, "redis", "addonapp") is None
    assert sql(host, "SELECT count(*) FROM pg_database WHERE datname='addonapp'") == "0"
    assert "user addonapp " not in ssh(host, "cat /etc/redis/users.acl").stdout
