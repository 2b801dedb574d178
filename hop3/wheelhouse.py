"""The wheelhouse: everything a host needs to install this very Hop3 offline.

`hop setup` installs Hop3 on each host from ONE tar archive built here, on
the controller: the wheel of the running hop3 plus the wheels of its runtime
dependencies at exactly the versions installed here. The host then runs
``pip install --no-index --find-links``, so it needs no package index and
ends up with the controller's version.

The archive is cached under ``cache_dir()/wheelhouse/``, named by a key made
of the hop3 version, a digest of hop3's own files and the dependency pins; a
new archive is built only when that key changes. It holds:

    hop3-<version>-py3-none-any.whl   the running hop3
    <dependency wheels>
    requirements.txt                  name==version of every dependency
    manifest.json                     version, key, python tag, pins
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from hop3 import __version__, paths
from hop3.errors import HopError

PACKAGE = "hop3"
# Parts of a source checkout that go into the wheel (see pyproject.toml).
SOURCE_PARTS = ("pyproject.toml", "README.md", "hop3", "playbooks", "roles", "catalog", "plugins")
_SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
_PIP_TIMEOUT = 600
_KEEP_ARCHIVES = 6
# An archive used this recently is never pruned: another checkout (a test
# run beside a session) may still set hosts up with it.
_KEEP_USED_SECONDS = 24 * 3600
# Zip and tar timestamps of a build (SOURCE_DATE_EPOCH, 1980-01-01, the
# oldest a zip holds): the same source gives the same archive, byte for byte,
# so a rebuilt archive never makes set-up hosts reinstall Hop3.
_BUILD_EPOCH = 315532800


# --------------------------------------------------------------------------- what goes in


def python_tag() -> str:
    """The interpreter the wheels are for, e.g. cp311 (the host must run the same)."""
    return f"cp{sys.version_info.major}{sys.version_info.minor}"


def setup_extravars(archive: Path, sha256: str) -> dict[str, str]:
    """What `hop setup` passes to the host CLI role to install this wheelhouse."""
    return {
        "hop3_version": __version__,
        "hop3_wheelhouse": str(archive),
        "hop3_wheelhouse_sha256": sha256,
        "hop3_wheelhouse_python": python_tag(),
    }


def dependency_pins(package: str = PACKAGE) -> dict[str, str]:
    """Every runtime dependency of ``package`` (transitively, extras included) at
    the version installed here: canonical name -> version. ``package`` itself is
    not in the result."""
    env = default_environment()
    pins: dict[str, str] = {}
    pending: list[tuple[str, frozenset[str]]] = [(package, frozenset())]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, extras = pending.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError as err:
            raise HopError(
                f"Cannot build the wheelhouse: {name}, a dependency of {package}, "
                "is not installed here.",
                f"Reinstall Hop3 (pip install --force-reinstall {package}) and run again.",
            ) from err
        key = canonicalize_name(dist.metadata["Name"])
        if key != canonicalize_name(package):
            pins[key] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not _marker_holds(req, env, extras):
                continue
            pending.append((canonicalize_name(req.name), frozenset(req.extras)))
    return dict(sorted(pins.items()))


def _marker_holds(req: Requirement, env: dict[str, str], extras: frozenset[str]) -> bool:
    """A requirement applies if its marker holds with no extra, or with one we asked for."""
    assert req.marker is not None
    return any(req.marker.evaluate({**env, "extra": extra}) for extra in ("", *sorted(extras)))


def source_root() -> Path | None:
    """The checkout hop3 runs from (an editable install), or None for an installed wheel."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "playbooks").is_dir():
        return root
    return None


