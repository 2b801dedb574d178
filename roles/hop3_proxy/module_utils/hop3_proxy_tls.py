"""Host-side helpers of role hop3_proxy: files, packages and TLS certificates.

Runs on the managed host as root, inside the role's modules (hop3_proxy_host,
hop3_proxy_cert). Every command is run without a shell, with argument lists:
the app name and its domain names were validated before they got here, and
they are never parsed by a shell anyway.

Where certificates live:
- self-signed: <tls_dir>/<app>/cert.pem and key.pem, made with openssl;
- acme: certbot's lineage "hop3-<app>" (/etc/letsencrypt/live/hop3-<app>/),
  renewed by Debian's certbot.timer;
- every mode: <tls_dir>/<app>/tls.json, what the app asked for (mode, the
  names it serves, the names its certificate must cover, the files), read
  back by `hop certs`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from datetime import datetime, timezone

LETSENCRYPT = "/etc/letsencrypt"
RENEW_BEFORE_DAYS = 30  # a self-signed certificate this close to its end is made again
CERTBOT_TIMEOUT = 600


class Failed(Exception):
    """A step failed; ``output`` is the tail of the command's output."""

    def __init__(self, message, output=""):
        super().__init__(message)
        self.message = message
        self.output = tail(output)


def tail(text, lines=20):
    return "\n".join((text or "").rstrip().splitlines()[-lines:])


# --- files --------------------------------------------------------------------


def write_file(path, content, mode=0o644):
    """Write atomically (parents made 0755); True when the content or mode changed."""
    data = content.encode() if isinstance(content, str) else content
    try:
        with open(path, "rb") as handle:
            same = handle.read() == data
        if same and (os.stat(path).st_mode & 0o7777) == mode:
            return False
    except FileNotFoundError:
        pass
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".hop3-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return True


