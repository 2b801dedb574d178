"""The converged sandbox image: the base image with `hop setup` already applied.

Booting a host from it skips the first converge of a bare Debian (packages,
nginx, ModSecurity, the firewall, fail2ban, the host CLI), which is where most
of the test suite's time went. It is built once per key, under a lock (two
test streams start at once), by booting a builder host from the base image,
running the setup playbook on it, powering it off and copying its merged tree
(with the host stopped, so overlayfs whiteouts and opaque dirs are already
applied). What setup wrote that names the builder is recorded, and rewritten
for each host booted from the image (see ``personalise``); what is one host's
own history (its audit log, journal, fail2ban database, machine-id) is emptied.

The key is a hash of the base image's key, roles/, playbooks/, this file, the
Hop3 version and its dependency pins. Hop3's own source is not in the key: a
host booted from the image runs `hop setup` like any other, which installs the
current wheelhouse when it differs (one task), so a code change does not
rebuild the image; a change to a role or playbook does.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hop3 import __version__, paths, resources
from hop3.errors import HopError

from . import disk, network
from .shell import run

# The builder is a host of the caller's network, above the indexes `up` uses.
BUILDER_INDEX = 60
# The builder's inventory name: distinctive, so that what setup wrote naming
# it can be found in the tree and rewritten for each host.
BUILDER_NAME = "hop3-converged-builder"
# Trees (relative to the image root) searched for files naming the builder.
_PERSONAL_TREES = ("etc", "srv", "var/lib", "root", "home")
# One host's own history: emptied in the image (paths relative to its root).
_EMPTIED_FILES = ("var/log/hop3/audit.jsonl", "etc/machine-id")
_REMOVED = ("var/lib/dbus/machine-id", "var/lib/fail2ban/fail2ban.sqlite3", "var/log/journal")
# Installed (not configured: their roles do that, and start them) after the
# setup, because most hosts booted from the image get a PostgreSQL or Redis
# app: installing them is the next-largest step after the first setup.
PRELOADED_PACKAGES = ("postgresql", "redis-server")
_INSTALL_TIMEOUT = 1200
KINDS = ("bare", "converged")


def images_dir() -> Path:
    return paths.cache_dir() / "sandbox" / "converged"


def _tree_digest(digest, root: Path) -> None:
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if "__pycache__" in path.parts:
            continue
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")


def key(base: Path) -> str:
    """What determines the converged image: base image, roles, playbooks, version."""
    from hop3 import wheelhouse

    digest = hashlib.sha256()
    digest.update(base.name.encode() + b"\0" + __version__.encode() + b"\0")
    digest.update(json.dumps(wheelhouse.dependency_pins(), sort_keys=True).encode())
    digest.update(Path(__file__).read_bytes())
    for tree in (resources.roles_dir(), resources.playbooks_dir()):
        _tree_digest(digest, tree)
    return digest.hexdigest()[:16]


def image_path(base: Path) -> Path:
    return images_dir() / key(base)


def _meta_path(root: Path) -> Path:
    return root.with_name(root.name + ".json")


def is_converged(root: Path | str) -> bool:
    return Path(root).parent == images_dir()


def personal_files(root: Path | str) -> list[str]:
    """Files (relative to the image root) that name the builder."""
    try:
        return json.loads(_meta_path(Path(root)).read_text())["personal_files"]
    except (FileNotFoundError, ValueError, KeyError):
        return []


def ready(root: Path) -> bool:
    return (root / "etc/os-release").exists() and _meta_path(root).exists()


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    with open(paths.ensure(images_dir()) / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def ensure_image(base: Path, echo=print) -> Path:
    """The converged image over ``base``, built first when its key changed."""
    target = image_path(base)
    if ready(target):
        return target
    with _lock():
        if not ready(target):
            for stale in images_dir().glob(".build-*"):  # left by a crashed build
                shutil.rmtree(stale, ignore_errors=True)
            echo("Building the converged sandbox image (`hop setup` on a builder host; cached)...")
            _build(base, target)
        drop_other_images(keep=target)
    return target


def _build(base: Path, target: Path) -> None:
    from . import hosts

    builder_disk = disk.disk_for(network.netns_name(BUILDER_INDEX))
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=images_dir()))
    network.ensure_bridge()
    pid = None
    try:
        disk.wipe(builder_disk)
        host = hosts._boot(BUILDER_INDEX, base, hosts._ensure_key())
        pid = host.pid
        hosts._wait_ready([host])
        _setup(host)
        _preload(host)
        hosts._power_off(BUILDER_INDEX, pid)
        pid = None
        root = disk.attach(builder_disk, base)
        run("cp", "-a", "--one-file-system", f"{root}/.", str(work))
        disk.detach(builder_disk)
        found = _clean(work, [BUILDER_NAME, host.name])
        work.rename(target)
        _meta_path(target).write_text(json.dumps({"base": str(base), "personal_files": found}))
    finally:
        hosts._remove(BUILDER_INDEX, pid)
        shutil.rmtree(work, ignore_errors=True)


def _setup(host) -> None:
    """Run the setup playbook on the builder, as `hop setup` does (not recorded)."""
    from hop3 import wheelhouse
    from hop3.runner import many_calls_strategy, run_playbook

    from .hosts import _inventory_vars

    archive, sha256 = wheelhouse.ensure_wheelhouse()
    with tempfile.TemporaryDirectory(prefix="hop3-converge-") as tmp:
        inventory = Path(tmp) / "inventory.json"
        inventory.write_text(
            json.dumps({"all": {"hosts": {BUILDER_NAME: _inventory_vars(host)}}}, indent=2)
        )
        result = run_playbook(
            "setup",
            inventory=inventory,
            limit=BUILDER_NAME,
            verb="setup",
            extravars={
                **wheelhouse.setup_extravars(archive, sha256),
                "hop3_setup_strategy": many_calls_strategy(),
            },
            quiet=True,
            record=False,
        )
    if not result.ok:
        why = "; ".join(f"{f.task}: {f.message}" for f in result.failures) or result.status
        raise HopError(
            f"Building the converged sandbox image failed: `hop setup` on the builder host "
            f"failed ({why}; run files in {result.run_dir}).",
            "Fix the setup (run `hop sandbox up && hop setup -t sandbox` to see it fail), "
            "or boot bare hosts with `hop sandbox up --image bare`.",
        )


def _preload(host) -> None:
    """Install PRELOADED_PACKAGES on the builder, as their roles would."""
    from .hosts import ssh_command

    command = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q",
               "--no-install-recommends", *PRELOADED_PACKAGES]  # fmt: skip
    proc = subprocess.run(
        ssh_command(host, *command), capture_output=True, text=True, timeout=_INSTALL_TIMEOUT
    )
    if proc.returncode != 0:
        tail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise HopError(
            f"Building the converged sandbox image failed: installing "
            f"{', '.join(PRELOADED_PACKAGES)} on the builder host exited {proc.returncode}: {tail}",
            "Check that this machine reaches Debian's package mirror, then run the command again.",
        )


def _clean(root: Path, names: list[str]) -> list[str]:
    """Empty one host's history in the copied tree; the files that name the builder."""
    for rel in _EMPTIED_FILES:
        path = root / rel
        if path.is_file():
            subprocess.run(["chattr", "-a", str(path)], capture_output=True)
            path.write_text("")
    for rel in _REMOVED:
        path = root / rel
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    pattern = "\\|".join(names)
    trees = [str(root / t) for t in _PERSONAL_TREES if (root / t).is_dir()]
    proc = subprocess.run(
        ["grep", "-rlI", "--no-messages", "-e", pattern, *trees], capture_output=True, text=True
    )
    return sorted(str(Path(p).relative_to(root)) for p in proc.stdout.splitlines())


def personalise(root: Path, image_root: Path | str, name: str) -> None:
    """Make a host's files that named the builder name ``name`` (on its mounted root)."""
    for rel in personal_files(image_root):
        path = root / rel
        try:
            text = path.read_text()
        except (FileNotFoundError, UnicodeDecodeError):
            continue
        path.write_text(text.replace(BUILDER_NAME, name))


def drop_other_images(keep: Path) -> None:
    """Remove converged images of older keys that no host disk lies over."""
    under_disks = disk.overlay_lower_dirs(disk.mountinfo())
    for entry in images_dir().iterdir():
        stale = entry.is_dir() and entry != keep and not entry.name.startswith(".")
        if stale and str(entry) not in under_disks:
            shutil.rmtree(entry, ignore_errors=True)
            _meta_path(entry).unlink(missing_ok=True)
