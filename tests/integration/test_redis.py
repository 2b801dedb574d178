"""Redis instances for apps on a real sandbox host: create (idempotent), link to
a deployed app, use it from the app, isolation between instances (key prefixes),
no access without a password, no secret in run records, destroy."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .conftest import app_run, hop, hop_json, secrets_in_runs, services_and_app, ssh, stored

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HOST = "sandbox-1"
APP = "redisapp"


def as_user(address: str, name: str, command: str) -> str:
    """Run a redis-cli command as instance NAME's user on the host (password via env)."""
    script = (
        'REDISCLI_AUTH=$(python3 -c "import json; print(json.load(open('
        f"'/srv/hop3/services/redis/{name}.json'))['password'])\") "
        f"redis-cli --no-auth-warning --user {name} {command}"
    )
    proc = ssh(address, script, check=False)
    return proc.stdout + proc.stderr


def app_sh(script: str, check: bool = True) -> subprocess.CompletedProcess:
    return app_run(APP, HOST, script, check)


@pytest.fixture(scope="module")
def instances(host, tmp_path_factory):
    """cache1 and cache2 on sandbox-1 and the Flask example as app redisapp."""
    yield from services_and_app("redis", ("cache1", "cache2"), APP, tmp_path_factory, HOST)


def test_create_is_idempotent_and_keeps_the_password_on_the_host(instances, host):
    first, second = instances
    assert first["ok"] and second["ok"]
    assert second["changed"] == 0
    record = stored(host, "redis", "cache1")
    assert len(record["password"]) >= 32
    mode = ssh(host, "stat -c '%a %U' /srv/hop3/services/redis/cache1.json").stdout.split()
    assert mode == ["600", "root"]
    admin = ssh(host, "stat -c '%a %U' /etc/redis/hop3-admin.pass").stdout.split()
    assert admin == ["600", "root"]
    assert record["password"] not in json.dumps(first) + json.dumps(second)
    listed = hop_json("redis:list", "-t", HOST)[HOST]
    assert {"cache1", "cache2"} <= {i["name"] for i in listed}


def test_listens_on_localhost_only_and_the_default_user_is_off(instances, host):
    listening = ssh(host, "ss -Hltn 'sport = :6379'").stdout
    addresses = {line.split()[3].rsplit(":", 1)[0] for line in listening.splitlines()}
    assert addresses <= {"127.0.0.1", "[::1]"}
    for command in ("PING", "GET cache1:k", "SET x 1", "ACL LIST"):
        out = ssh(host, f"redis-cli {command}", check=False)
        assert "NOAUTH" in out.stdout + out.stderr


def test_link_gives_the_app_a_working_redis(instances, host):
    hop("redis:link", "cache1", APP, "-t", HOST)
    again = hop_json("redis:link", "cache1", APP, "-t", HOST)
    assert again["changed"] == 0
    app_sh('redis-cli --no-auth-warning -u "$REDIS_URL" SET "${REDIS_KEY_PREFIX}k" v')
    got = app_sh('redis-cli --no-auth-warning -u "$REDIS_URL" GET "${REDIS_KEY_PREFIX}k"')
    assert got.stdout.strip() == "v"
    out = hop("run", APP, "-t", HOST, "--", "python", "-c",
              "import os; print(os.environ['REDIS_URL'].split('@')[1], "
              "os.environ['REDIS_KEY_PREFIX'])").stdout  # fmt: skip
    assert out.split() == ["127.0.0.1:6379/0", "cache1:"]
    info = hop_json("redis:info", "cache1", "-t", HOST)[HOST]
    assert info["links"] == [APP] and info["key_prefix"] == "cache1:"


def test_one_instance_cannot_touch_anothers_keys(instances, host):
    assert as_user(host, "cache2", "SET cache2:x mine").strip() == "OK"
    for command in ("GET cache2:x", "SET cache2:x stolen", "DEL cache2:x", "GET unprefixed"):
        assert "NOPERM" in as_user(host, "cache1", command), command
    for command in ("FLUSHALL", "KEYS '*'", "CONFIG GET requirepass", "ACL LIST"):
        assert "NOPERM" in as_user(host, "cache1", command), command
    assert as_user(host, "cache2", "GET cache2:x").strip() == "mine"


def test_secrets_appear_only_when_asked(instances, host):
    hop("redis:link", "cache1", APP, "-t", HOST)
    password = stored(host, "redis", "cache1")["password"]
    plain = hop("redis:info", "cache1", "-t", HOST)
    assert password not in plain.stdout + plain.stderr and APP in plain.stdout
    assert password not in hop("redis:info", "cache1", "-t", HOST, "--json").stdout
    shown = hop("redis:info", "cache1", "-t", HOST, "--show-secrets")
    assert f"cache1:{password}@127.0.0.1:6379/0" in shown.stdout
    admin = ssh(host, "cat /etc/redis/hop3-admin.pass").stdout.strip()
    assert secrets_in_runs(password, stored(host, "redis", "cache2")["password"], admin) == []


def test_destroy_refuses_while_linked_then_removes_everything(instances, host):
    hop("redis:link", "cache1", APP, "-t", HOST)
    refused = hop("redis:destroy", "cache1", "--yes", "-t", HOST, check=False)
    assert refused.returncode != 0 and "redis:unlink" in refused.stdout + refused.stderr
    hop("redis:unlink", "cache1", APP, "-t", HOST)
    config = hop_json("config", APP, "-t", HOST)
    assert "REDIS_URL" not in config and "REDIS_KEY_PREFIX" not in config
    password = stored(host, "redis", "cache1")["password"]
    admin = ("REDISCLI_AUTH=$(cat /etc/redis/hop3-admin.pass) redis-cli --no-auth-warning "
             "--user hop3admin")  # fmt: skip
    ssh(host, f"{admin} SET cache1:left 1 && {admin} SET cache2:kept 1")
    hop("redis:destroy", "cache1", "--yes", "-t", HOST)
    assert stored(host, "redis", "cache1") is None
    assert ssh(host, f"{admin} EXISTS cache1:left cache2:kept").stdout.strip() == "1"
    assert "user cache1 " not in ssh(host, "cat /etc/redis/users.acl").stdout
    refused_login = ssh(
        host, f"REDISCLI_AUTH={password} redis-cli --no-auth-warning --user cache1 PING",
        check=False,
    )  # fmt: skip
    assert "WRONGPASS" in refused_login.stdout + refused_login.stderr
    again = hop_json("redis:destroy", "cache1", "--yes", "-t", HOST)
    assert again["changed"] == 0
    assert secrets_in_runs(password) == []
