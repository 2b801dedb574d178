"""The app catalog: F/OSS apps packaged as data, installed by the deploy pipeline.

``find_entry``/``entry_paths`` locate entries, ``load_entry`` parses one,
``render`` writes the app directory that ``hop deploy`` builds.
"""

from hop3.catalog.entry import CatalogEntry, CatalogEntryError, load_entry, parse_entry
from hop3.catalog.render import hop3_toml, render
from hop3.catalog.store import catalog_dirs, entry_paths, find_entry, lint_entry

__all__ = [
    "CatalogEntry",
    "CatalogEntryError",
    "catalog_dirs",
    "entry_paths",
    "find_entry",
    "hop3_toml",
    "lint_entry",
    "load_entry",
    "parse_entry",
    "render",
]
