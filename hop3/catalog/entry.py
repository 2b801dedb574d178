"""A catalog entry: one F/OSS app packaged as data (``catalog/<name>.toml``).

``parse_entry`` checks a file against the schema below and returns a
``CatalogEntry``; every problem is reported at once, like an app's hop3.toml.
An entry never holds code of its own: it says where the app comes from
(PyPI, npm, Debian, or files in the entry) and how the generic deploy
pipeline runs it (``hop3.catalog.render`` turns it into an app directory).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hop3.appspec.model import Problems
from hop3.appspec.validate import (
    app_name_error,
    command_error,
    health_path_error,
    normalize_rel_path,
    package_error,
    show,
)
from hop3.errors import HopError

RUNTIMES = ("python", "node", "php", "ruby", "generic")
SERVICES = ("postgres", "mariadb", "redis")
SOURCE_KINDS = ("pypi", "npm", "debian", "files")
# Sections copied as they are into the app's hop3.toml (checked there).
PASSTHROUGH = ("proxy", "php", "limits", "waf")
TOP_KEYS = {
    "name",
    "title",
    "description",
    "upstream",
    "license",
    "version",
    "runtime",
    "services",
    "source",
    "versions",
    "processes",
    "env",
    "data",
    "healthcheck",
    "smoke",
    "upgrade",
    "files",
    "build",
    "install",
    *PASSTHROUGH,
}
VERSION_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+~_-]{0,63}")
# PyPI and npm package names (npm: optionally @scope/name).
PYPI_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?(\[[A-Za-z0-9,_-]+\])?")
NPM_RE = re.compile(r"(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*")
REQUIREMENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\[\],-]*\s*(==|>=|<=|~=|<|>)[^\s;#]+")
NPM_DEP_RE = re.compile(r"((@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*)@([0-9A-Za-z.^~<>=*+-]+)")
SPDX_RE = re.compile(r"[A-Za-z0-9.+-]+( (AND|OR|WITH) [A-Za-z0-9.+-]+)*")


@dataclass
class Source:
    kind: str  # one of SOURCE_KINDS
    package: str | None = None  # pypi/npm package name
    debian: list[str] = field(default_factory=list)  # Debian packages (kind "debian")
    extra: list[str] = field(default_factory=list)  # more pinned requirements/dependencies


@dataclass
class CatalogEntry:
    name: str
    title: str
    description: str
    upstream: str
    license: str
    version: str
    runtime: str
    source: Source
    processes: dict[str, str]  # "web", workers, and "release"
    smoke_path: str
    smoke_contains: str
    versions: dict[str, str] = field(default_factory=dict)  # version -> upgrade notes
    # version -> pinned requirements that version needs besides source.extra
    # (an old release that breaks with today's newest dependencies)
    version_extra: dict[str, list[str]] = field(default_factory=dict)
    services: list[str] = field(default_factory=list)
    env: dict[str, Any] = field(default_factory=dict)
    data_paths: list[str] = field(default_factory=list)
    data_exclude: list[str] = field(default_factory=list)
    healthcheck: dict[str, Any] = field(default_factory=dict)
    upgrade_notes: str = ""
    install_notes: str = ""
    files: dict[str, str] = field(default_factory=dict)
    build: dict[str, list[str]] = field(default_factory=dict)
    passthrough: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: Path | None = None

    @property
    def pinnable(self) -> bool:
        """Whether `--to VERSION` can pick any release (Debian ships one version)."""
        return self.source.kind in ("pypi", "npm")


class CatalogEntryError(HopError):
    def __init__(self, path: Path, problems: Problems):
        self.problems = list(problems.items)
        lines = [f"The catalog entry {path} has {len(self.problems)} problem(s):"]
        lines += [f"  {p}" for p in self.problems]
        super().__init__("\n".join(lines), hint="Fix the entry; `hop catalog lint` checks all.")


class _Reader:
    """Typed access to one table of the entry, recording problems."""

    def __init__(self, file: str, table: dict, section: str, problems: Problems):
        self.file, self.table, self.section, self.problems = file, table, section, problems

    def where(self, key: str) -> str:
        return f"[{self.section}] {key}" if self.section else key

    def add(self, key: str, message: str) -> None:
        self.problems.add(self.file, self.where(key), message)

    def keys(self, allowed) -> None:
        for key in self.table:
            if key not in allowed:
                self.add(key, f"is not a known key (known: {', '.join(sorted(allowed))})")

    def string(self, key: str, required: bool = False, pattern: re.Pattern | None = None):
        value = self.table.get(key)
        if value is None:
            if required:
                self.add(key, "is required")
            return None
        if not isinstance(value, str) or not value.strip():
            self.add(key, f"must be a non-empty string, got {show(value)}")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.add(key, f"{show(value)} is not valid here")
            return None
        return value

    def strings(self, key: str) -> list[str]:
        value = self.table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.add(key, f"must be a list of strings, got {show(value)}")
            return []
        return value

    def sub(self, key: str) -> _Reader:
        value = self.table.get(key, {})
        if not isinstance(value, dict):
            self.add(key, f"must be a table, got {show(value)}")
            value = {}
        return _Reader(self.file, value, key, self.problems)


def load_entry(path: Path) -> CatalogEntry:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise HopError(f"Cannot read the catalog entry {path}: {exc}.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise HopError(
            f"The catalog entry {path} is not valid TOML: {exc}.",
            "Fix its syntax; `hop catalog lint` checks all entries.",
        ) from exc
    return parse_entry(data, path)


def parse_entry(data: dict[str, Any], path: Path) -> CatalogEntry:
    problems = Problems()
    top = _Reader(path.name, data, "", problems)
    top.keys(TOP_KEYS)
    name = top.string("name", required=True)
    if name and app_name_error(name):
        top.add("name", app_name_error(name))
    if name and path.stem != name:
        top.add("name", f"must match the file name ({path.stem!r})")
    version = top.string("version", required=True, pattern=VERSION_RE)
    runtime = top.string("runtime", required=True)
    if runtime and runtime not in RUNTIMES:
        top.add("runtime", f"must be one of {', '.join(RUNTIMES)}, got {show(runtime)}")
    upstream = top.string("upstream", required=True)
    if upstream and not re.fullmatch(r"https?://[^\s\"'<>]+", upstream):
        top.add("upstream", "must be an http(s) URL")
    license_ = top.string("license", required=True, pattern=SPDX_RE)
    services = top.strings("services")
    for service in services:
        if service not in SERVICES:
            top.add("services", f"{show(service)} is not one of {', '.join(SERVICES)}")
    if len(set(services)) != len(services):
        top.add("services", "lists a service twice")

    source = _source(top.sub("source"))
    versions, version_extra = _versions(top.sub("versions"), version, source)
    processes = _processes(top.sub("processes"), runtime)
    env = _env(top.sub("env"))
    data_paths, data_exclude = _data(top.sub("data"))
    healthcheck = _healthcheck(top.sub("healthcheck"))
    smoke = top.sub("smoke")
    smoke.keys({"path", "contains"})
    smoke_path = smoke.string("path", required=True)
    if smoke_path and health_path_error(smoke_path):
        smoke.add("path", health_path_error(smoke_path))
    smoke_contains = smoke.string("contains", required=True)
    upgrade = top.sub("upgrade")
    upgrade.keys({"notes"})
    install = top.sub("install")
    install.keys({"notes"})
    files = _files(top.sub("files"))
    build = _build(top.sub("build"))
    passthrough = {}
    for section in PASSTHROUGH:
        if section in data:
            passthrough[section] = top.sub(section).table
    if (runtime, source.kind) in (("php", "pypi"), ("python", "npm"), ("node", "pypi")):
        top.add("runtime", f"{runtime} cannot run a {source.kind} package")
    if problems:
        raise CatalogEntryError(path, problems)
    return CatalogEntry(
        name=name,
        title=top.string("title", required=True) or "",
        description=top.string("description", required=True) or "",
        upstream=upstream,
        license=license_,
        version=version,
        runtime=runtime,
        source=source,
        processes=processes,
        smoke_path=smoke_path,
        smoke_contains=smoke_contains,
        versions=versions,
        version_extra=version_extra,
        services=services,
        env=env,
        data_paths=data_paths,
        data_exclude=data_exclude,
        healthcheck=healthcheck,
        upgrade_notes=upgrade.string("notes") or "",
        install_notes=install.string("notes") or "",
        files=files,
        build=build,
        passthrough=passthrough,
        path=path,
    )


def _source(s: _Reader) -> Source:
    s.keys({*SOURCE_KINDS, "extra"})
    kinds = [k for k in SOURCE_KINDS if k in s.table]
    if len(kinds) != 1:
        s.add("", f"must name exactly one of {', '.join(SOURCE_KINDS)}")
        return Source(kind="files")
    kind = kinds[0]
    source = Source(kind=kind, extra=s.strings("extra"))
    _check_extra(s, kind, source.extra)
    if kind == "pypi":
        source.package = s.string("pypi", pattern=PYPI_RE)
    elif kind == "npm":
        source.package = s.string("npm", pattern=NPM_RE)
    elif kind == "debian":
        source.debian = s.strings("debian")
        for item in source.debian:
            if package_error(item):
                s.add("debian", package_error(item))
        if not source.debian:
            s.add("debian", "must list at least one package")
    elif s.table["files"] is not True:
        s.add("files", "must be true (the app is made of the entry's [files])")
    return source


def _versions(s: _Reader, version: str | None, source: Source):
    """[versions]: version = "notes", or { notes = "...", extra = [pins] }."""
    versions, extra = {}, {}
    for key, value in s.table.items():
        if not VERSION_RE.fullmatch(key):
            s.add(key, "is not a version")
            continue
        if isinstance(value, dict):
            table = _Reader(s.file, value, f"versions.{key}", s.problems)
            table.keys({"notes", "extra"})
            value = table.string("notes", required=True) or ""
            extra[key] = table.strings("extra")
            _check_extra(table, source.kind, extra[key])
        if not isinstance(value, str):
            s.add(key, f"must be a string (upgrade notes) or a table, got {show(value)}")
        else:
            versions[key] = value
    if version and version not in versions:
        s.add(version, "the current version must be listed in [versions] with its notes")
    return versions, extra


def _check_extra(s: _Reader, kind: str, extra: list[str]) -> None:
    if kind in ("debian", "files") and extra:
        s.add("extra", f"is only for pypi and npm sources, not {kind}")
    pattern, example = (
        (REQUIREMENT_RE, "a pinned requirement like 'gunicorn==22.0.0'")
        if kind == "pypi"
        else (NPM_DEP_RE, "'package@version'")
    )
    for item in extra:
        if kind in ("pypi", "npm") and not pattern.fullmatch(item):
            s.add("extra", f"{show(item)} must be {example}")


def _processes(s: _Reader, runtime: str | None) -> dict[str, str]:
    processes = {}
    for key, command in s.table.items():
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,29}", key):
            s.add(key, "is not a process name (lowercase letters, digits, '-')")
        elif command_error(command):
            s.add(key, command_error(command))
        else:
            processes[key] = command
    # A PHP app's web process is PHP-FPM, made by the deploy pipeline.
    serves = runtime == "php" or any(k != "release" for k in processes)
    if not serves and not s.problems.incomplete:
        s.add("web", "is required (or another process)")
    return processes


def _env(s: _Reader) -> dict[str, Any]:
    env = {}
    for key, value in s.table.items():
        if not re.fullmatch(r"[A-Z_][A-Z0-9_]{0,127}", key):
            s.add(key, "is not a config variable name (A-Z, 0-9, _)")
        elif isinstance(value, str) or (isinstance(value, dict) and "generate" in value):
            env[key] = value
        else:
            rule = '{ generate = "hex", length = 32 }'
            s.add(key, f"must be a string or {rule}, got {show(value)}")
    return env


def _data(s: _Reader) -> tuple[list[str], list[str]]:
    s.keys({"paths", "exclude"})
    paths = []
    for item in s.strings("paths"):
        try:
            paths.append(normalize_rel_path(item))
        except ValueError as exc:
            s.add("paths", str(exc))
    return paths, s.strings("exclude")


def _healthcheck(s: _Reader) -> dict[str, Any]:
    s.keys({"path", "contains", "status", "timeout", "retries"})
    path = s.string("path")
    if path and health_path_error(path):
        s.add("path", health_path_error(path))
    return dict(s.table)


def _files(s: _Reader) -> dict[str, str]:
    files = {}
    for key, text in s.table.items():
        try:
            rel = normalize_rel_path(key)
        except ValueError as exc:
            s.add(key, str(exc))
            continue
        if rel in ("hop3.toml", "Procfile", "requirements.txt", "package.json"):
            s.add(key, "is written by the catalog itself")
        elif not isinstance(text, str):
            s.add(key, f"must be the file's text, got {show(text)}")
        else:
            files[rel] = text
    return files


def _build(s: _Reader) -> dict[str, list[str]]:
    s.keys({"packages", "before-build", "build"})
    build = {key: s.strings(key) for key in ("packages", "before-build", "build") if key in s.table}
    for item in build.get("packages", []):
        if package_error(item):
            s.add("packages", package_error(item))
    return build
