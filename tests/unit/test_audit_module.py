"""The checks of `hop audit` (roles/hop3_audit/library/hop3_security_audit.py)
on files made for the test: SSH settings, vhosts (TLS, WAF), certificates and
modes of secret files."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

MODULE = Path(__file__).resolve().parents[2] / "roles/hop3_audit/library/hop3_security_audit.py"


@pytest.fixture
def checks():
    spec = importlib.util.spec_from_file_location("hop3_security_audit", MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("settings", "password", "root"),
    [
        ({"passwordauthentication": "no", "kbdinteractiveauthentication": "no",
          "permitrootlogin": "no"}, "pass", "pass"),
        ({"passwordauthentication": "no", "kbdinteractiveauthentication": "no",
          "permitrootlogin": "prohibit-password"}, "pass", "warn"),
        ({"passwordauthentication": "yes", "kbdinteractiveauthentication": "no",
          "permitrootlogin": "yes"}, "fail", "fail"),
    ],
)  # fmt: skip
def test_ssh_policies(checks, settings, password, root):
    found = {c["id"]: c for c in checks.ssh_checks(settings)}
    assert found["ssh_password"]["status"] == password
    assert found["ssh_root"]["status"] == root
    assert all(c["fix"] for c in found.values() if c["status"] != "pass")


def test_vhost_without_tls_or_waf_warns(checks, tmp_path):
    (tmp_path / "hop3-shop.conf").write_text("server {\n  listen 80;\n  modsecurity off;\n}\n")
    found = {c["id"]: c for c in checks.vhost_checks(str(tmp_path / "hop3-*.conf"), 30, 7)}
    assert found["tls:shop"]["status"] == "warn"
    assert found["waf:shop"]["status"] == "warn" and found["waf:shop"]["found"] == "no WAF"


def test_waf_in_detect_mode_warns_and_block_passes(checks, tmp_path):
    rules = tmp_path / "waf.conf"
    rules.write_text("SecRuleEngine DetectionOnly\n")
    vhost = f"server {{\n  modsecurity on;\n  modsecurity_rules_file {rules};\n}}\n"
    (tmp_path / "hop3-shop.conf").write_text(vhost)
    pattern = str(tmp_path / "hop3-*.conf")
    assert {c["id"]: c for c in checks.vhost_checks(pattern, 30, 7)}["waf:shop"]["status"] == "warn"
    rules.write_text("SecRuleEngine On\n")
    assert {c["id"]: c for c in checks.vhost_checks(pattern, 30, 7)}["waf:shop"]["status"] == "pass"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
@pytest.mark.parametrize(("days", "status"), [(90, "pass"), (20, "warn"), (3, "fail")])
def test_certificate_expiry(checks, tmp_path, days, status):
    cert = tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=x",
                    "-days", str(days), "-keyout", str(tmp_path / "key.pem"), "-out", str(cert)],
                   check=True, capture_output=True)  # fmt: skip
    assert checks.cert_check("shop", str(cert), 30, 7)["status"] == status


def test_loose_secret_files_fail(checks, tmp_path, monkeypatch):
    env = tmp_path / "env"
    env.write_text("{}")
    env.chmod(0o600)
    monkeypatch.setattr(checks, "SECRET_GLOBS", [str(tmp_path / "*")])
    assert checks.secret_modes()["status"] == "pass"
    env.chmod(0o644)
    result = checks.secret_modes()
    assert result["status"] == "fail" and f"{env} (644)" in result["found"]
