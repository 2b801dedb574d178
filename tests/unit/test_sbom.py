"""hop sbom without hosts: the host-side component readers (Python venv, npm
lockfile, go.mod) on fixture releases, and the CycloneDX document built from
a component list (schema-valid, right purls, licences kept)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hop3.cli.sbom import host_path, sbom
from hop3.sbom import bom_json, build_bom, purl_of, sbom_document, validate

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "roles" / "hop3_sbom" / "library" / "hop3_sbom_components.py"


@pytest.fixture(scope="module")
def mod():
    spec = importlib.util.spec_from_file_location("hop3_sbom_components", MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


COMPONENTS = [
    {"type": "library", "ecosystem": "pypi", "name": "flask", "version": "3.1.3",
     "licenses": ["BSD-3-Clause"], "homepage": "https://palletsprojects.com/p/flask/"},
    {"type": "library", "ecosystem": "pypi", "name": "blinker", "version": "1.9.0",
     "licenses": ["MIT License"]},
    {"type": "library", "ecosystem": "pypi", "name": "dual", "version": "1.0",
     "licenses": ["MIT OR Apache-2.0"]},
    {"type": "library", "ecosystem": "npm", "namespace": "@types", "name": "node",
     "version": "20.1.0", "licenses": ["MIT"], "scope": "optional"},
    {"type": "library", "ecosystem": "npm", "name": "express", "version": "4.21.2",
     "licenses": ["MIT"]},
    {"type": "library", "ecosystem": "golang", "namespace": "github.com/gorilla", "name": "mux",
     "version": "v1.8.1", "properties": {"hop3:dependency": "indirect"}},
    {"type": "application", "ecosystem": "deb", "namespace": "debian", "name": "openssh-server",
     "version": "1:9.2p1-2+deb12u10", "qualifiers": {"arch": "amd64", "distro": "debian-12"},
     "licenses": ["BSD-2-clause", "Mazieres-BSD-style"]},
]  # fmt: skip


def test_document_validates_against_cyclonedx_schema():
    text = bom_json(build_bom({"app": "shop", "release": "v3", "components": COMPONENTS}, "h1"))
    assert validate(text) is None
    doc = json.loads(text)
    assert doc["bomFormat"] == "CycloneDX"
    assert doc["specVersion"] == "1.6"
    assert doc["serialNumber"].startswith("urn:uuid:")
    meta = doc["metadata"]
    assert meta["component"]["name"] == "shop"
    assert meta["component"]["version"] == "v3"
    assert meta["tools"]["components"][0]["name"] == "hop3"
    assert len(doc["components"]) == len(COMPONENTS)
    root = next(d for d in doc["dependencies"] if d["ref"] == meta["component"]["bom-ref"])
    assert len(root["dependsOn"]) == len(COMPONENTS)


def test_validator_rejects_a_broken_document():
    assert validate(json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.6", "x": 1}))


def test_purls_per_ecosystem():
    purls = {c["name"]: purl_of(c).to_string() for c in COMPONENTS}
    assert purls["flask"] == "pkg:pypi/flask@3.1.3"
    assert purls["node"] == "pkg:npm/%40types/node@20.1.0"
    assert purls["express"] == "pkg:npm/express@4.21.2"
    assert purls["mux"] == "pkg:golang/github.com/gorilla/mux@v1.8.1"
    assert purls["openssh-server"] == (
        "pkg:deb/debian/openssh-server@1:9.2p1-2%2Bdeb12u10?arch=amd64&distro=debian-12"
    )
    doc = sbom_document({"app": "shop", "release": "v3", "components": COMPONENTS})
    assert {c["name"]: c["purl"] for c in doc["components"]} == purls


def test_licences_kept():
    doc = sbom_document({"app": "shop", "release": "v3", "components": COMPONENTS})
    lic = {c["name"]: c.get("licenses") for c in doc["components"]}
    assert lic["flask"] == [{"license": {"id": "BSD-3-Clause"}}]
    assert lic["blinker"] == [{"license": {"id": "MIT"}}]  # classifier mapped to SPDX
    assert lic["dual"] == [{"expression": "MIT OR Apache-2.0"}]
    assert lic["openssh-server"] == [
        {"license": {"id": "BSD-2-Clause"}},
        {"license": {"name": "Mazieres-BSD-style"}},
    ]
    assert lic["mux"] is None


def test_platform_document():
    report = {"app": None, "hop3_version": "0.1.0", "components": [
        {"type": "operating-system", "ecosystem": "generic", "name": "debian",
         "version": "12.15"},
        {"type": "application", "ecosystem": "deb", "namespace": "debian", "name": "nginx",
         "version": "1.22.1-9+deb12u9", "qualifiers": {"arch": "amd64", "distro": "debian-12"}},
    ]}  # fmt: skip
    doc = sbom_document(report, "web-1")
    assert doc["metadata"]["component"]["type"] == "platform"
    assert doc["metadata"]["component"]["version"] == "0.1.0"
    types = {c["name"]: c["type"] for c in doc["components"]}
    assert types == {"debian": "operating-system", "nginx": "application"}


# --- host side: readers on fixture releases ---------------------------------


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_python_components(mod, tmp_path):
    site = tmp_path / ".venv" / "lib" / "python3.11" / "site-packages"
    write(site / "Flask-3.1.3.dist-info" / "METADATA",
          "Metadata-Version: 2.4\nName: Flask\nVersion: 3.1.3\n"
          "License-Expression: BSD-3-Clause\n"
          "Project-URL: Homepage, https://flask.example\n\nLong description\n")  # fmt: skip
    write(site / "typing_extensions-4.0.dist-info" / "METADATA",
          "Metadata-Version: 2.1\nName: typing_extensions\nVersion: 4.0\n"
          "License: This is the full text\n of a licence\nHome-page: https://t.example\n"
          "Classifier: License :: OSI Approved :: "
          "Python Software Foundation License\n")  # fmt: skip
    found = {c["name"]: c for c in mod.python_components(str(tmp_path))}
    assert found["flask"]["version"] == "3.1.3"
    assert found["flask"]["licenses"] == ["BSD-3-Clause"]
    assert found["flask"]["homepage"] == "https://flask.example"
    assert found["flask"]["purl"] == "pkg:pypi/flask@3.1.3"
    assert found["typing-extensions"]["licenses"] == ["Python Software Foundation License"]
    assert found["typing-extensions"]["homepage"] == "https://t.example"


def test_node_components(mod, tmp_path):
    lock = {
        "name": "app", "lockfileVersion": 3,
        "packages": {
            "": {"name": "app", "version": "1.0.0"},
            "node_modules/express": {"version": "4.21.2", "license": "MIT"},
            "node_modules/@types/node": {"version": "20.1.0", "license": "MIT", "dev": True},
            "node_modules/express/node_modules/debug": {"version": "2.6.9", "license": "MIT"},
            "node_modules/alias": {"name": "real", "version": "1.0.0"},
            "node_modules/linked": {"resolved": "../x", "link": True},
        },
    }  # fmt: skip
    write(tmp_path / "package-lock.json", json.dumps(lock))
    found = {(c["namespace"], c["name"]): c for c in mod.node_components(str(tmp_path))}
    assert set(found) == {(None, "express"), ("@types", "node"), (None, "debug"), (None, "real")}
    assert found[("@types", "node")]["purl"] == "pkg:npm/%40types/node@20.1.0"
    assert found[("@types", "node")]["scope"] == "optional"
    assert found[(None, "debug")]["version"] == "2.6.9"
    assert found[(None, "express")]["licenses"] == ["MIT"]


def test_go_components(mod, tmp_path):
    write(tmp_path / "go.mod", "module example.com/app\n\ngo 1.19\n\n"
          "require github.com/gorilla/mux v1.8.1\n\nrequire (\n"
          "\tgolang.org/x/text v0.14.0 // indirect\n\tgopkg.in/yaml.v3 v3.0.1\n)\n")  # fmt: skip
    found = {c["name"]: c for c in mod.go_components(str(tmp_path))}
    assert found["mux"]["purl"] == "pkg:golang/github.com/gorilla/mux@v1.8.1"
    assert found["mux"]["properties"] == {"hop3:dependency": "direct"}
    assert found["text"]["properties"] == {"hop3:dependency": "indirect"}
    assert found["yaml.v3"]["namespace"] == "gopkg.in"
    assert found["stdlib"]["version"] == "1.19"


def test_module_purls_match_controller(mod):
    item = mod.component(
        "application",
        "deb",
        "openssh-server",
        "1:9.2p1-2+deb12u10",
        namespace="debian",
        qualifiers={"arch": "amd64", "distro": "debian-12"},
    )
    assert item["purl"] == purl_of(item).to_string()  # fmt: skip


# --- CLI ------------------------------------------------------------------------


def test_host_path():
    assert host_path(Path("out/sbom.json"), "web-1") == Path("out/sbom.web-1.json")
    assert host_path(Path("sbom"), "web-1") == Path("sbom.web-1")


def test_cli_needs_app_or_platform():
    result = CliRunner().invoke(sbom, [])
    assert result.exit_code != 0
    assert "Name an app or pass --platform" in str(result.exception)
    result = CliRunner().invoke(sbom, ["Bad_Name"])
    assert "not a valid app name" in str(result.exception)


def test_cli_help_has_run_options():
    result = CliRunner().invoke(sbom, ["--help"])
    assert result.exit_code == 0
    for flag in ("-t, --target", "-i, --inventory", "--json", "-v, --verbose", "-o, --output",
                 "--platform"):  # fmt: skip
        assert flag in result.output
