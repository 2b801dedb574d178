"""A sandbox host's disk: overlayfs over the cached read-only image, with the
host's changes in an upper dir on this machine's disk, so they survive a
reboot of the host (nspawn's --volatile=overlay keeps them in memory).

Layout, per machine: ``state_dir()/sandbox/disks/<machine>/``
``upper/`` (the changes), ``work/`` (overlayfs scratch), ``root/`` (the mount
that nspawn boots) and ``image`` (which image the changes apply to).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from hop3 import paths
from hop3.errors import HopError

from .shell import run

_MOUNTINFO = Path("/proc/self/mountinfo")
# overlayfs splits its options on these; a path holding one cannot be mounted.
_OPTION_SEPARATORS = (",", ":", "=")


@dataclass(frozen=True)
class Disk:
    base: Path

    @property
    def upper(self) -> Path:
        return self.base / "upper"

    @property
    def work(self) -> Path:
        return self.base / "work"

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def image_record(self) -> Path:
        return self.base / "image"

    def recorded_image(self) -> str | None:
        try:
            return self.image_record.read_text().strip()
        except FileNotFoundError:
            return None


def disks_dir() -> Path:
    return paths.state_dir() / "sandbox" / "disks"


def disk_for(machine: str) -> Disk:
    return Disk(disks_dir() / machine)


def overlay_options(disk: Disk, image: Path) -> str:
    """The mount options that put ``disk``'s changes over ``image``."""
    for path in (image, disk.upper, disk.work):
        bad = [c for c in _OPTION_SEPARATORS if c in str(path)]
        if bad:
            raise HopError(
                f"The sandbox cannot mount a host disk at {path}: overlayfs does not "
                f"accept {' '.join(repr(c) for c in bad)} in its paths.",
                "Point HOP3_STATE_DIR and HOP3_CACHE_DIR at directories whose paths "
                "hold no ',', ':' or '='.",
            )
    return f"lowerdir={image},upperdir={disk.upper},workdir={disk.work}"


def _unescape(field: str) -> str:
    """Undo the octal escapes (\\040 for a space) of /proc/*/mountinfo."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[tuple[str, str, dict[str, str]]]:
    """(mount point, filesystem type, super options) for each line of mountinfo."""
    mounts = []
    for line in text.splitlines():
        head, sep, tail = line.partition(" - ")
        if not sep:
            continue
        fields, rest = head.split(), tail.split()
        if len(fields) < 5 or len(rest) < 3:
            continue
        options = {}
        for option in rest[2].split(","):
            key, _, value = option.partition("=")
            options[key] = _unescape(value)
        mounts.append((_unescape(fields[4]), rest[0], options))
    return mounts


def overlay_lower_dirs(text: str) -> set[str]:
    """The lower dirs of every overlay mount in mountinfo ``text``."""
    lower = set()
    for _, fstype, options in parse_mountinfo(text):
        if fstype == "overlay" and "lowerdir" in options:
            lower.update(options["lowerdir"].split(":"))
    return lower


def mountinfo() -> str:
    return _MOUNTINFO.read_text()


def is_mounted(path: Path) -> bool:
    return any(point == str(path) for point, _, _ in parse_mountinfo(mountinfo()))


def attach(disk: Disk, image: Path) -> Path:
    """Mount ``disk`` over ``image`` and return the root to boot.

    A mount left by a crash is replaced; changes made over another image are
    dropped (they would not apply to this one).
    """
    detach(disk)
    if disk.recorded_image() not in (None, str(image)):
        wipe(disk)
    for path in (disk.upper, disk.work, disk.root):
        paths.ensure(path, 0o755)
    disk.image_record.write_text(f"{image}\n")
    run("mount", "-t", "overlay", "overlay", "-o", overlay_options(disk, image), str(disk.root))
    return disk.root


def detach(disk: Disk) -> None:
    """Unmount the disk's root if mounted (lazily when something still holds it)."""
    deadline = time.monotonic() + 5
    while is_mounted(disk.root):
        if run("umount", str(disk.root), check=False).returncode == 0:
            continue
        if time.monotonic() > deadline:
            run("umount", "--lazy", str(disk.root))
        else:
            time.sleep(0.1)


def wipe(disk: Disk) -> None:
    """Drop the disk: the host boots clean from the image next time."""
    detach(disk)
    shutil.rmtree(disk.base, ignore_errors=True)
    if disk.base.exists():
        raise HopError(
            f"Could not remove the sandbox disk {disk.base}.",
            "Check that no process uses it (`fuser -m` on its root), then run the command again.",
        )


def machines_with_disks() -> list[str]:
    """Names of the machines that have a disk dir (in use or left over)."""
    if not disks_dir().is_dir():
        return []
    return sorted(entry.name for entry in disks_dir().iterdir() if entry.is_dir())
