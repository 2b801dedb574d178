"""Host-side checks of role hop3_app that decide a failed deploy
(module_utils/hop3_app_host.py): symlinks leaving a release, units that died."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

UTILS = Path(__file__).resolve().parents[2] / "roles/hop3_app/module_utils"


def _load(name: str):
    """A module_utils file, importable by the others as Ansible names it."""
    spec = importlib.util.spec_from_file_location(name, UTILS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[f"ansible.module_utils.{name}"] = module
    return module


_load("hop3_app_routes")
host = _load("hop3_app_host")


def release(tmp_path, links):
    root = tmp_path / "releases" / "v1"
    (root / "static").mkdir(parents=True)
    (root / "static/logo.txt").write_text("logo")
    (tmp_path / "env").write_text("{}")
    for name, target in links.items():
        (root / name).symlink_to(target)
    return root


def test_links_inside_a_release_are_kept(tmp_path):
    root = release(tmp_path, {"logo": "static/logo.txt", "assets": "static", "self": "."})
    assert host.escaping_links(root) == []


@pytest.mark.parametrize(
    "links, bad",
    [
        ({"static/passwd": "/etc/passwd"}, "static/passwd -> /etc/passwd"),
        ({"env": "../../env"}, "env -> ../../env"),
        ({"static/top": "..", "climb": "static/top/../.."}, "climb -> static/top/../.."),
    ],
)
def test_links_leaving_a_release_are_found(tmp_path, links, bad):
    assert bad in host.escaping_links(release(tmp_path, links))


def test_an_absolute_link_is_refused_even_into_the_release(tmp_path):
    root = release(tmp_path, {})
    (root / "logo").symlink_to(root / "static/logo.txt")
    assert host.escaping_links(root) == ["logo -> %s" % (root / "static/logo.txt")]


@pytest.mark.parametrize(
    "props, gone",
    [
        ({"ActiveState": "active", "SubState": "running", "NRestarts": "0"}, False),
        ({"ActiveState": "activating", "SubState": "start", "NRestarts": "0"}, False),
        # Exited at once: systemd waits RestartSec, then starts it again.
        (
            {
                "ActiveState": "activating",
                "SubState": "auto-restart",
                "NRestarts": "0",
                "ExecMainStatus": "127",
            },
            True,
        ),
        ({"ActiveState": "active", "SubState": "running", "NRestarts": "1"}, True),
        ({"ActiveState": "failed", "SubState": "failed", "Result": "exit-code"}, True),
        ({"ActiveState": "inactive", "SubState": "dead"}, True),
    ],
)
def test_a_unit_that_exited_or_restarted_is_gone(props, gone):
    why = host.unit_gone(props)
    assert (why is not None) == gone
    if props.get("ExecMainStatus"):
        assert "status 127" in why
