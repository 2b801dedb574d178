"""The wheelhouse: its cache key, the dependency pins, and one real build."""

from __future__ import annotations

import json
import os
import tarfile
import time
from importlib import metadata
from pathlib import Path

import pytest

from hop3 import __version__, wheelhouse
from hop3.errors import HopError

PINS = {"click": "8.1.7", "pyyaml": "6.0.2"}


def test_key_is_stable_and_depends_on_every_input():
    key = wheelhouse.cache_key("0.1.0", "abc", PINS, "cp311")
    assert key == wheelhouse.cache_key("0.1.0", "abc", dict(reversed(PINS.items())), "cp311")
    assert len(key) == 64
    others = [
        wheelhouse.cache_key("0.1.1", "abc", PINS, "cp311"),
        wheelhouse.cache_key("0.1.0", "abd", PINS, "cp311"),
        wheelhouse.cache_key("0.1.0", "abc", {**PINS, "click": "8.1.8"}, "cp311"),
        wheelhouse.cache_key("0.1.0", "abc", {**PINS, "rich": "13.7.0"}, "cp311"),
        wheelhouse.cache_key("0.1.0", "abc", PINS, "cp312"),
    ]
    assert len({key, *others}) == 6


def test_archive_name_carries_version_python_and_key():
    key = "f" * 64
    assert wheelhouse.archive_name("0.1.0", key, "cp311") == f"hop3-0.1.0-cp311-{'f' * 16}.tar"


def test_pins_are_the_installed_versions_of_every_runtime_dependency():
    pins = wheelhouse.dependency_pins()
    assert "hop3" not in pins
    for direct in ("ansible-core", "ansible-runner", "click", "jinja2", "pyyaml", "rich"):
        assert pins[direct] == metadata.version(direct)
    # Transitive ones, and those of an extra hop3 asks for (cyclonedx[json-validation]).
    assert pins["markupsafe"] == metadata.version("markupsafe")
    assert pins["jsonschema"] == metadata.version("jsonschema")
    assert list(pins) == sorted(pins)
    # Test-only extras of hop3 itself are not runtime dependencies.
    assert "pytest" not in pins and "ansible-lint" not in pins


def test_missing_dependency_is_a_clear_error(monkeypatch):
    real = metadata.distribution

    def distribution(name):
        if name == "rich":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(wheelhouse.metadata, "distribution", distribution)
    with pytest.raises(HopError, match=r"rich, a dependency of hop3, is not installed"):
        wheelhouse.dependency_pins()


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    for name in ("pyproject.toml", "README.md", "hop3/__init__.py", "roles/r/tasks/main.yml"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
    (root / "playbooks").mkdir()
    (root / "catalog").mkdir()
    return root


def test_source_digest_follows_content_and_ignores_caches(tmp_path):
    root = _tree(tmp_path)
    first = wheelhouse.source_digest(root)
    (root / "hop3/__pycache__").mkdir()
    (root / "hop3/__pycache__/x.cpython-311.pyc").write_bytes(b"\0")
    (root / "tests").mkdir()
    (root / "tests/test_x.py").write_text("not shipped")
    assert wheelhouse.source_digest(root) == first
    (root / "roles/r/tasks/main.yml").write_text("changed")
    assert wheelhouse.source_digest(root) != first


def test_unbuildable_wheelhouse_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(wheelhouse, "source_root", lambda: tmp_path / "not-a-project")
    with pytest.raises(HopError) as caught:
        wheelhouse.build_archive(tmp_path, "0.1.0", "k" * 64, {}, "cp311")
    assert "Cannot build hop3's wheel for the hosts" in caught.value.message
    assert "package index" in caught.value.hint


def test_real_build_then_cache_hit(tmp_path):
    """Builds the archive from this checkout (fast with a warm pip cache), then
    finds it again without building."""
    archive, sha = wheelhouse.ensure_wheelhouse(tmp_path)
    assert sha == wheelhouse.file_sha256(archive)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
        requirements = tar.extractfile("requirements.txt").read().decode().split()
    assert f"hop3-{__version__}-py3-none-any.whl" in names
    assert manifest["version"] == __version__
    assert manifest["pins"] == wheelhouse.dependency_pins()
    assert requirements == [f"{n}=={v}" for n, v in manifest["pins"].items()]
    wheels = [n for n in names if n.endswith(".whl")]
    assert len(wheels) == len(manifest["pins"]) + 1
    inode = archive.stat().st_ino
    assert wheelhouse.ensure_wheelhouse(tmp_path) == (archive, sha)
    assert archive.stat().st_ino == inode  # found, not built again
    # Built again from the same source (its cache pruned), the archive is the
    # same bytes: hosts set up with the first need no reinstall.
    archive.unlink()
    assert wheelhouse.ensure_wheelhouse(tmp_path) == (archive, sha)


def test_pruning_keeps_archives_used_lately(tmp_path):
    now = time.time()
    for age_days in range(10):
        old = tmp_path / f"hop3-0.1.0-cp311-{age_days:016d}.tar"
        old.write_bytes(b"x")
        old.with_name(old.name + ".sha256").write_text("s\n")
        os.utime(old, (now - age_days * 3.5 * 3600, now - age_days * 3.5 * 3600))
    keep = tmp_path / "hop3-0.1.0-cp311-new.tar"
    keep.write_bytes(b"y")
    wheelhouse._prune(tmp_path, keep=keep)
    left = sorted(p.name for p in tmp_path.glob("*.tar"))
    # Used within a day (0-21 h ago): all kept; older ones beyond the newest few go.
    assert [f"hop3-0.1.0-cp311-{a:016d}.tar" for a in range(7)] + [keep.name] == left
    assert not (tmp_path / f"hop3-0.1.0-cp311-{9:016d}.tar.sha256").exists()
