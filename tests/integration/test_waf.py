"""WAF (ModSecurity v3 + OWASP CRS) and rate limits on a real sandbox host.

The python-flask example is deployed with the defaults (WAF on, block,
paranoia 1): typical SQL injection and XSS probes get 403, while ordinary
forms, JSON bodies and file uploads reach the app. Then the same app in
detect mode (probes pass and land in the audit log), with the WAF off, and
with a rate limit (a burst beyond it gets 429, requests under it never do).
Every app deployed here is destroyed at the end.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .conftest import hop, ssh

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HOST = "sandbox-1"
APP = "waf"
AUDIT_LOG = "/var/log/hop3/waf/audit.log"
SQLI = "/?id=1%27%20OR%20%271%27=%271"  # /?id=1' OR '1'='1
XSS = "/?q=%3Cscript%3Ealert(1)%3C/script%3E"  # /?q=<script>alert(1)</script>


def request(address, path="/", data=None, headers=None, app=APP, timeout=10):
    """(status, body) of one request to APP through nginx, without DNS."""
    headers = {"Host": f"{app}.{HOST}", **(headers or {})}
    req = urllib.request.Request(f"http://{address}{path}", data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = "hop3" + uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
        parts.append(f"{head}{value}\r\n".encode())
    for name, (filename, content) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        parts.append(head.encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def deploy(app_dir: Path, app: str = APP) -> dict:
    return json.loads(hop("deploy", str(app_dir), "--app", app, "-t", HOST, "--json").stdout)


def flask_with(tmp_path: Path, toml: str = "") -> Path:
    target = tmp_path / "python-flask"
    shutil.copytree(EXAMPLES / "python-flask", target)
    if toml:
        with (target / "hop3.toml").open("a") as handle:
            handle.write("\n" + toml)
    return target


@pytest.fixture(scope="module")
def waf_app(host, tmp_path_factory):
    """python-flask as app 'waf' with no [waf] section: the defaults apply."""
    deploy(flask_with(tmp_path_factory.mktemp("waf")))
    yield host
    hop("destroy", APP, "--yes", "-t", HOST, check=False)


def audit_entries(host: str, marker: str) -> str:
    """The audit log lines around each request that carries ``marker``."""
    return ssh(host, f"grep -A40 -F {marker} {AUDIT_LOG} || true").stdout


def test_waf_is_on_by_default_and_blocks_attacks(waf_app):
    host = waf_app
    assert request(host) == (200, "Hello from python-flask v1.0.0")
    assert request(host, SQLI)[0] == 403
    assert request(host, XSS)[0] == 403
    assert request(host, "/health") == (200, "ok")
    vhost = ssh(host, f"cat /etc/nginx/sites-available/hop3-{APP}.conf").stdout
    assert "modsecurity on;" in vhost and "SecRuleEngine On" in vhost


def test_attacks_from_another_host_are_blocked(waf_app, sandbox_hosts):
    """The probes an attacker would send, from sandbox-2 with curl."""
    attacker = sandbox_hosts[1]["address"]
    urls = " ".join(f"'http://{waf_app}{path}'" for path in ("/", SQLI, XSS, "/health"))
    script = (
        f"for url in {urls}; do "
        f"curl -s -o /dev/null -w '%{{http_code}} ' -H 'Host: {APP}.{HOST}' \"$url\"; done"
    )
    assert ssh(attacker, script).stdout.split() == ["200", "403", "403", "200"]


def test_blocked_requests_are_in_the_audit_log(waf_app):
    marker = uuid.uuid4().hex
    assert request(waf_app, f"{SQLI}&probe={marker}")[0] == 403
    entries = audit_entries(waf_app, marker)
    assert "942100" in entries  # CRS: SQL injection detected via libinjection
    assert "Access denied with code 403" in entries
    # Request headers and bodies may hold secrets: the directory is root only.
    assert ssh(waf_app, f"stat -c %U:%a $(dirname {AUDIT_LOG})").stdout.strip() == "root:700"


def test_ordinary_forms_json_and_uploads_pass(waf_app):
    host = waf_app
    form = b"name=Jane+Doe&email=jane%40example.com&comment=Hello%2C+what+a+nice+day%21"
    status, body = request(
        host, "/echo", form, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 200, body
    assert json.loads(body)["form"] == {
        "name": "Jane Doe",
        "email": "jane@example.com",
        "comment": "Hello, what a nice day!",
    }
    document = {"name": "Jane", "tags": ["a", "b"], "count": 3, "nested": {"ok": True}}
    status, body = request(
        host, "/echo", json.dumps(document).encode(), {"Content-Type": "application/json"}
    )
    assert status == 200, body
    assert json.loads(body)["json"] == document
    # A JSON body larger than ModSecurity's default 128 KB limit without files
    # (with fewer than 1000 fields: hop3_proxy_waf_arguments_limit).
    text = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 12
    big = {"items": [{"text": f"{i} {text}"} for i in range(400)]}
    status, body = request(
        host, "/echo", json.dumps(big).encode(), {"Content-Type": "application/json"}
    )
    assert status == 200, body[:300]
    assert json.loads(body)["json"] == big
    photo = bytes(range(256)) * 1200  # 300 KB of binary data
    data, content_type = multipart({"title": "My photo"}, {"file": ("photo.jpg", photo)})
    status, body = request(host, "/echo", data, {"Content-Type": content_type})
    assert status == 200, body
    assert json.loads(body) == {
        "form": {"title": "My photo"},
        "json": None,
        "files": {"file": len(photo)},
    }


def test_detect_mode_lets_attacks_through_and_logs_them(waf_app, tmp_path):
    deploy(flask_with(tmp_path, '[waf]\nmode = "detect"\nparanoia = 2\n'))
    marker = uuid.uuid4().hex
    assert request(waf_app, f"{SQLI}&probe={marker}")[0] == 200
    assert request(waf_app, f"{XSS}&probe={marker}")[0] == 200
    entries = audit_entries(waf_app, marker)
    assert "942100" in entries and "941100" in entries  # SQLi and XSS (libinjection)
    assert "Access denied" not in entries
    vhost = ssh(waf_app, f"cat /etc/nginx/sites-available/hop3-{APP}.conf").stdout
    assert "SecRuleEngine DetectionOnly" in vhost and "tx.paranoia_level=2" in vhost


def test_waf_off_lets_everything_through(waf_app, tmp_path):
    deploy(flask_with(tmp_path, "[waf]\nenabled = false\n"))
    marker = uuid.uuid4().hex
    assert request(waf_app, f"{SQLI}&probe={marker}")[0] == 200
    assert request(waf_app, XSS)[0] == 200
    assert audit_entries(waf_app, marker) == ""
    assert (
        "modsecurity" not in ssh(waf_app, f"cat /etc/nginx/sites-available/hop3-{APP}.conf").stdout
    )


def test_rate_limit_answers_429_beyond_the_burst(waf_app, tmp_path):
    result = deploy(flask_with(tmp_path, '[proxy]\nrate-limit = "2r/s"\nrate-limit-burst = 4\n'))
    assert result["status"] == "successful"
    # A burst of 30 at once: at most 1 + 4 pass (with a little slack for
    # requests that arrive after the bucket refilled), the rest get 429.
    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(lambda _: request(waf_app, "/health")[0], range(30)))
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(429) >= 20, statuses
    assert 1 <= statuses.count(200) <= 8, statuses
    time.sleep(2.5)  # the bucket empties at 2 requests a second
    # Under the limit: one request every 0.6 s never gets 429.
    under = []
    for _ in range(6):
        under.append(request(waf_app, "/health")[0])
        time.sleep(0.6)
    assert under == [200] * 6
    again = deploy(
        flask_with(tmp_path / "again", '[proxy]\nrate-limit = "2r/s"\nrate-limit-burst = 4\n')
    )
    assert again["changed"] == 0  # the same app again: nothing to do, no nginx reload


def test_other_apps_are_not_limited(waf_app):
    # The limit belongs to app 'waf' (its own zone): the default server and
    # other names are not counted against it.
    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(lambda _: request(waf_app, "/", app="nothing-here")[0], range(20)))
    assert statuses == [404] * 20
