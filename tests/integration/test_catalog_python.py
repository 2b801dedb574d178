"""Catalog apps that run on Python: install with one command on sandbox-1,
smoke-check through nginx with the WAF on, keep data across a reboot, back up
and restore onto sandbox-2, uninstall with `hop destroy`."""

from __future__ import annotations

import pytest

from .catalog_support import (
    APP_HOST,
    Client,
    Probe,
    addresses,
    backup_and_restore,
    boot_repo_host,
    install,
    remove,
    smoke,
)
from .conftest import hop, ssh

KINTO_USER = ("ada", "correct-horse-battery")


def kinto_write(c: Client):
    c.json("POST", "/v1/accounts", {"data": {"id": KINTO_USER[0], "password": KINTO_USER[1]}})
    c.json("POST", "/v1/buckets", {"data": {"id": "notes"}}, auth=KINTO_USER)
    c.json("POST", "/v1/buckets/notes/collections", {"data": {"id": "todo"}}, auth=KINTO_USER)
    record = {"data": {"title": "buy milk", "done": False}}
    c.json("POST", "/v1/buckets/notes/collections/todo/records", record, auth=KINTO_USER)
    return kinto_read(c)


def kinto_read(c: Client):
    data = c.json("GET", "/v1/buckets/notes/collections/todo/records", auth=KINTO_USER)["data"]
    return sorted((r["title"], r["done"]) for r in data)


PROBES = {
    "kinto": Probe(kinto_write, kinto_read),
}


@pytest.fixture(scope="module")
def installed(setup_runs, tmp_path_factory):
    """Every app of this module installed on sandbox-1, with data written."""
    boot_repo_host()
    apps = {}
    for app, probe in PROBES.items():
        client, took = install(app)
        apps[app] = {"client": client, "data": probe.write(client), "took": took}
    yield apps
    remove(list(PROBES))
    hop("sandbox", "down", "sandbox-3", check=False)


@pytest.mark.parametrize("app", list(PROBES))
def test_installed_app_passes_its_smoke_check_with_the_waf_on(installed, app):
    client = installed[app]["client"]
    smoke(client, app)
    vhost = ssh(client.address, f"cat /etc/nginx/sites-enabled/hop3-{app}.conf").stdout
    assert "modsecurity on;" in vhost and "SecRuleEngine On" in vhost
    assert PROBES[app].read(client) == installed[app]["data"]


@pytest.mark.parametrize("app", list(PROBES))
def test_backup_restores_onto_another_host(installed, app, tmp_path_factory):
    restored = backup_and_restore(app, tmp_path_factory.getbasetemp())
    smoke(restored, app)
    assert PROBES[app].read(restored) == installed[app]["data"]


def test_apps_survive_a_reboot(installed):
    hop("sandbox", "reboot", APP_HOST)
    address = addresses()[APP_HOST]
    for app, probe in PROBES.items():
        client = Client(address, f"{app}.{APP_HOST}")
        smoke(client, app)
        assert probe.read(client) == installed[app]["data"]
