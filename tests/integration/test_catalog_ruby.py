"""Catalog apps that run on Ruby (Redmine from Debian's packages): install with
one command on sandbox-1, smoke-check through nginx with the WAF on, keep data
across a reboot, back up and restore onto sandbox-2, uninstall with `hop destroy`;
each installed instance has its own database, files, secrets and user."""

from __future__ import annotations

import functools
import json

from .catalog_support import (
    APP_HOST,
    CatalogTests,
    Client,
    Probe,
    install,
    smoke,
)
from .conftest import hop, hop_json, ssh

PROJECT = {"name": "Hop3 probe", "identifier": "hop3-probe"}
ISSUE = {"subject": "Buy milk", "description": "Two litres, <b>fresh</b> & cold"}
SECOND = "redmine-two"  # a second Redmine instance on the same host


@functools.cache
def admin(app: str) -> tuple[str, str]:
    """The admin's login: the password generated at install (a restore keeps it)."""
    password = hop("config:get", app, "REDMINE_ADMIN_PASSWORD", "-t", APP_HOST).stdout.strip()
    return "admin", password


ATTACHMENT = b"shopping list: milk, bread\n"


def redmine_write(c: Client):
    c.json("POST", "/projects.json", {"project": PROJECT}, auth=admin("redmine"))
    # An attachment goes to files/ (backed up): uploaded as a raw body, which
    # the entry's [waf] content-types lets through.
    raw = {"Content-Type": "application/octet-stream"}
    status, text = c.request("POST", "/uploads.json?filename=list.txt", ATTACHMENT, raw,
                             admin("redmine"))  # fmt: skip
    assert status == 201, text
    token = json.loads(text)["upload"]["token"]
    upload = {"token": token, "filename": "list.txt", "content_type": "text/plain"}
    issue = {"project_id": PROJECT["identifier"], **ISSUE, "uploads": [upload]}
    c.json("POST", "/issues.json", {"issue": issue}, auth=admin("redmine"))
    return redmine_read(c)


def redmine_read(c: Client):
    path = f"/issues.json?project_id={PROJECT['identifier']}"
    issues = c.json("GET", path, auth=admin("redmine"))["issues"]
    found = []
    for i in issues:
        detail = c.json("GET", f"/issues/{i['id']}.json?include=attachments", auth=admin("redmine"))
        files = []
        for attachment in detail["issue"]["attachments"]:
            url = attachment["content_url"].split("://", 1)[1].split("/", 1)[1]
            status, body = c.request("GET", "/" + url, auth=admin("redmine"))
            assert status == 200
            files.append((attachment["filename"], body))
        found.append((i["project"]["name"], i["subject"], i["description"], files))
    return sorted(found)


PROBES = {
    "redmine": Probe(redmine_write, redmine_read),
}


class TestRubyApps(CatalogTests):
    probes = PROBES

    def test_reinstalling_the_same_version_changes_nothing(self, installed):
        result = hop_json("catalog", "install", "redmine", "-t", APP_HOST)
        assert result["ok"] and result["changed"] == 0, result

    def test_the_default_admin_password_is_replaced(self, installed):
        client = installed["redmine"]["client"]
        status, _ = client.request("GET", "/users/current.json", auth=("admin", "admin"))
        assert status == 401
        me = client.json("GET", "/users/current.json", auth=admin("redmine"))["user"]
        assert me["login"] == "admin" and me["admin"] is True

    def test_debian_sets_up_no_default_instance(self, installed):
        """dbconfig-no-thanks: the package creates no database or role of its own,
        and Redmine runs from the app's release as the app's user on 127.0.0.1."""
        address = installed["redmine"]["client"].address
        databases = ssh(
            address, "runuser -u postgres -- psql -Atc 'select datname from pg_database'"
        )
        roles = ssh(address, "runuser -u postgres -- psql -Atc 'select rolname from pg_roles'")
        assert not [n for n in databases.stdout.split() + roles.stdout.split() if "default" in n]
        assert (
            ssh(address, "test -e /etc/redmine/default/database.yml", check=False).returncode != 0
        )
        listening = ssh(address, "ss -Hltnp | grep puma").stdout
        assert listening and all(
            line.split()[3].startswith("127.0.0.1:") for line in listening.splitlines()
        )
        owner = ssh(address, "ps -o user= -C puma | sort -u").stdout.split()
        assert owner == ["redmine"]

    def test_a_second_instance_has_its_own_database_files_and_secrets(self, installed):
        first = installed["redmine"]["client"]
        second, _ = install("redmine", APP_HOST, "--name", SECOND)
        try:
            smoke(second, "redmine")
            status, _ = second.request("GET", f"/projects/{PROJECT['identifier']}.json",
                                       auth=admin(SECOND))  # fmt: skip
            assert status == 404  # the first instance's project is not in this database
            second.json("POST", "/projects.json", {"project": PROJECT}, auth=admin(SECOND))
            assert redmine_read(first) == installed["redmine"]["data"]
            config = {app: hop_json("config", app, "-t", APP_HOST) for app in ("redmine", SECOND)}
            for key in ("DATABASE_URL", "SECRET_KEY_BASE", "REDMINE_ADMIN_PASSWORD"):
                assert config["redmine"][key] != config[SECOND][key], key
            files = ssh(
                first.address, f"readlink /srv/hop3/apps/{SECOND}/current/instances/hop3/files"
            )
            assert files.stdout.strip() == f"/srv/hop3/apps/{SECOND}/shared/files"
            owners = ssh(first.address, "ps -o user= -C puma | sort -u").stdout.split()
            assert owners == sorted(["redmine", SECOND])
        finally:
            hop("destroy", SECOND, "--yes", "-t", APP_HOST)
