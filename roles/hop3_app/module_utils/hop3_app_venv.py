"""The build cache of Python apps: one venv per content key, shared by releases.

A Python app built from a requirements.txt gets its venv in
``/srv/hop3/apps/APP/venvs/<key>/``, where <key> digests everything the venv's
content depends on (``venv_key``). A release links to it (``.venv ->
../../venvs/<key>``), so a code-only redeploy reuses the venv and runs no uv at
all. A venv is built under a temporary name and renamed into place with its
marker file written: a directory at venvs/<key> without the marker (a build
killed by hand, a disk full) is never used; it is removed and rebuilt.

Everything here runs on the managed host as root, inside a module.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import re
import secrets
import shlex
import shutil
import stat
import subprocess

# Bump when the way venvs are built changes: every app then builds a new one.
VENV_FORMAT = 1
MARKER = ".hop3-venv-complete"
PYTHON = "/usr/bin/python3"
KEY_RE = re.compile(r"^[0-9a-f]{16}$")
# Config variables that change what uv installs (another index, other options).
INSTALL_CONFIG_PREFIXES = ("UV_", "PIP_")
# A requirements.txt line that installs or reads something of the release itself
# (-r other.txt, -e ., ./pkg, file:..., --find-links DIR): its venv depends on more than this file.
LOCAL_REQUIREMENT_RE = re.compile(
    r"^(-r|-c|-e|-f|--requirement|--constraint|--editable|--find-links|\.|/|~|file:)"
    r"|\sfile:|@\s*(\.|/|file:)"
)


def venvs_dir(paths):
    return os.path.join(paths.root, "venvs")


def cacheable(requirements):
    """Whether a requirements.txt (bytes) names only packages of an index, so
    that its venv depends on the file and not on the rest of the source."""
    for raw in requirements.decode(errors="replace").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#") and LOCAL_REQUIREMENT_RE.search(line):
            return False
    return True


# A build command that may install into .venv (uv pip, pip, a path into it):
# a shared venv would change under the releases that use it.
VENV_WRITER_RE = re.compile(r"(^|[\s;&|(/])(uv|pip|pip3|easy_install)(\s|$)|\.venv\b|VIRTUAL_ENV")


def writes_venv(commands):
    """Whether one of the app's build commands may change its venv."""
    return any(VENV_WRITER_RE.search(command) for command in commands)


def venv_key(requirements, python, uv, packages, config):
    """The digest of what a venv's content depends on: requirements.txt's bytes,
    the interpreter, uv, the build packages (headers, libraries a wheel is built
    against), the config variables that steer uv (UV_*, PIP_*), and our format."""
    identity = {
        "format": VENV_FORMAT,
        "requirements": hashlib.sha256(requirements).hexdigest(),
        "python": python,
        "uv": uv,
        "packages": sorted(set(packages)),
        "config": {k: v for k, v in config.items() if k.startswith(INSTALL_CONFIG_PREFIXES)},
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def tool_version(args):
    """The first line a program prints for its version ("" when it cannot run)."""
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
    except OSError:
        return ""
    return (proc.stdout or proc.stderr).strip().splitlines()[0] if proc.returncode == 0 else ""


def python_version():
    return tool_version([PYTHON, "-c", "import sys; print(sys.version)"])


def read_requirements(path):
    """requirements.txt's bytes, or None when it is not a regular file: the app's
    user owns the release (a before-build command could leave a link or a FIFO
    there), and root must not follow it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return handle.read()


def is_complete(venv):
    return os.path.isfile(os.path.join(venv, MARKER))


def ensure_venvs_dir(paths):
    """venvs/ in the app's root (which is root's), owned by the app's user,
    who builds the venvs in it; its processes only read them."""
    folder = venvs_dir(paths)
    if not os.path.isdir(folder):
        os.mkdir(folder, 0o750)
    shutil.chown(folder, paths.app, paths.app)
    os.chmod(folder, 0o750)
    return folder


def usable(paths, key):
    """The venv of ``key`` when it is complete; an incomplete one is removed."""
    venv = os.path.join(venvs_dir(paths), key)
    if is_complete(venv):
        return venv
    if os.path.lexists(venv):
        remove(venv)
    return None


def build_dir(paths, key):
    """A fresh temporary path under venvs/ for building the venv of ``key``."""
    return os.path.join(venvs_dir(paths), ".build-%s-%s" % (key, secrets.token_hex(4)))


def build_command(uv, venv):
    """The shell command (run as the app's user in the release) that builds a
    venv at ``venv`` from the release's requirements.txt. --relocatable: the
    scripts' shebangs must not name the temporary path the venv is built at."""
    python = shlex.quote(os.path.join(venv, "bin", "python"))
    return "%s venv --quiet --relocatable --python %s %s && %s pip install --python %s " \
        "-r requirements.txt" % (uv, PYTHON, shlex.quote(venv), uv, python)  # fmt: skip


def complete(paths, key, built, inputs):
    """Write the marker into a venv just built and rename it into place."""
    # The app's user owns the venv (its build ran the packages' code): root
    # follows no link of theirs, neither the directory nor the marker.
    folder = os.open(built, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(MARKER, dir_fd=folder)
        fd = os.open(MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644,
                     dir_fd=folder)  # fmt: skip
        with os.fdopen(fd, "w") as handle:
            json.dump({"key": key, **inputs}, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(fd)
        user = pwd.getpwnam(paths.app)
        os.chown(MARKER, user.pw_uid, user.pw_gid, dir_fd=folder, follow_symlinks=False)
    finally:
        os.close(folder)
    venv = os.path.join(venvs_dir(paths), key)
    os.rename(built, venv)
    return venv


def link(paths, release_dir, venv):
    """Point the release's .venv at the shared venv (a relative symlink, so a
    copy of the app's directory elsewhere still resolves it)."""
    dot_venv = os.path.join(release_dir, ".venv")
    if os.path.lexists(dot_venv):
        remove(dot_venv)  # a .venv shipped with the source is not used
    os.symlink(os.path.relpath(venv, release_dir), dot_venv)
    user = pwd.getpwnam(paths.app)
    os.lchown(dot_venv, user.pw_uid, user.pw_gid)


def remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        os.unlink(path)


def prune(paths, keep):
    """Remove the venvs no listed release uses, and what killed builds left."""
    folder = venvs_dir(paths)
    if not os.path.isdir(folder):
        return []
    removed = []
    for name in sorted(os.listdir(folder)):
        if name not in keep:
            remove(os.path.join(folder, name))
            removed.append(name)
    return removed


def keys_in_use(state):
    return {r["venv"] for r in state["releases"] if KEY_RE.fullmatch(str(r.get("venv") or ""))}
