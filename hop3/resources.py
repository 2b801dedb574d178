"""Locate the Ansible content (playbooks, roles, catalog) that Hop3 runs.

An installed wheel carries it inside the package (hop3/_content/); a source
checkout or an editable install uses the folders at the repository root.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def content_root() -> Path:
    bundled = _PACKAGE_DIR / "_content"
    if (bundled / "playbooks").is_dir():
        return bundled
    return _PACKAGE_DIR.parent


def playbooks_dir() -> Path:
    return content_root() / "playbooks"


def roles_dir() -> Path:
    return content_root() / "roles"


def catalog_dir() -> Path:
    return content_root() / "catalog"


def playbook(name: str) -> Path:
    """Absolute path of playbooks/<name>.yml."""
    return playbooks_dir() / f"{name}.yml"
