"""The converged sandbox image (hop3/sandbox/converged.py): its key, the
cleaning of one host's history, the per-host rewrite, pruning, and which
image a host boots from. No hosts, no root: trees under tmp_path."""

from __future__ import annotations

import json
import subprocess

import pytest
from click.testing import CliRunner

from hop3 import resources
from hop3.cli.main import cli
from hop3.errors import HopError
from hop3.sandbox import converged, disk, hosts


@pytest.fixture
def content(tmp_path, monkeypatch):
    """roles/ and playbooks/ of our own, so that the key can be watched."""
    for rel, text in {"roles/r/tasks/main.yml": "- x\n", "playbooks/setup.yml": "- y\n"}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    monkeypatch.setattr(resources, "roles_dir", lambda: tmp_path / "roles")
    monkeypatch.setattr(resources, "playbooks_dir", lambda: tmp_path / "playbooks")
    return tmp_path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HOP3_CACHE_DIR", str(tmp_path / "cache"))
    converged.images_dir().mkdir(parents=True)
    return converged.images_dir()


def test_key_follows_base_roles_and_playbooks(content, tmp_path):
    base = tmp_path / "images" / "abc"
    first = converged.key(base)
    assert converged.key(base) == first
    assert converged.key(tmp_path / "images" / "def") != first
    (content / "roles/r/tasks/main.yml").write_text("- changed\n")
    second = converged.key(base)
    assert second != first
    (content / "playbooks/new.yml").write_text("- z\n")
    assert converged.key(base) not in (first, second)


def test_key_ignores_bytecode_caches(content, tmp_path):
    base = tmp_path / "images" / "abc"
    first = converged.key(base)
    cached = content / "roles/r/library/__pycache__/m.cpython-311.pyc"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"\0\1")
    assert converged.key(base) == first


def _tree(root, files):
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_clean_empties_history_and_finds_files_naming_the_builder(tmp_path):
    root = tmp_path / "img"
    name = converged.BUILDER_NAME
    _tree(root, {
        "etc/hop3/inventory.yml": f"all:\n  hosts:\n    {name}:\n",
        "etc/hop3/env": "HOP3_CONFIG_DIR=/etc/hop3\n",
        "etc/machine-id": "0123456789abcdef\n",
        "var/lib/dbus/machine-id": "0123456789abcdef\n",
        "var/log/hop3/audit.jsonl": f'{{"host": "{name}"}}\n',
        "var/log/journal/0123/system.journal": "binary",
        "var/lib/fail2ban/fail2ban.sqlite3": "db",
        "srv/hop3/host.txt": "sandbox-60\n",
    })  # fmt: skip
    found = converged._clean(root, [name, "sandbox-60"])
    assert found == ["etc/hop3/inventory.yml", "srv/hop3/host.txt"]
    assert (root / "var/log/hop3/audit.jsonl").read_text() == ""
    assert (root / "etc/machine-id").read_text() == ""
    for gone in ("var/lib/dbus/machine-id", "var/log/journal", "var/lib/fail2ban/fail2ban.sqlite3"):
        assert not (root / gone).exists(), gone
    assert (root / "etc/hop3/env").read_text() == "HOP3_CONFIG_DIR=/etc/hop3\n"


def test_personalise_names_the_host(cache, tmp_path):
    image = cache / "k1"
    (image / "etc").mkdir(parents=True)
    (cache / "k1.json").write_text(json.dumps({"personal_files": ["etc/hop3/inventory.yml"]}))
    root = tmp_path / "host-root"
    name = converged.BUILDER_NAME
    _tree(root, {"etc/hop3/inventory.yml": f"all:\n  hosts:\n    {name}:\n      x: {name}\n"})
    converged.personalise(root, image, "sandbox-3")
    assert (root / "etc/hop3/inventory.yml").read_text() == (
        "all:\n  hosts:\n    sandbox-3:\n      x: sandbox-3\n"
    )
    converged.personalise(root, image, "sandbox-3")  # again: nothing left to rewrite
    assert "sandbox-3:" in (root / "etc/hop3/inventory.yml").read_text()


