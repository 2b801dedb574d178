"""HTTPS on real sandbox hosts: [tls] self-signed and acme, `hop certs`.

ACME runs against pebble (Debian package `pebble`), a small ACME server,
started on sandbox-2 with its own test CA for its HTTPS API. It resolves the
app's domain through /etc/hosts on sandbox-2 to sandbox-1, and checks the
HTTP-01 challenge on sandbox-1's port 80, answered by nginx from certbot's
webroot. sandbox-1 trusts pebble's test CA through hop3_proxy_acme_ca_bundle,
set with the directory URL in host_vars next to the test inventory. Every app
deployed here is destroyed, pebble stopped and the host_vars removed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .conftest import hop, hop_json, ssh

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HOST = "sandbox-1"
SELF_APP, SELF_DOMAIN = "tls-self", "self.example.test"
ACME_APP, ACME_DOMAIN = "tls-acme", "acme.example.test"
CA_ON_HOST = "/etc/hop3/acme-test-ca.pem"

# Runs on sandbox-2 as root: $1 = its address, $2 = sandbox-1's address, $3 = the domain.
PEBBLE = r"""
set -e
export DEBIAN_FRONTEND=noninteractive
dpkg -s pebble >/dev/null 2>&1 || apt-get install -y --no-install-recommends pebble >/dev/null 2>&1
mkdir -p /etc/pebble && cd /etc/pebble
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=Hop3 test CA for pebble" -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=pebble" \
  -keyout key.pem -out req.pem 2>/dev/null
printf 'subjectAltName=IP:%s\n' "$1" > ext.cnf
openssl x509 -req -in req.pem -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
  -extfile ext.cnf -out cert.pem 2>/dev/null
