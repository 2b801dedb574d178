"""The sandbox base image: a Debian 12 root filesystem built once with
debootstrap and cached (outside any checkout) under the user's cache dir.

The image is keyed by a hash of its recipe, so changing the recipe, or the
machine's CA bundle that it trusts, builds a new one and drops the old.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hop3 import paths
from hop3.errors import HopError

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = [
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "python3-apt",
    "ca-certificates",
    "iproute2",
    "sudo",
    "curl",
    "less",
    "libnss-myhostname",
]
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Where the host's shared build cache (uv, pip, npm) is bound inside the hosts.
BUILD_CACHE_MOUNT = "/var/cache/hop3-build"

_SOURCES = f"""\
deb {MIRROR} {SUITE} main
deb {MIRROR} {SUITE}-updates main
deb http://deb.debian.org/debian-security {SUITE}-security main
"""

# Package clients inside the hosts trust the same CA bundle as this machine.
_TRUST_FILES = {
    "etc/pip.conf": "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n",
    "etc/npmrc": "cafile=/etc/ssl/certs/ca-certificates.crt\n",
    "etc/uv/uv.toml": "native-tls = true\n",
    "etc/environment": (
        "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt\n"
        "REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt\n"
        "NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt\n"
    ),
    # Keep downloaded packages: the archives dir is a cache bound from outside.
    "etc/apt/apt.conf.d/10hop3-sandbox": 'Binary::apt::APT::Keep-Downloaded-Packages "true";\n',
}


def _host_ca() -> bytes:
    return HOST_CA_BUNDLE.read_bytes() if HOST_CA_BUNDLE.exists() else b""


def recipe_hash() -> str:
    digest = hashlib.sha256()
    for part in (SUITE, MIRROR, *PACKAGES, _SOURCES, *sorted(_TRUST_FILES.items())):
        digest.update(str(part).encode())
    digest.update(Path(__file__).read_bytes())
    digest.update(_host_ca())
    return digest.hexdigest()[:16]


def images_dir() -> Path:
    return paths.cache_dir() / "sandbox" / "images"


def image_path() -> Path:
    return images_dir() / recipe_hash()


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    lock_file = paths.ensure(images_dir()) / ".lock"
    with open(lock_file, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def ensure_image(echo=print) -> Path:
    """Return the cached image, building it first if the recipe changed."""
    target = image_path()
    if (target / "etc/os-release").exists():
        return target
    with _lock():
        if (target / "etc/os-release").exists():
            return target
        echo("Building the sandbox image (Debian 12, about a minute; cached afterwards)...")
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=images_dir()))
        try:
            _debootstrap(work)
            _customise(work)
            work.rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


def _debootstrap(root: Path) -> None:
    cache = paths.ensure(paths.cache_dir() / "sandbox" / "debootstrap")
    args = [
        "debootstrap",
        "--variant=minbase",
        f"--cache-dir={cache}",
        f"--include={','.join(PACKAGES)}",
        SUITE,
        str(root),
        MIRROR,
    ]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = " ".join(
            proc.stdout.strip().splitlines()[-3:] + proc.stderr.strip().splitlines()[-3:]
        )
        raise HopError(
            f"Building the sandbox image failed (debootstrap exited {proc.returncode}): {tail}",
            "Check that this machine can reach Debian's package mirror, then run "
            "`hop sandbox up` again.",
        )


def _customise(root: Path) -> None:
    (root / "etc/apt/sources.list").write_text(_SOURCES)
    for rel, text in _TRUST_FILES.items():
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
    ca = root / "usr/local/share/ca-certificates/hop3-host-ca.crt"
    ca.write_bytes(_host_ca())
    subprocess.run(["chroot", str(root), "update-ca-certificates"], capture_output=True, check=True)
    # nspawn sets the hostname and a fresh machine-id on every boot.
    (root / "etc/hostname").unlink(missing_ok=True)
    (root / "etc/machine-id").write_text("")
    (root / "etc/hosts").write_text(
        "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"
    )
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (root / BUILD_CACHE_MOUNT.lstrip("/")).mkdir(parents=True, exist_ok=True)
    subprocess.run(["chroot", str(root), "apt-get", "clean"], capture_output=True, check=True)


def drop_other_images(keep: Path) -> None:
    """Remove images of older recipes that no running host still uses."""
    in_use = _images_in_use()
    for entry in images_dir().iterdir():
        stale = entry.is_dir() and entry != keep and not entry.name.startswith(".")
        if stale and str(entry) not in in_use:
            shutil.rmtree(entry, ignore_errors=True)


def _images_in_use() -> set[str]:
    """Root directories of systemd-nspawn processes on this machine (any network)."""
    used = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if args and args[0].endswith("systemd-nspawn"):
            used.update(a.split("=", 1)[1] for a in args if a.startswith("--directory="))
    return used
