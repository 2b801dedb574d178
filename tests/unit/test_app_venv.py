"""The build cache of Python apps (roles/hop3_app/module_utils/hop3_app_venv.py):
what a venv's key depends on, which requirements files may share a venv, and
the complete/incomplete/prune rules, on real files in a temporary directory."""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import types
from pathlib import Path

import pytest

VENV_FILE = Path(__file__).resolve().parents[2] / "roles/hop3_app/module_utils/hop3_app_venv.py"
_spec = importlib.util.spec_from_file_location("hop3_app_venv", VENV_FILE)
venv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(venv)

REQUIREMENTS = b"flask>=3.0,<4\ngunicorn>=25.1,<28\n"
BASE = {
    "requirements": REQUIREMENTS,
    "python": "3.11.2 (main, May 12 2026, 05:17:27) [GCC 12.2.0]",
    "uv": "uv 0.13.9 (x86_64-unknown-linux-gnu)",
    "packages": ["libpq-dev"],
    "config": {"SECRET_KEY": "s1", "APP_GREETING": "hi"},
}


def key(**changes) -> str:
    return venv.venv_key(**{**BASE, **changes})


def test_key_is_stable_and_short_hex():
    assert key() == key()
    assert venv.KEY_RE.fullmatch(key())


@pytest.mark.parametrize(
    "change",
    [
        {"requirements": REQUIREMENTS + b"requests\n"},
        {"requirements": REQUIREMENTS.replace(b"<4", b"<5")},
        {"requirements": REQUIREMENTS + b"\n"},  # bytes, not parsed requirements
        {"python": "3.11.4 (main, Jun 1 2027, 05:17:27) [GCC 12.2.0]"},
        {"uv": "uv 0.14.0 (x86_64-unknown-linux-gnu)"},
        {"packages": ["libpq-dev", "libxml2-dev"]},
        {"packages": []},
        {"config": {**BASE["config"], "UV_INDEX_URL": "https://mirror.example/simple"}},
        {"config": {**BASE["config"], "PIP_EXTRA_INDEX_URL": "https://mirror.example/simple"}},
    ],
    ids=lambda c: next(iter(c)),
)
def test_what_the_venv_depends_on_changes_the_key(change):
    assert key(**change) != key()


def test_format_version_changes_the_key(monkeypatch):
    before = key()
    monkeypatch.setattr(venv, "VENV_FORMAT", venv.VENV_FORMAT + 1)
    assert key() != before


@pytest.mark.parametrize(
    "change",
    [
        {"packages": ["libpq-dev", "libpq-dev"]},  # duplicates and order do not matter
        {"config": {"SECRET_KEY": "s2", "APP_GREETING": "hello", "NEW": "x"}},
        {"config": {}},
    ],
    ids=["packages-order", "app-config", "no-config"],
)
def test_what_the_venv_does_not_depend_on_keeps_the_key(change):
    assert key(**change) == key()


def test_package_order_does_not_matter():
    assert key(packages=["b", "a"]) == key(packages=["a", "b"])


@pytest.mark.parametrize(
    "text",
    [
        "flask>=3\n# a comment\n\ngunicorn  # inline comment\n",
        "--index-url https://pypi.example/simple\nflask\n",
        "requests[socks]==2.32.0 ; python_version >= '3.8'\n",
        "pkg @ https://files.example/pkg-1.0-py3-none-any.whl\n",
        "--hash=sha256:abc\n",
    ],
)
def test_index_only_requirements_share_a_venv(text):
    assert venv.cacheable(text.encode())


@pytest.mark.parametrize(
    "text",
    [
        "-r base.txt\n",
        "--requirement=base.txt\n",
        "-c constraints.txt\nflask\n",
        "-e .\n",
        "--editable ./lib\n",
        ".\n",
        "./vendor/pkg\n",
        "/opt/wheels/pkg.whl\n",
        "file:///opt/pkg\n",
        "pkg @ file:///opt/pkg\n",
        "pkg @ ./vendor/pkg\n",
        "-f ./wheels\nflask\n",
        "--find-links wheels\n",
    ],
)
def test_requirements_that_read_the_release_get_their_own_venv(text):
    assert not venv.cacheable(text.encode())


def test_read_requirements_refuses_links_and_non_files(tmp_path):
    real = tmp_path / "requirements.txt"
    real.write_bytes(REQUIREMENTS)
    assert venv.read_requirements(str(real)) == REQUIREMENTS
    link = tmp_path / "linked.txt"
    link.symlink_to(real)
    assert venv.read_requirements(str(link)) is None
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert venv.read_requirements(str(fifo)) is None
    assert venv.read_requirements(str(tmp_path / "missing")) is None