cat > config.json <<JSON
{"pebble": {"listenAddress": "0.0.0.0:14000", "managementListenAddress": "0.0.0.0:15000",
 "certificate": "/etc/pebble/cert.pem", "privateKey": "/etc/pebble/key.pem",
 "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "", "externalAccountBindingRequired": false}}
JSON
sed -i "/ $3\$/d" /etc/hosts && echo "$2 $3" >> /etc/hosts
systemctl stop hop3-test-pebble 2>/dev/null || true
systemctl reset-failed hop3-test-pebble 2>/dev/null || true
systemd-run --unit=hop3-test-pebble -E PEBBLE_VA_NOSLEEP=1 -E PEBBLE_WFE_NONCEREJECT=0 \
  -E PEBBLE_AUTHZREUSE=0 /usr/bin/pebble -config /etc/pebble/config.json >/dev/null
for i in $(seq 100); do
  curl -sf --cacert ca.pem "https://$1:14000/dir" >/dev/null && exit 0
  sleep 0.2
done
echo "pebble did not start" >&2; journalctl -u hop3-test-pebble --no-pager | tail -20 >&2; exit 1
"""


def ssh_script(address: str, script: str, *args: str) -> subprocess.CompletedProcess:
    key = Path(os.environ["HOP3_STATE_DIR"]) / "sandbox" / "id_ed25519"
    proc = subprocess.run(
        ["ssh", "-i", str(key), "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
         f"root@{address}", "bash", "-s", *args],
        input=script, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(f"script on {address} exited {proc.returncode}: {proc.stdout}\n{proc.stderr}")
    return proc


def served_certificate(address: str, name: str) -> dict:
    """Subject, issuer and serial of the certificate nginx serves for SNI ``name``
    (openssl s_client from the controller)."""
    proc = subprocess.run(
        ["openssl", "s_client", "-connect", f"{address}:443", "-servername", name],
        input="", capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", proc.stdout, re.S)
    assert pem, proc.stdout + proc.stderr
    info = subprocess.run(
        ["openssl", "x509", "-noout", "-nameopt", "RFC2253", "-subject", "-issuer", "-serial",
         "-ext", "subjectAltName"],
        input=pem.group(0), capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    fields = dict(line.split("=", 1) for line in info.splitlines() if re.match(r"^\w+=", line))
    fields["names"] = re.findall(r"DNS:([^,\s]+)", info)
    return fields


def https_get(address: str, name: str, path: str = "/") -> tuple[int, dict, str]:
    """GET https://name/path at ``address`` (SNI and Host = name), certificate not verified."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    request = f"GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n"
    with (
        socket.create_connection((address, 443), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        tls.sendall(request.encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def http_get(address: str, name: str, path: str = "/") -> tuple[int, str | None]:
    """(status, Location) of a plain HTTP request, redirects not followed."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(f"http://{address}{path}", headers={"Host": name})
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.headers.get("Location")
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Location")


def flask_with(tmp_path: Path, toml: str) -> Path:
    target = tmp_path / "python-flask"
    shutil.copytree(EXAMPLES / "python-flask", target)
    with (target / "hop3.toml").open("a") as handle:
        handle.write("\n" + toml)
    return target


def deploy(app_dir: Path, app: str) -> dict:
    return json.loads(hop("deploy", str(app_dir), "--app", app, "-t", HOST, "--json").stdout)


@pytest.fixture(scope="module")
def hosts(setup_runs, sandbox_hosts):
    return {h["name"]: h["address"] for h in sandbox_hosts}


# --- self-signed ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed(hosts, tmp_path_factory):
    app_dir = flask_with(
        tmp_path_factory.mktemp("self"),
        f'[domains]\nlist = ["{SELF_DOMAIN}"]\n\n[tls]\nmode = "self-signed"\nhsts = true\n',
    )
    result = deploy(app_dir, SELF_APP)
    yield hosts[HOST], app_dir, result
    hop("destroy", SELF_APP, "--yes", "-t", HOST, check=False)


def test_self_signed_certificate_covers_every_name(self_signed):
    address, _, result = self_signed
    assert result["status"] == "successful"
    cert = served_certificate(address, SELF_DOMAIN)
    assert sorted(cert["names"]) == sorted([f"{SELF_APP}.{HOST}", SELF_DOMAIN])
    assert cert["issuer"] == cert["subject"] == f"CN=hop3-{SELF_APP},O=Hop3 self-signed"


def test_https_serves_the_app_with_hsts_and_http_redirects(self_signed):
    address, _, _ = self_signed
    status, headers, body = https_get(address, SELF_DOMAIN)
    assert (status, body) == (200, "Hello from python-flask v1.0.0")
    assert headers["strict-transport-security"] == "max-age=63072000"
    assert http_get(address, SELF_DOMAIN, "/a?b=c") == (301, f"https://{SELF_DOMAIN}/a?b=c")
    assert http_get(address, f"{SELF_APP}.{HOST}")[0] == 301
    # The app sees HTTPS through its proxy headers.
    status, _, body = https_get(address, SELF_DOMAIN, "/health")
    assert (status, body) == (200, "ok")


def test_only_modern_tls_versions(self_signed):
    address, _, _ = self_signed
    for flag, ok in (("-tls1_1", False), ("-tls1_2", True), ("-tls1_3", True)):
        proc = subprocess.run(
            ["openssl", "s_client", "-connect", f"{address}:443", "-servername", SELF_DOMAIN, flag],
            input="", capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert ("BEGIN CERTIFICATE" in proc.stdout) == ok, (flag, proc.stdout[-500:])


def test_unknown_names_get_no_certificate(self_signed):
    """nginx's default server on 443 refuses the handshake: no app's certificate
    is shown for a name that app does not serve."""
    address, _, _ = self_signed
    proc = subprocess.run(
        ["openssl", "s_client", "-connect", f"{address}:443", "-servername", "other.example.test"],
        input="", capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert "BEGIN CERTIFICATE" not in proc.stdout
    assert "unrecognized name" in proc.stderr or "alert" in proc.stderr.lower()


def test_hop_certs_shows_the_self_signed_certificate(self_signed):
    report = hop_json("certs", SELF_APP, "-t", HOST)[HOST]
    assert report["mode"] == "self-signed"
    assert [d["name"] for d in report["domains"]] == [f"{SELF_APP}.{HOST}", SELF_DOMAIN]
    for domain in report["domains"]:
        assert domain["covered"] and domain["mode"] == "self-signed"
        assert "Hop3 self-signed" in domain["issuer"] and domain["not_after"]
    assert 390 <= report["certificate"]["days_left"] <= 397
    table = hop("certs", SELF_APP, "-t", HOST).stdout
    assert SELF_DOMAIN in table and "self-signed" in table


def test_self_signed_redeploy_changes_nothing(self_signed, tmp_path):
    address, app_dir, _ = self_signed
    before = served_certificate(address, SELF_DOMAIN)["serial"]
    assert deploy(app_dir, SELF_APP)["changed"] == 0
    assert served_certificate(address, SELF_DOMAIN)["serial"] == before


def test_hop_certs_of_a_missing_app_fails_clearly(hosts):
    proc = hop("certs", "no-such-app", "-t", HOST, check=False)
    assert proc.returncode != 0 and "There is no app named 'no-such-app'" in proc.stderr


# --- ACME with pebble --------------------------------------------------------------------


@pytest.fixture(scope="module")
def pebble(hosts):
    """pebble on sandbox-2; sandbox-1 trusts its CA and uses it as its ACME server."""
    acme_host, app_host = hosts["sandbox-2"], hosts[HOST]
    ssh_script(acme_host, PEBBLE, acme_host, app_host, ACME_DOMAIN)
    # The host firewall (hop setup) only lets SSH, HTTP and HTTPS in: open
    # pebble's API to sandbox-1 (a no-op where no firewall runs).
    opening = ("14000/tcp", "--from", f"{app_host}/32", "-t", "sandbox-2")
    hop("firewall:allow", *opening, check=False)
    ca = ssh(acme_host, "cat /etc/pebble/ca.pem").stdout
    ssh(app_host, f"mkdir -p /etc/hop3 && printf '%s' '{ca}' > {CA_ON_HOST}")
    host_vars = Path(os.environ["HOP3_CONFIG_DIR"]) / "host_vars"
    host_vars.mkdir(exist_ok=True)
    vars_file = host_vars / f"{HOST}.yml"
    vars_file.write_text(
        f"hop3_proxy_acme_directory: https://{acme_host}:14000/dir\n"
        f"hop3_proxy_acme_ca_bundle: {CA_ON_HOST}\n"
        "hop3_proxy_acme_email: ops@example.com\n"
    )
    intermediate = ssh(acme_host, "curl -sfk https://127.0.0.1:15000/intermediates/0").stdout
    subject = subprocess.run(
        ["openssl", "x509", "-noout", "-nameopt", "RFC2253", "-subject"],
        input=intermediate, capture_output=True, text=True, check=True,
    ).stdout.strip().removeprefix("subject=")  # fmt: skip
    yield {"app_host": app_host, "acme_host": acme_host, "intermediate": subject}
    hop("destroy", ACME_APP, "--yes", "-t", HOST, check=False)
    vars_file.unlink(missing_ok=True)
    hop("firewall:deny", *opening, check=False)
    ssh(acme_host, "systemctl stop hop3-test-pebble; sed -i '/ acme.example.test$/d' /etc/hosts",
        check=False)  # fmt: skip
    ssh(app_host, f"rm -f {CA_ON_HOST}", check=False)


@pytest.fixture(scope="module")
def acme_app(pebble, tmp_path_factory):
    app_dir = flask_with(
        tmp_path_factory.mktemp("acme"),
        f'[domains]\nlist = ["{ACME_DOMAIN}"]\n\n[tls]\nmode = "acme"\n',
    )
    result = deploy(app_dir, ACME_APP)
    return {**pebble, "dir": app_dir, "result": result}


def test_acme_certificate_is_issued_by_pebble_and_served(acme_app):
    assert acme_app["result"]["status"] == "successful"
    address = acme_app["app_host"]
    cert = served_certificate(address, ACME_DOMAIN)
    assert cert["subject"] == f"CN={ACME_DOMAIN}" and cert["names"] == [ACME_DOMAIN]
    assert cert["issuer"] == acme_app["intermediate"]
    assert cert["issuer"].startswith("CN=Pebble Intermediate CA")
    status, _, body = https_get(address, ACME_DOMAIN)
    assert (status, body) == (200, "Hello from python-flask v1.0.0")
    assert http_get(address, ACME_DOMAIN) == (301, f"https://{ACME_DOMAIN}/")
    # The challenge path stays on plain HTTP (renewals), answered from the webroot.
    ssh(address, "mkdir -p /var/lib/hop3/acme/.well-known/acme-challenge && "
                 "echo token-ok > /var/lib/hop3/acme/.well-known/acme-challenge/probe")  # fmt: skip
    try:
        status, _ = http_get(address, ACME_DOMAIN, "/.well-known/acme-challenge/probe")
        assert status == 200
    finally:
        ssh(address, "rm -f /var/lib/hop3/acme/.well-known/acme-challenge/probe")


def test_another_host_trusting_pebble_verifies_the_certificate(acme_app):
    """sandbox-2 trusts pebble's root (its management API serves it) and
    fetches the app over HTTPS with full verification, as a browser would."""
    client, address = acme_app["acme_host"], acme_app["app_host"]
    script = (
        "curl -sfk https://127.0.0.1:15000/roots/0 > /tmp/pebble-root.pem && "
        f"curl -sS --cacert /tmp/pebble-root.pem --resolve {ACME_DOMAIN}:443:{address} "
        f"-D - https://{ACME_DOMAIN}/"
    )
    out = ssh(client, script).stdout
    assert out.startswith("HTTP/1.1 200") or out.startswith("HTTP/2 200"), out
    assert out.endswith("Hello from python-flask v1.0.0")
    # The same request without pebble's root is refused by curl.
    unverified = ssh(client, f"curl -sS --resolve {ACME_DOMAIN}:443:{address} "
                             f"https://{ACME_DOMAIN}/", check=False)  # fmt: skip
    assert unverified.returncode == 60, unverified.stderr


def test_hop_certs_shows_the_acme_certificate(acme_app):
    report = hop_json("certs", ACME_APP, "-t", HOST)[HOST]
    assert report["mode"] == "acme" and report["names"] == [ACME_DOMAIN]
    domains = {d["name"]: d for d in report["domains"]}
    assert domains[ACME_DOMAIN]["covered"]
    assert domains[ACME_DOMAIN]["issuer"] == acme_app["intermediate"]
    # <app>.<host> is not in public DNS: an ACME certificate does not cover it.
    assert domains[f"{ACME_APP}.{HOST}"]["covered"] is False


def test_acme_redeploy_changes_nothing(acme_app):
    assert deploy(acme_app["dir"], ACME_APP)["changed"] == 0


def test_renewal_is_served_after_the_deploy_hook(acme_app):
    address = acme_app["app_host"]
    assert ssh(address, "systemctl is-enabled certbot.timer").stdout.strip() == "enabled"
    environment = ssh(address, "systemctl show -p Environment certbot.service").stdout
    assert f"REQUESTS_CA_BUNDLE={CA_ON_HOST}" in environment
    before = served_certificate(address, ACME_DOMAIN)["serial"]
    ssh(address, f"REQUESTS_CA_BUNDLE={CA_ON_HOST} certbot renew --force-renewal "
                 f"--cert-name hop3-{ACME_APP} --no-random-sleep-on-renew")  # fmt: skip
    # The deploy hook reloads nginx; its new workers take over within moments.
    deadline = time.monotonic() + 15
    after = served_certificate(address, ACME_DOMAIN)
    while after["serial"] == before and time.monotonic() < deadline:
        time.sleep(0.5)
        after = served_certificate(address, ACME_DOMAIN)
    assert after["serial"] != before
    assert after["issuer"] == acme_app["intermediate"]


def test_destroy_removes_the_certificates(acme_app, self_signed):
    address = acme_app["app_host"]
    hop("destroy", ACME_APP, "--yes", "-t", HOST)
    left = ssh(address, "ls /etc/letsencrypt/renewal /etc/letsencrypt/live /etc/hop3/tls").stdout
    assert f"hop3-{ACME_APP}" not in left and ACME_APP not in left
    # Other apps keep theirs.
    assert SELF_APP in left