def test_ready_and_kind(cache, tmp_path):
    image = cache / "k1"
    assert not converged.ready(image)
    (image / "etc").mkdir(parents=True)
    (image / "etc/os-release").write_text("ID=debian\n")
    assert not converged.ready(image)  # no metadata yet: a build that did not finish
    (cache / "k1.json").write_text(json.dumps({"personal_files": []}))
    assert converged.ready(image)
    assert converged.is_converged(image) and not converged.is_converged(tmp_path / "images/k1")
    assert converged.personal_files(tmp_path / "nowhere") == []


def test_drop_other_images_keeps_the_current_and_those_under_disks(cache, monkeypatch):
    for name in ("keep", "old", "used"):
        (cache / name).mkdir()
        (cache / f"{name}.json").write_text("{}")
    (cache / ".build-x").mkdir()
    mounts = (
        "98 22 0:52 / /s/root rw - overlay overlay rw,"
        f"lowerdir={cache / 'used'},upperdir=/s/upper,workdir=/s/work\n"
    )
    monkeypatch.setattr(disk, "mountinfo", lambda: mounts)
    converged.drop_other_images(keep=cache / "keep")
    assert sorted(p.name for p in cache.iterdir()) == [
        ".build-x", "keep", "keep.json", "used", "used.json",
    ]  # fmt: skip


def test_a_host_keeps_the_current_image_its_disk_lies_over(tmp_path, monkeypatch):
    monkeypatch.setenv("HOP3_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("HOP3_SANDBOX_NET", "7")
    bare, conv = tmp_path / "images/b", tmp_path / "converged/c"
    for image in (bare, conv):
        (image / "etc").mkdir(parents=True)
        (image / "etc/os-release").write_text("ID=debian\n")
    current = {str(bare), str(conv)}
    assert hosts._image_for(1, bare, current) == bare  # no disk yet: as asked
    record = hosts._disk(1).image_record
    record.parent.mkdir(parents=True)
    record.write_text(f"{conv}\n")
    assert hosts._image_for(1, bare, current) == conv  # a stopped converged host
    record.write_text(f"{tmp_path / 'images/old'}\n")
    assert hosts._image_for(1, conv, current) == conv  # its image is gone: as asked


def test_an_unknown_image_kind_is_refused(monkeypatch):
    with pytest.raises(HopError, match="Unknown sandbox image"):
        hosts.up(1, image_kind="golden")
    result = CliRunner().invoke(cli, ["sandbox", "up", "--image", "golden"])
    assert result.exit_code == 2
    assert "golden" in result.output and "bare" in result.output
    assert "Traceback" not in result.output


def test_the_inotify_limit_is_raised_never_lowered(tmp_path, monkeypatch):
    limit = tmp_path / "max_user_instances"
    monkeypatch.setattr(hosts, "_INOTIFY_INSTANCES", limit)
    limit.write_text("128\n")
    hosts._raise_inotify_limit()
    assert int(limit.read_text()) == hosts._MIN_INOTIFY_INSTANCES
    limit.write_text("100000\n")
    hosts._raise_inotify_limit()
    assert limit.read_text() == "100000\n"


def test_a_failed_preload_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HOP3_STATE_DIR", str(tmp_path / "state"))
    seen = []

    def fake_run(args, **kwargs):
        seen.append(args)
        return subprocess.CompletedProcess(args, 100, "", "E: Unable to locate package\n")

    monkeypatch.setattr(converged.subprocess, "run", fake_run)
    host = hosts.SandboxHost("sandbox-60", 60, "10.213.7.70", 1, "/img", 0.0)
    with pytest.raises(HopError) as failure:
        converged._preload(host)
    assert "postgresql, redis-server" in str(failure.value)
    assert "exited 100" in str(failure.value) and "Unable to locate" in str(failure.value)
    assert seen[0][-len(converged.PRELOADED_PACKAGES) :] == list(converged.PRELOADED_PACKAGES)
    assert "root@10.213.7.70" in seen[0]