def test_build_command_is_relocatable_and_quotes_the_path():
    command = venv.build_command("uv", "/srv/hop3/apps/a/venvs/.build-x y")
    assert "--relocatable" in command
    assert "'/srv/hop3/apps/a/venvs/.build-x y'" in command
    assert "-r requirements.txt" in command


@pytest.fixture
def paths(tmp_path):
    """An app's paths under tmp_path, its user the one running the tests."""
    root = tmp_path / "app"
    root.mkdir()
    user = pwd.getpwuid(os.getuid()).pw_name
    return types.SimpleNamespace(app=user, root=str(root))


def test_complete_venv_is_used_and_incomplete_one_removed(paths):
    folder = venv.ensure_venvs_dir(paths)
    built = venv.build_dir(paths, "a" * 16)
    os.makedirs(os.path.join(built, "bin"))
    done = venv.complete(paths, "a" * 16, built, {"python": "3.11"})
    assert done == os.path.join(folder, "a" * 16)
    assert not os.path.exists(built)
    assert json.loads(Path(done, venv.MARKER).read_text()) == {"key": "a" * 16, "python": "3.11"}
    assert venv.usable(paths, "a" * 16) == done
    killed = Path(folder, "b" * 16)
    (killed / "bin").mkdir(parents=True)  # what a killed build would leave
    assert venv.usable(paths, "b" * 16) is None
    assert not killed.exists()
    assert venv.usable(paths, "c" * 16) is None


def test_marker_is_never_written_through_a_link(paths, tmp_path):
    venv.ensure_venvs_dir(paths)
    built = venv.build_dir(paths, "a" * 16)
    os.makedirs(built)
    outside = tmp_path / "outside"
    outside.write_text("keep")
    os.symlink(outside, os.path.join(built, venv.MARKER))
    venv.complete(paths, "a" * 16, built, {})
    assert outside.read_text() == "keep"
    assert not os.path.islink(os.path.join(venv.venvs_dir(paths), "a" * 16, venv.MARKER))


def test_release_links_relatively(paths):
    folder = venv.ensure_venvs_dir(paths)
    target = os.path.join(folder, "a" * 16)
    os.makedirs(os.path.join(target, "bin"))
    release = os.path.join(paths.root, "releases", "v1")
    os.makedirs(os.path.join(release, ".venv", "bin"))  # a .venv shipped with the source
    venv.link(paths, release, target)
    assert os.readlink(os.path.join(release, ".venv")) == "../../venvs/" + "a" * 16
    assert os.path.isdir(os.path.join(release, ".venv", "bin"))


def test_prune_keeps_listed_keys_only(paths):
    folder = Path(venv.ensure_venvs_dir(paths))
    for name in ("a" * 16, "b" * 16, "c" * 16, ".build-" + "d" * 16 + "-1234"):
        (folder / name).mkdir()
    state = {
        "releases": [{"id": "v1", "venv": "a" * 16}, {"id": "v2"}, {"id": "v3", "venv": "c" * 16}]
    }
    keep = venv.keys_in_use(state)
    assert keep == {"a" * 16, "c" * 16}
    assert venv.prune(paths, keep) == [".build-" + "d" * 16 + "-1234", "b" * 16]
    assert sorted(p.name for p in folder.iterdir()) == ["a" * 16, "c" * 16]


def test_keys_in_use_ignores_what_is_not_a_key():
    state = {"releases": [{"id": "v1", "venv": "../../etc"}, {"id": "v2", "venv": None}]}
    assert venv.keys_in_use(state) == set()


@pytest.mark.parametrize(
    "command",
    [
        "uv pip install -e .",
        "pip install extra",
        "python -m pip install x",
        "cd lib && pip3 install .",
        ".venv/bin/python setup.py develop",
        'echo "$VIRTUAL_ENV"',
        "/opt/hop3/uv/bin/uv pip install ./plugin",
    ],
)
def test_build_commands_that_may_change_the_venv_keep_it_per_release(command):
    assert venv.writes_venv(["npm run build", command])


def test_ordinary_build_commands_share_the_venv():
    commands = ["python manage.py collectstatic --noinput", "./pipeline.sh", "make assets", ""]
    assert not venv.writes_venv(commands)
