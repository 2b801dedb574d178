"""The app model: what an app directory asks Hop3 to build and run.

``AppSpec`` is the validated, normalized result of reading ``hop3.toml``,
``Procfile`` and ``app.json`` (see ``hop3.appspec.load``). ``AppSpec.to_vars()``
is what the deploy playbook receives.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hop3.errors import HopError

RUNTIMES = ("python", "node", "go", "php", "static", "generic")
SCALE_MAX = 20


@dataclass
class Process:
    name: str
    command: str
    scale: int = 1  # 0..SCALE_MAX


@dataclass
class CronJob:
    name: str  # cron-1, cron-2 ... in the order of the Procfile
    schedule: str  # as written (whitespace normalized), e.g. "*/5 * * * *"
    on_calendar: str  # systemd OnCalendar=, e.g. "*-*-* *:00/5:00"
    command: str


@dataclass
class HealthCheck:
    path: str | None = None
    contains: str | None = None
    status: int | None = None
    timeout: int = 30
    retries: int = 3


def default_build() -> dict[str, Any]:
    return {
        "packages": [],
        "before_build": [],
        "build": [],
        "after_build": [],
        "node_build_script": False,
        "node_lockfile": False,
    }


def default_php() -> dict[str, Any]:
    """[php] of a php app. fpm: the web process is Hop3's PHP-FPM (FastCGI), not
    a command of the app's own (which speaks HTTP like any other)."""
    return {"root": ".", "extensions": [], "ini": {}, "fpm": True}


def default_limits() -> dict[str, Any]:
    return {"memory": None, "cpu": None, "tasks": 512}


def default_proxy() -> dict[str, Any]:
    # rate_limit: None or "<n>r/s" / "<n>r/m"; rate_limit_burst: None (one
    # second's or minute's worth, i.e. <n>) or an integer.
    return {
        "max_body_size": "10m",
        "websockets": True,
        "rate_limit": None,
        "rate_limit_burst": None,
    }


def default_waf() -> dict[str, Any]:
    """Secure by default: ModSecurity with the OWASP CRS blocks at paranoia level 1."""
    return {"enabled": True, "mode": "block", "paranoia": 1, "methods": [], "content_types": []}


def default_tls() -> dict[str, Any]:
    """HTTPS is opt-in: "off" serves plain HTTP on port 80 (see docs/security.md)."""
    return {"mode": "off", "hsts": False}


def default_backup() -> dict[str, Any]:
    return {"paths": [], "exclude": []}


@dataclass
class AppSpec:
    name: str
    root: Path
    runtime: str  # one of RUNTIMES
    version: str | None = None
    title: str | None = None
    catalog: str | None = None  # the catalog entry it was installed from
    processes: dict[str, Process] = field(default_factory=dict)  # web first; no release/cron
    release: str | None = None
    cron: list[CronJob] = field(default_factory=list)
    static_dir: str | None = None  # whole-site static dir, served at /
    static_paths: dict[str, str] = field(default_factory=dict)  # URL prefix -> dir
    build: dict[str, Any] = field(default_factory=default_build)
    env: dict[str, str] = field(default_factory=dict)  # literal defaults
    env_generate: dict[str, dict[str, Any]] = field(default_factory=dict)
    healthcheck: HealthCheck = field(default_factory=HealthCheck)
    domains: list[str] = field(default_factory=list)
    addons: list[dict[str, Any]] = field(default_factory=list)
    backup: dict[str, Any] = field(default_factory=default_backup)
    limits: dict[str, Any] = field(default_factory=default_limits)
    proxy: dict[str, Any] = field(default_factory=default_proxy)
    waf: dict[str, Any] = field(default_factory=default_waf)
    tls: dict[str, Any] = field(default_factory=default_tls)
    sources: list[str] = field(default_factory=list)  # files read, e.g. ["hop3.toml", "Procfile"]
    php: dict[str, Any] | None = None  # default_php() for runtime "php", else None

    def to_vars(self) -> dict[str, Any]:
        """A JSON-able dict of everything but ``root``, for the deploy playbook."""
        data = {
            f.name: _plain(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if f.name != "root"
        }
        if data["php"] is None:
            # Absent rather than null: the specs (and so the build identities)
            # of apps of other runtimes stay as they were.
            del data["php"]
        return data


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


# --- problems ------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    file: str  # relative file name ("hop3.toml", "Procfile"), or "" for the app as a whole
    where: str  # "[healthcheck] retries", "line 3", "env.SECRET.generator", or ""
    message: str

    def __str__(self) -> str:
        place = " ".join(part for part in (self.file, self.where) if part)
        return f"{place}: {self.message}" if place else self.message


class AppSpecError(HopError):
    """The app directory has one or more problems; ``problems`` lists them all."""

    def __init__(self, path: Path | str, problems: list[Problem]):
        self.path = Path(path)
        self.problems = list(problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = [f"The app in {path} has {count} {noun}:"]
        lines += [f"  {problem}" for problem in self.problems]
        super().__init__("\n".join(lines), hint="Fix them and run the command again.")


class Problems:
    """Collects problems while reading an app, so all of them are reported at once."""

    def __init__(self) -> None:
        self.items: list[Problem] = []
        # Set when part of the definition could not be read (syntax error, dropped
        # line): checks that depend on the whole picture ("no web process") are skipped.
        self.incomplete = False

    def add(self, file: str, where: str, message: str, *, incomplete: bool = False) -> None:
        self.items.append(Problem(file, where, message))
        if incomplete:
            self.incomplete = True

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)


@dataclass
class Layer:
    """What one file (hop3.toml or app.json) says; None/empty means "not set there"."""

    file: str
    name: str | None = None
    name_where: str = ""
    version: str | None = None
    title: str | None = None
    catalog: str | None = None
    runtime: str | None = None
    packages: list[str] | None = None
    before_build: list[str] | None = None
    build: list[str] | None = None
    after_build: list[str] | None = None
    static_dir: str | None = None
    start: str | None = None
    release: str | None = None
    workers: dict[str, str] = field(default_factory=dict)
    # process name -> (scale, where)
    scale: dict[str, tuple[int, str]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    env_generate: dict[str, dict[str, Any]] = field(default_factory=dict)
    healthcheck: dict[str, Any] = field(default_factory=dict)
    domains: list[str] | None = None
    addons: list[dict[str, Any]] | None = None
    backup: dict[str, Any] | None = None
    limits: dict[str, Any] = field(default_factory=dict)
    proxy: dict[str, Any] = field(default_factory=dict)
    static_paths: dict[str, str] | None = None
    waf: dict[str, Any] = field(default_factory=dict)
    tls: dict[str, Any] = field(default_factory=dict)
    php: dict[str, Any] = field(default_factory=dict)
