"""What the catalog tests share: install an app, talk to it through nginx,
back it up and restore it onto another host.

Apps are installed on sandbox-1 and backed up to a repository on sandbox-3
(booted for the catalog modules, no `hop setup` needed for a repository
host); restores go onto sandbox-2. Each app's ``Probe`` writes data the way a
user would and reads it back, so a restore is judged by what the app serves.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from .conftest import hop, hop_json, ssh

APP_HOST, RESTORE_HOST, REPO_HOST = "sandbox-1", "sandbox-2", "sandbox-3"


@dataclass
class Probe:
    """How a test uses one catalog app: ``write`` stores data and returns what
    ``read`` must give back afterwards (on this host, or a restored one)."""

    write: Callable[[Client], object]
    read: Callable[[Client], object]


class Client:
    """HTTP to one app on one host, through nginx (and the WAF), by Host header."""

    def __init__(self, address: str, domain: str):
        self.address, self.domain = address, domain

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None, auth: tuple[str, str] | None = None):  # fmt: skip
        headers = {"Host": self.domain, "User-Agent": "hop3-tests", **(headers or {})}
        if auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        request = urllib.request.Request(
            f"http://{self.address}{path}", data=body, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")

    def json(self, method: str, path: str, data=None, auth=None, expect=(200, 201)):
        body = json.dumps(data).encode() if data is not None else None
        status, text = self.request(method, path, body, {"Content-Type": "application/json"}, auth)
        assert status in expect, f"{method} {path}: {status} {text[:300]}"
        return json.loads(text) if text else None

    def text(self, path: str, auth=None, expect=(200,)) -> str:
        status, text = self.request("GET", path, auth=auth)
        assert status in expect, f"GET {path}: {status} {text[:300]}"
        return text


def addresses() -> dict[str, str]:
    return {h["name"]: h["address"] for h in hop_json("sandbox", "status")}


def install(app: str, host: str = APP_HOST, *args: str) -> tuple[Client, float]:
    """`hop catalog install` (timed); a client of the installed app."""
    started = time.monotonic()
    result = hop_json("catalog", "install", app, "-t", host, *args)
    took = time.monotonic() - started
    assert result["ok"], result
    report = result["reports"][host]
    print(f"catalog install {app} on {host}: {took:.1f} s")
    return Client(report["address"], report["domains"][0]), took


def backup_and_restore(app: str, key_dir: Path) -> Client:
    """Back APP up from APP_HOST to REPO_HOST and restore it onto RESTORE_HOST
    with the platform's key, as an admin recovering from a lost host would."""
    hop("backup", app, "-t", APP_HOST, "--repo", REPO_HOST)
    key_file = key_dir / "hop3-backup.key"
    if not key_file.exists():
        key_file.write_text(hop_json("backup:key", "-t", APP_HOST)[APP_HOST] + "\n")
    hop("restore", app, "-t", RESTORE_HOST, "--from", APP_HOST, "--repo", REPO_HOST,
        "--key-file", str(key_file))  # fmt: skip
    return Client(addresses()[RESTORE_HOST], f"{app}.{RESTORE_HOST}")


def boot_repo_host():
    """Boot REPO_HOST for the module (a repository host needs no setup)."""
    hop("sandbox", "up", "-n", "3")


def remove(apps: list[str]) -> None:
    """Uninstall: `hop destroy` on both hosts; the apps are gone from `hop apps`."""
    for host in (APP_HOST, RESTORE_HOST):
        for app in apps:
            hop("destroy", app, "--yes", "-t", host, check=False)
        names = {a["app"] for a in hop_json("apps", "-t", host)[host]}
        assert not names & set(apps), names


def smoke(client: Client, app: str) -> None:
    entry = hop_json("catalog", "show", app)
    text = client.text(entry["smoke"]["path"])
    assert entry["smoke"]["contains"] in text


def wait_until_served(client: Client, app: str, timeout: float = 180) -> None:
    """After a boot, systemd starts the app's units: wait for its smoke check."""
    entry = hop_json("catalog", "show", app)
    deadline = time.monotonic() + timeout
    while True:
        status, text = client.request("GET", entry["smoke"]["path"])
        if status == 200 and entry["smoke"]["contains"] in text:
            return
        assert time.monotonic() < deadline, f"{app} not served after the reboot: {status}"
        time.sleep(2)


class CatalogTests:
    """The tests every catalog app gets; a test module subclasses this as
    ``Test...`` with ``probes = {app: Probe(...)}``. All the apps are installed
    on APP_HOST once (class fixture ``installed``), with data written."""

    probes: ClassVar[dict[str, Probe]] = {}

    @staticmethod
    def pytest_generate_tests(metafunc):
        if "app" in metafunc.fixturenames:
            metafunc.parametrize("app", list(metafunc.cls.probes))

    @pytest.fixture(scope="class")
    def installed(self, setup_runs):
        boot_repo_host()
        apps = {}
        for app, probe in self.probes.items():
            client, took = install(app)
            apps[app] = {"client": client, "data": probe.write(client), "took": took}
        yield apps
        # The repository host stays for the next class (a new one would have
        # new SSH host keys); the session's teardown removes every host.
        remove(list(self.probes))

    def test_installed_app_passes_its_smoke_check_with_the_waf_on(self, installed, app):
        client = installed[app]["client"]
        smoke(client, app)
        vhost = ssh(client.address, f"cat /etc/nginx/sites-enabled/hop3-{app}.conf").stdout
        assert "modsecurity on;" in vhost and "SecRuleEngine On" in vhost
        assert self.probes[app].read(client) == installed[app]["data"]

    def test_backup_restores_onto_another_host(self, installed, app, tmp_path_factory):
        restored = backup_and_restore(app, tmp_path_factory.getbasetemp())
        smoke(restored, app)
        assert self.probes[app].read(restored) == installed[app]["data"]

    def test_apps_survive_a_reboot(self, installed):
        hop("sandbox", "reboot", APP_HOST)
        address = addresses()[APP_HOST]
        for app, probe in self.probes.items():
            client = Client(address, f"{app}.{APP_HOST}")
            wait_until_served(client, app)
            assert probe.read(client) == installed[app]["data"]