def source_digest(root: Path | None = None) -> str:
    """sha256 over hop3's own files: the checkout's parts, or the installed files."""
    digest = hashlib.sha256()
    for name, path in sorted(_own_files(root)):
        digest.update(name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _own_files(root: Path | None) -> list[tuple[str, Path]]:
    if root is None:
        root = source_root()
    if root is not None:
        files = []
        for part in SOURCE_PARTS:
            top = root / part
            candidates = [top] if top.is_file() else sorted(top.rglob("*"))
            files += [(p.relative_to(root).as_posix(), p) for p in candidates if _kept(p)]
        return files
    dist = metadata.distribution(PACKAGE)
    return [
        (str(f), Path(dist.locate_file(f)))
        for f in dist.files or []
        if _kept(Path(dist.locate_file(f))) and ".dist-info/" not in f"{f}/"
    ]


def _kept(path: Path) -> bool:
    return (
        path.is_file()
        and not _SKIPPED_PARTS.intersection(path.parts)
        and not path.name.endswith(_SKIPPED_SUFFIXES)
    )


def cache_key(version: str, digest: str, pins: dict[str, str], tag: str) -> str:
    """What decides whether a cached archive is still right (hex, 64 chars)."""
    blob = json.dumps(
        {"version": version, "source": digest, "pins": pins, "python": tag}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def archive_name(version: str, key: str, tag: str) -> str:
    return f"hop3-{version}-{tag}-{key[:16]}.tar"


# --------------------------------------------------------------------------- the archive


def ensure_wheelhouse(cache: Path | None = None) -> tuple[Path, str]:
    """The archive for the running hop3 (built if missing): its path and sha256."""
    cache = paths.ensure(cache or paths.cache_dir() / "wheelhouse")
    tag = python_tag()
    pins = dependency_pins()
    key = cache_key(__version__, source_digest(), pins, tag)
    archive = cache / archive_name(__version__, key, tag)
    checksum = archive.with_name(archive.name + ".sha256")
    # One builder at a time (two test runs, two `hop setup`s): an archive and
    # its checksum always come from the same build.
    with open(cache / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if archive.is_file() and checksum.is_file():
            with contextlib.suppress(OSError):
                os.utime(archive)  # last used: what pruning goes by
            return archive, checksum.read_text(encoding="utf-8").strip()
        with tempfile.TemporaryDirectory(prefix="wheelhouse-", dir=cache) as work:
            built = build_archive(Path(work), __version__, key, pins, tag)
            sha = file_sha256(built)
            os.replace(built, archive)
        checksum.write_text(sha + "\n", encoding="utf-8")
        _prune(cache, keep=archive)
    return archive, sha


def build_archive(work: Path, version: str, key: str, pins: dict[str, str], tag: str) -> Path:
    """Build the wheels into ``work`` and pack them with their manifest; the tar's path."""
    wheels = paths.ensure(work / "wheels", 0o755)
    root = source_root()
    if root is not None:
        _pip(["wheel", "--no-deps", "--wheel-dir", str(wheels), str(root)], "hop3's wheel")
    else:
        repack_installed(wheels)
    requirements = work / "requirements.txt"
    requirements.write_text("".join(f"{n}=={v}\n" for n, v in pins.items()), encoding="utf-8")
    if pins:
        args = ["wheel", "--no-deps", "--wheel-dir", str(wheels), "-r", str(requirements)]
        _pip(args, "the dependencies' wheels")
    manifest = {"version": version, "key": key, "python": tag, "pins": pins}
    (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    archive = work / "wheelhouse.tar"
    with tarfile.open(archive, "w") as tar:
        for path in [work / "manifest.json", work / "requirements.txt", *sorted(wheels.iterdir())]:
            tar.add(path, arcname=path.name, filter=_plain_member)
    return archive


def _plain_member(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = _BUILD_EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode = 0o644
    return info


def _pip(args: list[str], what: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(_BUILD_EPOCH)}
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=_PIP_TIMEOUT, env=env
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise _cannot_build(what, str(err)) from err
    if proc.returncode != 0:
        if "No module named pip" in proc.stderr:
            raise HopError(
                f"Cannot build {what} for the hosts: the Python that runs Hop3 "
                f"({sys.executable}) has no pip.",
                "Install Hop3 in a virtualenv that has pip (python3 -m venv), then run again.",
            )
        said = [line for line in proc.stderr.splitlines() if "is ignored" not in line]
        raise _cannot_build(what, "\n".join(said[-6:]).strip())


def _cannot_build(what: str, said: str) -> HopError:
    return HopError(
        f"Cannot build {what} for the hosts (no cached wheelhouse fits this Hop3).\n"
        f"pip said: {said or 'nothing'}",
        "The first `hop setup` of a Hop3 version downloads its dependencies' wheels once: "
        "check this machine's access to the package index (or pip's proxy/index settings), "
        "then run again; later runs work offline.",
    )


def repack_installed(wheels: Path) -> Path:
    """Rebuild the wheel of an installed (non-editable) hop3 from its installed files."""
    dist = metadata.distribution(PACKAGE)
    info_dir = f"{PACKAGE}-{dist.version}.dist-info"
    target = wheels / f"{PACKAGE}-{dist.version}-py3-none-any.whl"
    records: list[str] = []
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as wheel:
        for file in dist.files or []:
            name = str(file)
            path = Path(dist.locate_file(file))
            local_only = name.startswith(info_dir) and Path(name).name in (
                "RECORD", "INSTALLER", "REQUESTED", "direct_url.json",
            )  # fmt: skip
            if local_only or not _kept(path) or name.startswith(".."):
                continue
            data = path.read_bytes()
            wheel.writestr(name, data)
            records.append(f"{name},sha256={_urlsafe_digest(data)},{len(data)}")
        records.append(f"{info_dir}/RECORD,,")
        wheel.writestr(f"{info_dir}/RECORD", "\n".join(records) + "\n")
    return target


def _urlsafe_digest(data: bytes) -> str:
    import base64

    raw = hashlib.sha256(data).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _prune(cache: Path, keep: Path) -> None:
    """Keep the few archives used last, and every one used within a day
    (another checkout may still use an older one)."""
    pattern = re.compile(r"^hop3-.+\.tar$")
    archives = sorted(
        (p for p in cache.iterdir() if pattern.match(p.name) and p != keep),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    recent = time.time() - _KEEP_USED_SECONDS
    for old in archives[_KEEP_ARCHIVES - 1 :]:
        if old.stat().st_mtime >= recent:
            continue
        with contextlib.suppress(OSError):
            old.unlink()
            old.with_name(old.name + ".sha256").unlink()
