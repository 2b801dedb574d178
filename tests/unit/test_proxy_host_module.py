"""Modules hop3_proxy_host and hop3_proxy_cert of role hop3_proxy, run here
through a real `ansible-playbook` on the local machine, inside tmp_path only:
shared files, directories, self-signed certificates (made, kept, made again
when the names change, removed when TLS is turned off), the tls.json record
and the report `hop certs` prints. ACME (certbot) is tested on sandbox hosts
(tests/integration/test_tls.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from . import localplay

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "hop3_proxy"

pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "openssl"], capture_output=True).returncode != 0,
    reason="openssl is not installed",
)


def run_tasks(tmp_path: Path, tasks: list[dict]) -> dict:
    return localplay.run_tasks(tmp_path, tasks, "hop3_proxy")


def host(tmp_path: Path, register: str, mode: str, names: list[str], **extra) -> dict:
    served = extra.pop("served", names)
    return {
        "name": register,
        "hop3_proxy_host": {
            "tls": {"app": "shop", "mode": mode, "names": names, "served": served,
                    "dir": str(tmp_path / "tls"), "days": 60},
            **extra,
        },
        "register": register,
    }  # fmt: skip


def test_shared_files_and_directories(tmp_path):
    shared = str(tmp_path / "etc" / "waf" / "modsecurity.conf")
    gone = tmp_path / "old.conf"
    gone.write_text("x")
    files = [
        {"path": shared, "content": "SecRuleEngine DetectionOnly\n"},
        {"path": str(tmp_path / "hook"), "content": "#!/bin/sh\n", "mode": "0755"},
        {"path": str(gone), "content": None},
    ]
    directories = [{"path": str(tmp_path / "audit"), "mode": "0700"}]
    task = {"hop3_proxy_host": {"files": files, "directories": directories}}
    results = run_tasks(
        tmp_path, [{"name": "first", **task, "register": "first"},
                   {"name": "second", **task, "register": "second"}],
    )  # fmt: skip
    assert results["first"]["changed"] and not results["second"]["changed"]
    assert sorted(results["first"]["files_changed"]) == sorted(
        [shared, str(tmp_path / "hook"), str(gone), str(tmp_path / "audit")]
    )
    assert Path(shared).read_text() == "SecRuleEngine DetectionOnly\n"
    assert oct((tmp_path / "hook").stat().st_mode & 0o777) == "0o755"
    assert oct((tmp_path / "audit").stat().st_mode & 0o777) == "0o700"
    assert not gone.exists()
    assert results["first"]["installed"] == []


def test_self_signed_certificate_lifecycle(tmp_path):
    names = ["shop.sandbox-1", "shop.example.com", "*.shop.example.com"]
    results = run_tasks(
        tmp_path,
        [
            host(tmp_path, "made", "self-signed", names),
            host(tmp_path, "kept", "self-signed", names),
            host(tmp_path, "renamed", "self-signed", names[:2]),
            {"name": "key", "ansible.builtin.stat": {"path": str(tmp_path / "tls/shop/key.pem")},
             "register": "key"},
            {"name": "dir", "ansible.builtin.stat": {"path": str(tmp_path / "tls/shop")},
             "register": "dir"},
            {"name": "info", "hop3_proxy_cert": {"app": "shop", "dir": str(tmp_path / "tls")},
             "register": "info"},
            host(tmp_path, "off", "off", [], served=names[:2]),
            {"name": "info_off", "hop3_proxy_cert": {"app": "shop", "dir": str(tmp_path / "tls")},
             "register": "info_off"},
            {"name": "absent", "hop3_proxy_cert": {"app": "shop", "dir": str(tmp_path / "tls"),
                                                   "state": "absent"}, "register": "absent"},
            {"name": "info_gone",
             "hop3_proxy_cert": {"app": "shop", "dir": str(tmp_path / "tls")},
             "register": "info_gone"},
        ],
    )  # fmt: skip
    made, kept, renamed = results["made"], results["kept"], results["renamed"]
    assert made["changed"] and made["tls"]["changed"] and made["tls"]["present"]
    assert made["tls"]["covers"] and sorted(made["tls"]["info"]["names"]) == sorted(names)
    assert made["tls"]["cert"] == str(tmp_path / "tls" / "shop" / "cert.pem")
    assert results["key"]["stat"]["mode"] == "0600" and results["dir"]["stat"]["mode"] == "0700"
    # Nothing changed: the same certificate, no change reported.
    assert not kept["changed"] and not kept["tls"]["changed"], json.dumps(kept)
    assert kept["tls"]["info"]["serial"] == made["tls"]["info"]["serial"]
    # Other names: a new certificate for exactly those.
    assert renamed["tls"]["changed"]
    assert renamed["tls"]["info"]["serial"] != made["tls"]["info"]["serial"]
    assert sorted(renamed["tls"]["info"]["names"]) == sorted(names[:2])
    # What `hop certs` shows.
    report = results["info"]["report"]
    assert report["mode"] == "self-signed" and report["exists"]
    assert [d["name"] for d in report["domains"]] == names[:2]
    assert all(d["covered"] and "Hop3 self-signed" in d["issuer"] for d in report["domains"])
    assert report["certificate"]["days_left"] in (59, 60)
    # TLS off: the certificate goes, the record says "off".
    assert results["off"]["changed"] and not (tmp_path / "tls" / "shop" / "cert.pem").exists()
    assert not (tmp_path / "tls" / "shop" / "key.pem").exists()
    off = results["info_off"]["report"]
    assert off["mode"] == "off" and [d["mode"] for d in off["domains"]] == ["off", "off"]
    assert results["absent"]["changed"] and not (tmp_path / "tls" / "shop").exists()
    assert results["info_gone"]["report"]["exists"] is False


def test_acme_is_only_checked_without_issue(tmp_path):
    """Without a certificate and without `issue`, nothing is asked of certbot."""
    results = run_tasks(tmp_path, [host(tmp_path, "check", "acme", ["shop.example.com"])])
    tls = results["check"]["tls"]
    assert tls["present"] is False and tls["covers"] is False and tls["changed"] is False
    assert tls["cert"] == "/etc/letsencrypt/live/hop3-shop/fullchain.pem"


# --- hop3_proxy_vhost: write, nginx -t, reload or put everything back ---------------------

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def nginx_prefix(tmp_path: Path) -> dict:
    """A minimal nginx.conf under tmp_path that includes tmp_path/sites-enabled/*."""
    for sub in ("sites-available", "sites-enabled", "log"):
        (tmp_path / sub).mkdir(exist_ok=True)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/log/error.log;\n"
        "events { worker_connections 16; }\n"
        f"http {{\n    access_log off;\n    include {tmp_path}/sites-enabled/*;\n}}\n"
    )
    (tmp_path / "sites-enabled" / "other.conf").write_text(
        "server {\n    listen 127.0.0.1:18082;\n    server_name taken.example;\n"
        "    return 204;\n}\n"
    )
    return {
        "check_command": [NGINX, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"),
                          "-e", str(tmp_path / "log" / "error.log")],
        # Counts the reloads; the real one (systemctl) is tested on sandbox hosts.
        "reload_command": ["sh", "-c", f"echo reload >> {tmp_path}/reloads"],
    }  # fmt: skip


def vhost_task(tmp_path: Path, register: str, body: str, **extra) -> dict:
    return {
        "name": register,
        "hop3_proxy_vhost": {
            "app": "shop",
            "files": [{"path": str(tmp_path / "sites-available" / "shop.conf"), "content": body}],
            "link": {"src": str(tmp_path / "sites-available" / "shop.conf"),
                     "dest": str(tmp_path / "sites-enabled" / "shop.conf")},
            "names": ["shop.example", "taken.example"] if "taken" in register else ["shop.example"],
            **nginx_prefix(tmp_path),
            **extra,
        },
        "register": register,
        "ignore_errors": True,
    }  # fmt: skip


GOOD = "server {\n    listen 127.0.0.1:18082;\n    server_name %s;\n    return 200;\n}\n"


@pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed")
def test_vhost_is_written_checked_reloaded_once_then_left_alone(tmp_path):
    results = run_tasks(tmp_path, [
        vhost_task(tmp_path, "first", GOOD % "shop.example"),
        vhost_task(tmp_path, "again", GOOD % "shop.example"),
        vhost_task(tmp_path, "forced", GOOD % "shop.example", force=True),
    ])  # fmt: skip
    assert results["first"]["changed"] and results["first"]["reloaded"]
    assert sorted(results["first"]["files_changed"]) == sorted(
        [
            str(tmp_path / "sites-available" / "shop.conf"),
            str(tmp_path / "sites-enabled" / "shop.conf"),
        ]
    )
    assert not results["again"]["changed"] and not results["again"]["reloaded"]
    assert results["forced"]["reloaded"]
    assert (tmp_path / "reloads").read_text() == "reload\nreload\n"
    link = tmp_path / "sites-enabled" / "shop.conf"
    assert os.readlink(link) == str(tmp_path / "sites-available" / "shop.conf")


@pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed")
def test_refused_vhost_is_put_back_and_nothing_reloads(tmp_path):
    results = run_tasks(tmp_path, [
        vhost_task(tmp_path, "first", GOOD % "shop.example"),
        vhost_task(tmp_path, "broken", "server {\n    listen 127.0.0.1:18082;\n    bogus on;\n}\n"),
    ])  # fmt: skip
    assert results["broken"]["failed"]
    message = results["broken"]["msg"]
    assert message.startswith("The new nginx configuration of app shop was refused and not loaded")
    assert 'nginx: [emerg] unknown directive "bogus"' in message
    assert (tmp_path / "sites-available" / "shop.conf").read_text() == GOOD % "shop.example"
    assert (tmp_path / "reloads").read_text() == "reload\n"


@pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed")
def test_a_name_served_elsewhere_is_refused_and_a_new_app_leaves_nothing(tmp_path):
    results = run_tasks(tmp_path, [vhost_task(tmp_path, "taken", GOOD % "taken.example")])
    assert results["taken"]["failed"]
    assert (
        "Already served by another nginx server on this host: taken.example"
        in (results["taken"]["msg"])
    )
    assert not (tmp_path / "sites-available" / "shop.conf").exists()
    assert not os.path.lexists(tmp_path / "sites-enabled" / "shop.conf")
    assert not (tmp_path / "reloads").exists()
