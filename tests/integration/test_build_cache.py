"""The build cache of Python apps on a real sandbox host (roles/hop3_app/README.md,
"Build cache"): a code-only redeploy links the new release to the venv of the
one before and runs no uv; a new requirements.txt gets a new venv; venvs no
listed release uses are pruned; a venv left without its marker (a killed
build) is rebuilt, never used."""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

import pytest

from .conftest import hop, ssh

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HOST = "sandbox-1"
APP = "bcache"
ROOT = f"/srv/hop3/apps/{APP}"
REUSED = "python venv (reused)"
BUILT = "python venv"


@pytest.fixture(scope="module")
def host(setup_runs, sandbox_hosts):
    return sandbox_hosts[0]["address"]


@pytest.fixture(scope="module")
def app_dir(host, tmp_path_factory):
    target = tmp_path_factory.mktemp("cache") / APP
    shutil.copytree(EXAMPLES / "python-flask", target)
    yield target
    hop("destroy", APP, "--yes", "-t", HOST, check=False)


def deploy(app_dir: Path, version: str | None = None) -> dict:
    """Deploy (with VERSION changed first, when given); this host's JSON report."""
    if version:
        (app_dir / "VERSION").write_text(version + "\n")
    result = json.loads(hop("deploy", str(app_dir), "--app", APP, "-t", HOST, "--json").stdout)
    assert result["ok"], result
    return result["reports"][HOST]


def served(address: str) -> str:
    request = urllib.request.Request(f"http://{address}/", headers={"Host": f"{APP}.{HOST}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


def state(address: str) -> dict:
    return json.loads(ssh(address, f"cat {ROOT}/state.json").stdout)


def venv_link(address: str, release: str) -> str:
    return ssh(address, f"readlink {ROOT}/releases/{release}/.venv").stdout.strip()


def venvs_on_disk(address: str) -> set[str]:
    return set(ssh(address, f"ls -A {ROOT}/venvs").stdout.split())


def assert_linked(address: str, report: dict) -> str:
    """The key of the release's venv: its state entry and its .venv link agree."""
    release = report["release"]
    entry = next(r for r in state(address)["releases"] if r["id"] == release)
    key = entry["venv"]
    assert venv_link(address, release) == f"../../venvs/{key}"
    ssh(address, f"test -f {ROOT}/venvs/{key}/.hop3-venv-complete")
    return key


@pytest.fixture(scope="module")
def first(app_dir, host) -> dict:
    report = deploy(app_dir, "1.0.0")
    assert BUILT in report["timings"], report
    return {"report": report, "key": assert_linked(host, report)}


def test_code_only_redeploy_reuses_the_venv(app_dir, host, first):
    report = deploy(app_dir, "1.0.1")
    assert report["built"] and report["release"] != first["report"]["release"]
    assert served(host) == "Hello from python-flask v1.0.1"
    assert REUSED in report["timings"] and BUILT not in report["timings"], report
    assert assert_linked(host, report) == first["key"]


def test_verbose_deploy_says_the_venv_was_reused(app_dir, host, first):
    (app_dir / "VERSION").write_text("1.0.2\n")
    proc = hop("deploy", str(app_dir), "--app", APP, "-t", HOST, "-v")
    assert REUSED in proc.stdout + proc.stderr
    assert served(host) == "Hello from python-flask v1.0.2"


def test_identical_redeploy_is_unchanged(app_dir, host, first):
    report = deploy(app_dir)
    assert report["built"] is False and report.get("unchanged"), report


def test_new_requirements_get_a_new_venv_and_old_ones_are_pruned(app_dir, host, first):
    requirements = app_dir / "requirements.txt"
    original = requirements.read_text()
    requirements.write_text(original + "itsdangerous>=2\n")
    report = deploy(app_dir, "2.0.0")
    assert BUILT in report["timings"] and REUSED not in report["timings"], report
    second = assert_linked(host, report)
    assert second != first["key"]
    assert served(host) == "Hello from python-flask v2.0.0"
    # Redeploy until no release state.json lists uses the first venv any
    # longer (the processes module keeps the last few releases): a venv stays
    # while a release listed at build time uses it (a rollback needs it).
    listed = {r["venv"] for r in state(host)["releases"]}
    for n in range(1, 12):
        if first["key"] not in listed:
            break
        report = deploy(app_dir, f"2.0.{n}")
        assert REUSED in report["timings"], report
        before, listed = listed, {r["venv"] for r in state(host)["releases"]}
        assert listed <= venvs_on_disk(host) <= before | listed
    else:
        pytest.fail("the first venv stayed listed")
    report = deploy(app_dir, "2.1.0")
    assert first["key"] not in venvs_on_disk(host)
    assert served(host) == "Hello from python-flask v2.1.0"


def test_a_venv_without_its_marker_is_rebuilt(app_dir, host, first):
    """A build killed before its end leaves no marker: the next build of that
    key removes what it left and builds the venv again."""
    key = first["key"]
    assert key not in venvs_on_disk(host)  # pruned by the test before
    requirements = app_dir / "requirements.txt"
    requirements.write_text(requirements.read_text().replace("itsdangerous>=2\n", ""))
    half = f"{ROOT}/venvs/{key}"
    ssh(host, f"install -d {half}/bin && touch {half}/half-built && chown -R {APP}: {half}")
    report = deploy(app_dir, "3.0.0")
    assert BUILT in report["timings"] and REUSED not in report["timings"], report
    assert assert_linked(host, report) == key
    assert ssh(host, f"test -e {ROOT}/venvs/{key}/half-built", check=False).returncode != 0
    assert served(host) == "Hello from python-flask v3.0.0"
    report = deploy(app_dir, "3.0.1")
    assert REUSED in report["timings"], report
    assert served(host) == "Hello from python-flask v3.0.1"
