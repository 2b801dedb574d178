"""Pack an app's source into a reproducible .tar.gz for upload.

From a git work tree: the tracked and untracked-but-not-ignored files (so
.gitignore is honoured); from a git ref: that commit's tree; otherwise the
whole directory minus `.git`. The same files give the same bytes (sorted
names, zeroed times and owners), so the digest tells unchanged source apart.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hop3 import paths
from hop3.errors import HopError


@dataclass(frozen=True)
class Packed:
    archive: Path
    digest: str
    rev: str
    files: int


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True)


def _is_git_tree(root: Path) -> bool:
    proc = _git(root, "rev-parse", "--is-inside-work-tree")
    return proc.returncode == 0 and proc.stdout.strip() == b"true"


def _git_files(root: Path) -> list[str]:
    proc = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", ".")
    names = [n.decode() for n in proc.stdout.split(b"\0") if n]
    # ls-files also lists deleted-but-tracked files; keep what exists.
    return sorted(n for n in set(names) if os.path.lexists(root / n))


def _git_rev(root: Path) -> str:
    head = _git(root, "rev-parse", "--short=12", "HEAD")
    if head.returncode != 0:
        return "git:unborn"
    dirty = _git(root, "status", "--porcelain", "--", ".").stdout.strip()
    return "git:" + head.stdout.decode().strip() + ("-dirty" if dirty else "")


def _walk_files(root: Path) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        rel = Path(folder).relative_to(root)
        for name in files:
            found.append(str(rel / name) if str(rel) != "." else name)
        for name in dirs:
            if (Path(folder) / name).is_symlink():
                found.append(str(rel / name) if str(rel) != "." else name)
    return sorted(found)


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if info.isfile():
        info.mode = 0o755 if info.mode & 0o111 else 0o644
    return info


def _tar_files(root: Path, names: list[str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            tar.add(root / name, arcname=name, recursive=False, filter=_normalise)
    return buffer.getvalue()


def _tar_ref(root: Path, ref: str) -> bytes:
    proc = _git(root, "archive", "--format=tar", ref, "--", ".")
    if proc.returncode != 0:
        raise HopError(
            f"Cannot read git ref '{ref}' in {root}: {proc.stderr.decode().strip()}",
            "Pass a branch, tag or commit that exists (see `git log`).",
        )
    return proc.stdout


def pack(root: Path, ref: str | None = None) -> Packed:
    """Pack ``root`` (or ``ref`` of the git repo there) into the upload cache."""
    root = root.resolve()
    if ref:
        raw, rev, count = _tar_ref(root, ref), "git:" + _short(root, ref), -1
    elif _is_git_tree(root):
        names = _git_files(root)
        raw, rev, count = _tar_files(root, names), _git_rev(root), len(names)
    else:
        names = _walk_files(root)
        raw, rev, count = _tar_files(root, names), "dir", len(names)
    _refuse_escaping_links(root, raw)
    data = gzip.compress(raw, compresslevel=6, mtime=0)
    digest = hashlib.sha256(data).hexdigest()[:16]
    if rev == "dir":
        rev = "dir:" + digest[:12]
    cache = paths.ensure(paths.cache_dir() / "uploads")
    archive = cache / f"{digest}.tar.gz"
    if not archive.exists():
        # A name of its own: deploys running at once may pack the same source.
        fd, tmp = tempfile.mkstemp(dir=cache, prefix=f".{digest}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, archive)
    _prune(cache, keep=20)
    return Packed(archive=archive, digest=digest, rev=rev, files=count)


def escaping_links(members: list[tarfile.TarInfo]) -> list[str]:
    """The archive's links ("name -> target") that are absolute or lead out of
    its tree, following the archive's own links on the way (``a -> b/..`` with
    ``b -> ..`` escapes)."""
    links = {m.name.strip("/"): m.linkname for m in members if m.issym()}
    bad = []
    for member in members:
        if member.issym():
            parent = member.name.strip("/").split("/")[:-1]
            if _resolve(links, parent, member.linkname) is None:
                bad.append(f"{member.name} -> {member.linkname}")
        elif member.islnk() and _resolve({}, [], member.linkname) is None:
            bad.append(f"{member.name} -> {member.linkname}")
    return bad


def _resolve(links: dict[str, str], base: list[str], target: str, depth: int = 0):
    """The path components ``target`` leads to from folder ``base`` inside the
    tree, or None when it is absolute, climbs above the top, or loops."""
    if target.startswith("/") or depth > 40:
        return None
    parts = list(base)
    for name in target.split("/"):
        if name in ("", "."):
            continue
        if name == "..":
            if not parts:
                return None
            parts.pop()
            continue
        parts.append(name)
        link = links.get("/".join(parts))
        if link is not None:
            resolved = _resolve(links, parts[:-1], link, depth + 1)
            if resolved is None:
                return None
            parts = resolved
    return parts


def _refuse_escaping_links(root: Path, raw: bytes) -> None:
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        bad = escaping_links(tar.getmembers())
    if bad:
        shown = ", ".join(bad[:10]) + (f" (and {len(bad) - 10} more)" if len(bad) > 10 else "")
        raise HopError(
            f"The source in {root} holds {'a symlink' if len(bad) == 1 else 'symlinks'} "
            f"pointing outside the app's directory: {shown}. Hop3 refuses them: on the "
            "host the app, or nginx serving its static files, would read files that are "
            "not the app's.",
            "Replace each with the file it points to, or with a relative link to a file "
            "inside the app.",
        )


def _short(root: Path, ref: str) -> str:
    return _git(root, "rev-parse", "--short=12", ref).stdout.decode().strip() or ref


def _prune(cache: Path, keep: int) -> None:
    """Keep the newest archives; another hop may be pruning the same folder."""
    dated = []
    for archive in cache.glob("*.tar.gz"):
        try:
            dated.append((archive.stat().st_mtime, archive))
        except FileNotFoundError:
            continue
    for _, old in sorted(dated)[:-keep]:
        old.unlink(missing_ok=True)
