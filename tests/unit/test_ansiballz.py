"""The cache of built module payloads (hop3/ansiballz.py and
plugins/callback/hop3_ansiballz_cache.py): one directory per content, so a
changed module never meets an old payload; a real ansible-playbook run fills
it and the next run reuses it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hop3 import ansiballz, runner

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh_key(monkeypatch, tmp_path):
    monkeypatch.setenv("HOP3_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(ansiballz, "_key", None)
    return tmp_path


def test_the_key_changes_with_any_module_source(fresh_key, monkeypatch, tmp_path):
    root = tmp_path / "content"
    (root / "roles/r/library").mkdir(parents=True)
    (root / "roles/r/module_utils").mkdir(parents=True)
    module = root / "roles/r/library/m.py"
    util = root / "roles/r/module_utils/u.py"
    module.write_text("print(1)\n")
    util.write_text("X = 1\n")
    monkeypatch.setattr(ansiballz.resources, "content_root", lambda: root)
    keys = []
    for change in (None, (module, "print(2)\n"), (util, "X = 2\n")):
        if change:
            change[0].write_text(change[1])
        monkeypatch.setattr(ansiballz, "_key", None)
        keys.append(ansiballz.key())
    assert len(set(keys)) == 3


def test_old_directories_are_pruned_and_the_cache_is_private(fresh_key, monkeypatch):
    base = fresh_key / "cache" / "ansiballz"
    base.mkdir(parents=True)
    for n in range(5):
        old = base / f"old{n}"
        old.mkdir()
        os.utime(old, (1000 + n, 1000 + n))
    mine = ansiballz.cache_dir()
    kept = sorted(p.name for p in base.iterdir())
    assert mine.name in kept and len(kept) == ansiballz.KEEP
    assert {"old4", "old3"} <= set(kept)
    assert (base.stat().st_mode & 0o777) == 0o700 and (mine.stat().st_mode & 0o777) == 0o700


def test_runs_get_the_callback_unless_turned_off(fresh_key, monkeypatch):
    monkeypatch.delenv("ANSIBLE_CALLBACKS_ENABLED", raising=False)
    monkeypatch.setenv("ANSIBLE_CALLBACK_PLUGINS", "/users/own")
    env = runner._ansiballz_cache_env()
    assert env["ANSIBLE_CALLBACKS_ENABLED"] == "hop3_ansiballz_cache"
    assert env["ANSIBLE_CALLBACK_PLUGINS"].split(os.pathsep) == [
        "/users/own",
        str(ROOT / "plugins" / "callback"),
    ]
    assert Path(env["HOP3_ANSIBALLZ_CACHE"]).is_dir()
    monkeypatch.setenv("HOP3_ANSIBALLZ_CACHE", "0")
    assert runner._ansiballz_cache_env() == {}


def test_a_second_run_reuses_the_payload_the_first_built(fresh_key, tmp_path):
    """Two real ansible-playbook runs of a module: the first writes the payload
    into the shared directory, the second finds it there (Ansible's debug log
    says which)."""
    cache = ansiballz.cache_dir()
    play = tmp_path / "play.yml"
    play.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n"
    )
    env = {
        **os.environ,
        "ANSIBLE_CALLBACK_PLUGINS": str(ROOT / "plugins" / "callback"),
        "ANSIBLE_CALLBACKS_ENABLED": "hop3_ansiballz_cache",
        "HOP3_ANSIBALLZ_CACHE": str(cache),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_DEBUG": "1",
    }
    command = [str(Path(sys.executable).with_name("ansible-playbook")), "-c", "local",
               "-i", "localhost,", "-e", f"ansible_python_interpreter={sys.executable}",
               str(play)]  # fmt: skip
    first = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert "ANSIBALLZ: Creating module" in first.stdout
    assert any("ping" in p.name for p in cache.iterdir())
    second = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert "ANSIBALLZ: using cached module" in second.stdout
    assert "ANSIBALLZ: Creating module" not in second.stdout
    # The per-run temp dirs are gone; the shared payloads stay.
    assert not list((tmp_path / "tmp").glob("ansible-local-*"))
    assert any("ping" in p.name for p in cache.iterdir())
