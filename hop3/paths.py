"""Where Hop3 keeps its files on the user's machine (XDG base directories).

Each location can be moved with an environment variable, which is how the
tests give every run its own config and state without touching the user's.
"""

from __future__ import annotations

import os
from pathlib import Path


def _xdg(env_name: str, xdg_name: str, fallback: str) -> Path:
    explicit = os.environ.get(env_name)
    if explicit:
        return Path(explicit)
    base = os.environ.get(xdg_name) or str(Path.home() / fallback)
    return Path(base) / "hop3"


def config_dir() -> Path:
    """The user's inventory and settings (HOP3_CONFIG_DIR)."""
    return _xdg("HOP3_CONFIG_DIR", "XDG_CONFIG_HOME", ".config")


def state_dir() -> Path:
    """Run history and per-run private data dirs (HOP3_STATE_DIR)."""
    return _xdg("HOP3_STATE_DIR", "XDG_STATE_HOME", ".local/state")


def cache_dir() -> Path:
    """Rebuildable things: the sandbox image, package caches (HOP3_CACHE_DIR)."""
    return _xdg("HOP3_CACHE_DIR", "XDG_CACHE_HOME", ".cache")


def ensure(path: Path, mode: int = 0o700) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    return path
