"""Turn a catalog entry into an app directory the generic deploy pipeline builds.

The directory holds a ``hop3.toml`` (with ``[metadata] catalog`` naming the
entry), the package manager's file (``requirements.txt`` pinning the PyPI
release, or a ``package.json`` pinning the npm one) and the entry's
``[files]``. Deploying it is an ordinary ``hop deploy``; a backup keeps it as
the app's source, so a restore elsewhere rebuilds the same version.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import tomli_w

from hop3.catalog.entry import CatalogEntry

# Catalog runtimes the deploy pipeline knows under another name.
APP_RUNTIMES = {"ruby": "generic"}


def render(
    entry: CatalogEntry, dest: Path, *, name: str, version: str, domains: list[str] | None = None
) -> Path:
    """Write the app directory for ``entry`` at ``version`` into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel, text in sorted(entry.files.items()):
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if entry.source.kind == "pypi":
        lines = [f"{entry.source.package}=={version}", *_extra(entry, version)]
        (dest / "requirements.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif entry.source.kind == "npm":
        (dest / "package.json").write_text(_package_json(entry, version), encoding="utf-8")
    toml = tomli_w.dumps(hop3_toml(entry, name=name, version=version, domains=domains or []))
    (dest / "hop3.toml").write_text(_HEADER + toml, encoding="utf-8")
    return dest


_HEADER = "# Written by `hop catalog` from the catalog entry; edits are replaced on upgrade.\n"


def _package_json(entry: CatalogEntry, version: str) -> str:
    dependencies = {entry.source.package: version}
    for item in _extra(entry, version):
        package, _, pinned = item.rpartition("@")
        dependencies[package] = pinned
    data = {
        "name": f"hop3-catalog-{entry.name}",
        "version": "0.0.0",
        "private": True,
        "dependencies": dependencies,
    }
    return json.dumps(data, indent=2) + "\n"


def _extra(entry: CatalogEntry, version: str) -> list[str]:
    return [*entry.source.extra, *entry.version_extra.get(version, [])]


def hop3_toml(entry: CatalogEntry, *, name: str, version: str, domains: list[str]) -> dict:
    """The hop3.toml of an installed entry, as a dict."""
    spec: dict[str, Any] = {
        "metadata": {
            "id": name,
            "version": version,
            "title": entry.title,
            "description": entry.description,
            "license": entry.license,
            "website": entry.upstream,
            "catalog": entry.name,
        },
    }
    build: dict[str, Any] = {"runtime": APP_RUNTIMES.get(entry.runtime, entry.runtime)}
    packages = [*entry.source.debian, *entry.build.get("packages", [])]
    if packages:
        build["packages"] = packages
    for key in ("before-build", "build"):
        if entry.build.get(key):
            build[key] = list(entry.build[key])
    spec["build"] = build
    run: dict[str, Any] = {}
    processes = dict(entry.processes)
    release = processes.pop("release", None)
    if entry.data_paths:
        # The data folders exist before the app's first start (and after a restore).
        folders = " ".join(f'"$HOP3_SHARED_DIR"/{shlex.quote(p)}' for p in entry.data_paths)
        prepare = f"mkdir -p {folders}"
        release = f"{prepare} && {release}" if release else prepare
    if "web" in processes:
        run["start"] = processes.pop("web")
    if release:
        run["release"] = release
    if processes:
        run["workers"] = processes
    spec["run"] = run
    if entry.env:
        spec["env"] = entry.env
    if entry.healthcheck:
        spec["healthcheck"] = entry.healthcheck
    if domains:
        spec["domains"] = {"list": domains}
    if entry.services:
        spec["addons"] = [{"type": service} for service in entry.services]
    if entry.data_paths:
        spec["backup"] = {"paths": entry.data_paths, "exclude": entry.data_exclude}
    for section, table in entry.passthrough.items():
        spec[section] = table
    return spec
