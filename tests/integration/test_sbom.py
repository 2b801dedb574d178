"""hop sbom on a real sandbox host: the Flask example's SBOM lists the
packages really installed in its release, the document validates against
the CycloneDX schema, and the platform SBOM lists nginx."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hop3.sbom import validate

from .conftest import hop

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HOST = "sandbox-1"
APP = "sbomapp"


@pytest.fixture(scope="module")
def sbomapp(setup_runs, sandbox_hosts, tmp_path_factory):
    app_dir = tmp_path_factory.mktemp("sbom") / "python-flask"
    shutil.copytree(EXAMPLES / "python-flask", app_dir)
    hop("deploy", str(app_dir), "--app", APP, "-t", HOST, "--json")
    yield APP
    hop("destroy", APP, "--yes", "-t", HOST, check=False)


def installed_version(package: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    return hop("run", APP, "-t", HOST, "--", "python", "-c", code).stdout.strip().splitlines()[-1]


def test_app_sbom_lists_installed_packages(sbomapp, tmp_path):
    out = tmp_path / "sbom.json"
    hop("sbom", sbomapp, "-t", HOST, "-o", str(out))
    text = out.read_text()
    assert validate(text) is None
    doc = json.loads(text)
    assert doc["bomFormat"] == "CycloneDX"
    assert doc["metadata"]["component"]["name"] == APP
    assert doc["metadata"]["component"]["version"].startswith("v")
    versions = {c["name"]: c.get("version") for c in doc["components"]}
    purls = {c["name"]: c.get("purl") for c in doc["components"]}
    for package in ("flask", "gunicorn"):
        version = installed_version(package)
        assert versions[package] == version
        assert purls[package] == f"pkg:pypi/{package}@{version}"
    assert purls["python3"].startswith("pkg:deb/debian/python3@")


def test_platform_sbom_lists_nginx(setup_runs):
    proc = hop("sbom", "--platform", "-t", HOST)
    doc = json.loads(proc.stdout)
    assert validate(proc.stdout) is None
    nginx = next(c for c in doc["components"] if c["name"] == "nginx")
    assert nginx["version"]
    assert nginx["purl"].startswith("pkg:deb/debian/nginx@")
    assert any(c["name"] == "hop3" for c in doc["components"])


def test_unknown_app_is_a_clear_error(setup_runs):
    proc = hop("sbom", "nosuchapp", "-t", HOST, check=False)
    assert proc.returncode == 1
    assert "no app named 'nosuchapp'" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
