"""Where Ansible's built module payloads are kept between runs
(plugins/callback/hop3_ansiballz_cache.py explains why).

The directory's name is a digest of all a payload is made of, so a changed
module, module_utils file, ansible-core or Python never meets an old payload.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

from hop3 import paths, resources

KEEP = 3  # cache directories kept (other Hop3 versions, checkouts)
_key: str | None = None


def _sources(root: Path) -> list[Path]:
    found = []
    for pattern in ("roles/*/library/*.py", "roles/*/module_utils/*.py", "plugins/**/*.py"):
        found += root.glob(pattern)
    return sorted(p for p in found if "__pycache__" not in p.parts)


def key() -> str:
    """The digest of ansible-core, Python and Hop3's module sources."""
    global _key
    if _key is None:
        import ansible.release

        root = resources.content_root()
        sha = hashlib.sha256(f"{ansible.release.__version__}\0{sys.version}\0{root}\0".encode())
        for path in _sources(root):
            sha.update(str(path.relative_to(root)).encode() + b"\0")
            sha.update(path.read_bytes() + b"\0")
        _key = sha.hexdigest()[:32]
    return _key


def cache_dir() -> Path:
    """This content's cache directory (made, mode 0700); older ones are pruned."""
    base = paths.ensure(paths.cache_dir() / "ansiballz")
    base.chmod(0o700)
    mine = base / key()
    mine.mkdir(mode=0o700, exist_ok=True)
    others = sorted((p for p in base.iterdir() if p.is_dir() and p != mine),
                    key=lambda p: p.stat().st_mtime, reverse=True)  # fmt: skip
    for old in others[KEEP - 1 :]:
        shutil.rmtree(old, ignore_errors=True)
    mine.touch()
    return mine
