"""Where catalog entries are found, and the checks of `hop catalog lint`.

Entries come from the catalog shipped with Hop3 (``catalog/``) and from the
folders in ``HOP3_CATALOG_PATH`` (separated by ':'), which come first: an
organisation can add its own entries or replace one of ours.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hop3.catalog.entry import CatalogEntry, load_entry
from hop3.catalog.render import render
from hop3.errors import HopError
from hop3.resources import catalog_dir


def catalog_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("HOP3_CATALOG_PATH", "").split(os.pathsep) if p]
    return [*extra, catalog_dir()]


def entry_paths() -> dict[str, Path]:
    """Entry name -> file; the first folder that has a name wins."""
    found: dict[str, Path] = {}
    for folder in catalog_dirs():
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                found.setdefault(path.stem, path)
    return dict(sorted(found.items()))


def find_entry(name: str) -> CatalogEntry:
    paths = entry_paths()
    if name not in paths:
        known = ", ".join(paths) or "none"
        raise HopError(
            f"The catalog has no app named {name!r}.",
            f"`hop catalog list` shows them (known: {known}).",
        )
    return load_entry(paths[name])


def lint_entry(path: Path) -> CatalogEntry:
    """Check one entry: its schema, and that the app it renders is a valid app."""
    from hop3.appspec import load_app

    entry = load_entry(path)
    with tempfile.TemporaryDirectory(prefix="hop3-catalog-") as tmp:
        render(entry, Path(tmp) / entry.name, name=entry.name, version=entry.version)
        load_app(Path(tmp) / entry.name, entry.name)
    return entry