def remove(path):
    """Remove a file or a directory tree; True when something was there."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
        return True
    if os.path.lexists(path):
        os.unlink(path)
        return True
    return False


def ensure_dir(path, mode):
    """A directory owned by root with exactly ``mode``; True when it changed."""
    changed = False
    if not os.path.isdir(path):
        os.makedirs(path, mode=mode, exist_ok=True)
        changed = True
    if (os.stat(path).st_mode & 0o7777) != mode:
        os.chmod(path, mode)
        changed = True
    return changed


def read_json(path, default=None):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return default


# --- packages -----------------------------------------------------------------


def missing_packages(packages):
    """The packages of the list that dpkg does not report as installed (one dpkg call)."""
    if not packages:
        return []
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\n", *packages],
        capture_output=True,
        text=True,
    )
    installed = set()
    for line in proc.stdout.splitlines():
        name, _, status = line.partition(" ")
        if status.startswith("ii"):
            installed.add(name.split(":")[0])
    return [p for p in packages if p not in installed]


def install_packages(packages):
    """apt-get install; on failure update the lists once and try again."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    args = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    proc = subprocess.run(args, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True, env=env)
        proc = subprocess.run(args, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise Failed("Installing %s failed." % " ".join(packages), proc.stdout + proc.stderr)


# --- certificates -------------------------------------------------------------


def app_dir(tls_dir, app):
    return os.path.join(tls_dir, app)


def record_path(tls_dir, app):
    return os.path.join(app_dir(tls_dir, app), "tls.json")


def lineage(app):
    return "hop3-" + app


def acme_files(app):
    live = os.path.join(LETSENCRYPT, "live", lineage(app))
    return os.path.join(live, "fullchain.pem"), os.path.join(live, "privkey.pem")


def acme_renewal_conf(app):
    return os.path.join(LETSENCRYPT, "renewal", lineage(app) + ".conf")


def self_signed_files(tls_dir, app):
    directory = app_dir(tls_dir, app)
    return os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")


def cert_info(path):
    """What a PEM certificate says: names (SAN), issuer, subject, serial, end date.

    None when the file is missing or is not a certificate.
    """
    if not os.path.exists(path):
        return None
    proc = subprocess.run(
        ["openssl", "x509", "-in", path, "-noout", "-nameopt", "RFC2253", "-issuer",
         "-subject", "-serial", "-enddate", "-ext", "subjectAltName"],
        capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        return None
    info = {"names": [], "issuer": "", "subject": "", "serial": "", "not_after": ""}
    lines = proc.stdout.splitlines()
    for index, line in enumerate(lines):
        key, _, value = line.partition("=")
        if key in ("issuer", "subject", "serial"):
            info[key] = value.strip()
        elif key == "notAfter":
            stamp = datetime.strptime(value.strip(), "%b %d %H:%M:%S %Y %Z")
            info["not_after"] = stamp.replace(tzinfo=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        elif line.strip().startswith("X509v3 Subject Alternative Name") and index + 1 < len(lines):
            for item in lines[index + 1].split(","):
                kind, _, name = item.strip().partition(":")
                if kind in ("DNS", "IP Address"):
                    info["names"].append(name.strip().lower())
    return info


def seconds_left(info):
    if not info or not info.get("not_after"):
        return 0
    end = datetime.strptime(info["not_after"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return (end - datetime.now(timezone.utc)).total_seconds()


def covers(info, names):
    """Whether the certificate names every one of ``names`` (exactly, wildcards as written)."""
    return bool(info) and bool(names) and set(names) <= set(info["names"])


def make_self_signed(tls_dir, app, names, days):
    """A new key and self-signed certificate (ECDSA P-256) for ``names``."""
    cert, key = self_signed_files(tls_dir, app)
    ensure_dir(app_dir(tls_dir, app), 0o700)
    tmp_cert, tmp_key = cert + ".new", key + ".new"
    san = ",".join("DNS:" + name for name in names)
    proc = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", str(days), "-subj", "/O=Hop3 self-signed/CN=hop3-" + app,
         "-addext", "subjectAltName=" + san, "-addext", "basicConstraints=critical,CA:FALSE",
         "-addext", "extendedKeyUsage=serverAuth", "-keyout", tmp_key, "-out", tmp_cert],
        capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        for path in (tmp_cert, tmp_key):
            if os.path.exists(path):
                os.unlink(path)
        raise Failed("openssl could not make a self-signed certificate.", proc.stderr)
    os.chmod(tmp_key, 0o600)
    os.replace(tmp_key, key)
    os.replace(tmp_cert, cert)


def issue_acme(app, names, acme):
    """certbot certonly (HTTP-01 through nginx's webroot) for lineage hop3-<app>.

    The vhost must already answer /.well-known/acme-challenge/ from the webroot.
    """
    args = ["certbot", "certonly", "--non-interactive", "--agree-tos", "--webroot",
            "--webroot-path", acme["webroot"], "--cert-name", lineage(app),
            "--server", acme["directory"], "--keep-until-expiring", "--expand"]  # fmt: skip
    if acme.get("email"):
        args += ["--email", acme["email"], "--no-eff-email"]
    else:
        args += ["--register-unsafely-without-email"]
    for name in names:
        args += ["-d", name]
    env = dict(os.environ)
    if acme.get("ca_bundle"):
        env["REQUESTS_CA_BUNDLE"] = acme["ca_bundle"]
    try:
        proc = subprocess.run(
            args, capture_output=True, text=True, env=env, timeout=CERTBOT_TIMEOUT
        )
    except subprocess.TimeoutExpired as err:
        raise Failed("certbot did not finish within %d s." % CERTBOT_TIMEOUT, str(err)) from None
    if proc.returncode != 0:
        raise Failed(
            "certbot could not get a certificate for %s from %s."
            % (", ".join(names), acme["directory"]),
            proc.stdout + proc.stderr,
        )


def delete_acme(app):
    """Remove the app's certbot lineage (so certbot.timer stops renewing it)."""
    if not os.path.exists(acme_renewal_conf(app)):
        return False
    proc = subprocess.run(
        ["certbot", "delete", "--non-interactive", "--cert-name", lineage(app)],
        capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        raise Failed("certbot could not delete certificate %s." % lineage(app), proc.stderr)
    return True


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
