"""Catalog entries: the schema, the app directory they render to, and lint
over every entry Hop3 ships."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from hop3.appspec import load_app
from hop3.catalog import (
    CatalogEntryError,
    entry_paths,
    find_entry,
    hop3_toml,
    lint_entry,
    parse_entry,
    render,
)
from hop3.cli.main import cli
from hop3.errors import HopError

MINIMAL = {
    "name": "notes",
    "title": "Notes",
    "description": "Take notes.",
    "upstream": "https://example.org/notes",
    "license": "MIT",
    "version": "1.2.0",
    "runtime": "python",
    "services": ["postgres"],
    "source": {"pypi": "notes-app", "extra": ["gunicorn==23.0.0"]},
    "versions": {
        "1.1.0": {"notes": "old", "extra": ["flask==2.3.3"]},
        "1.2.0": "schema 4",
    },
    "processes": {"web": "gunicorn -b 127.0.0.1:$PORT notes:app", "release": "notes migrate"},
    "env": {"MODE": "prod", "SECRET": {"generate": "hex", "length": 32}},
    "data": {"paths": ["uploads"]},
    "smoke": {"path": "/", "contains": "Notes"},
}


def entry(**changes):
    data = json.loads(json.dumps(MINIMAL))
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return parse_entry(data, Path("catalog/notes.toml"))


def problems(**changes) -> str:
    with pytest.raises(CatalogEntryError) as caught:
        entry(**changes)
    return "\n".join(str(p) for p in caught.value.problems)


def test_a_valid_entry_parses():
    e = entry()
    assert (e.name, e.version, e.runtime, e.services) == ("notes", "1.2.0", "python", ["postgres"])
    assert e.source.kind == "pypi" and e.source.package == "notes-app"
    assert e.version_extra == {"1.1.0": ["flask==2.3.3"]}
    assert e.versions == {"1.1.0": "old", "1.2.0": "schema 4"}
    assert e.pinnable


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": None}, "name: is required"),
        ({"name": "Notes!"}, "name:"),
        ({"smoke": None}, "[smoke] path: is required"),
        ({"runtime": "cobol"}, "runtime: must be one of python, node, php, ruby, generic"),
        ({"services": ["mongodb"]}, "'mongodb' is not one of postgres, mariadb, redis"),
        ({"source": {"pypi": "a", "npm": "b"}}, "must name exactly one of"),
        ({"source": {"pypi": "a", "extra": ["gunicorn"]}}, "must be a pinned requirement"),
        ({"source": {"debian": ["nginx"], "extra": ["x==1"]}}, "only for pypi and npm"),
        ({"version": "9.9"}, "9.9: the current version must be listed in [versions]"),
        ({"upstream": "ftp://x"}, "upstream: must be an http(s) URL"),
        ({"env": {"lower": "x"}}, "lower: is not a config variable name"),
        ({"data": {"paths": ["../etc"]}}, "[data] paths:"),
        ({"files": {"hop3.toml": "x"}}, "is written by the catalog itself"),
        ({"processes": {"release": "x"}}, "[processes] web: is required"),
        ({"colour": "blue"}, "colour: is not a known key"),
        ({"runtime": "node"}, "node cannot run a pypi package"),
    ],
)
def test_problems_name_the_key_and_the_fix(changes, message):
    assert message in problems(**changes)


def test_all_problems_are_reported_at_once():
    text = problems(name=None, runtime="cobol", upstream="nope")
    assert text.count("\n") >= 2


def test_render_writes_a_pinned_app_that_the_deploy_pipeline_accepts(tmp_path):
    folder = render(entry(), tmp_path / "notes", name="my-notes", version="1.1.0",
                    domains=["notes.example.org"])  # fmt: skip
    assert (folder / "requirements.txt").read_text().splitlines() == [
        "notes-app==1.1.0",
        "gunicorn==23.0.0",
        "flask==2.3.3",
    ]
    toml = tomllib.loads((folder / "hop3.toml").read_text())
    assert toml["metadata"]["catalog"] == "notes" and toml["metadata"]["version"] == "1.1.0"
    spec = load_app(folder, None)
    assert spec.name == "my-notes" and spec.catalog == "notes" and spec.version == "1.1.0"
    assert spec.domains == ["notes.example.org"]
    assert [a["type"] for a in spec.addons] == ["postgres"]
    assert spec.backup["paths"] == ["uploads"]
    # The data folders exist before the release command runs.
    assert spec.release == 'mkdir -p "$HOP3_SHARED_DIR"/uploads && notes migrate'
    assert spec.env == {"MODE": "prod"} and "SECRET" in spec.env_generate


def test_npm_entries_render_a_package_json(tmp_path):
    e = entry(runtime="node", source={"npm": "@scope/app", "extra": ["left-pad@1.3.0"]},
              processes={"web": "app --port $PORT"}, versions={"1.2.0": "x"})  # fmt: skip
    folder = render(e, tmp_path / "x", name="x", version="1.2.0")
    package = json.loads((folder / "package.json").read_text())
    assert package["dependencies"] == {"@scope/app": "1.2.0", "left-pad": "1.3.0"}
    assert load_app(folder, None).runtime == "node"


def test_debian_entries_install_packages_and_ruby_runs_generic():
    e = entry(runtime="ruby", source={"debian": ["redmine", "redmine-pgsql"]},
              versions={"1.2.0": "Debian's"})  # fmt: skip
    spec = hop3_toml(e, name="r", version="1.2.0", domains=[])
    assert spec["build"] == {"runtime": "generic", "packages": ["redmine", "redmine-pgsql"]}
    assert not e.pinnable


def test_every_shipped_entry_is_valid():
    paths = entry_paths()
    assert len(paths) >= 3
    for path in paths.values():
        lint_entry(path)


def test_unknown_entry_names_the_known_ones():
    with pytest.raises(HopError, match=r"no app named 'nope'.*kinto"):
        find_entry("nope")


def test_cli_list_show_and_lint(tmp_path, monkeypatch):
    runner = CliRunner()
    listed = json.loads(runner.invoke(cli, ["catalog", "list", "--json"]).output)
    assert {"kinto", "radicale", "datasette"} <= {row["name"] for row in listed}
    shown = runner.invoke(cli, ["catalog", "show", "kinto"]).output
    assert "Kinto (kinto)" in shown and "postgres" in shown
    assert runner.invoke(cli, ["catalog", "lint"]).exit_code == 0
    bad = tmp_path / "notes.toml"
    bad.write_text('name = "notes"\n')
    result = runner.invoke(cli, ["catalog", "lint", str(bad)])
    assert result.exit_code != 0 and "version: is required" in result.output


def test_an_extra_catalog_folder_comes_first(tmp_path, monkeypatch):
    data = dict(MINIMAL, name="kinto", versions={"1.2.0": "x"})
    from tomli_w import dumps

    (tmp_path / "kinto.toml").write_text(dumps(data))
    monkeypatch.setenv("HOP3_CATALOG_PATH", str(tmp_path))
    assert find_entry("kinto").title == "Notes"


def test_install_refuses_a_version_debian_does_not_ship():
    from hop3.cli.catalog_common import check_version

    e = entry(runtime="generic", source={"debian": ["dokuwiki"]}, versions={"1.2.0": "y"})
    with pytest.raises(HopError, match="ship one version"):
        check_version(e, "1.0")
    with pytest.raises(HopError, match="is not a version"):
        check_version(entry(), "1.0; rm -rf /")


def test_a_php_entry_needs_no_web_process():
    e = entry(runtime="php", source={"debian": ["dokuwiki"]}, versions={"1.2.0": "x"},
              processes={"release": "php setup.php"})  # fmt: skip
    assert e.processes == {"release": "php setup.php"}
    assert "[processes] web: is required" in problems(processes={"release": "x"})
