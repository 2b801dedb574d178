"""Read ``hop3.toml`` into a ``Layer``, reporting every problem with its key path.

Section names follow the upstream Hop3 project's schema. Unknown sections and
keys are problems that name them and list the known ones. As upstream allows,
a key written with '_' instead of '-' (``before_build``) is accepted.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from typing import Any

from hop3.appspec.model import RUNTIMES, SCALE_MAX, Layer, Problems
from hop3.appspec.validate import (
    body_size_error,
    command_error,
    env_key_error,
    env_value_error,
    health_path_error,
    key_label,
    normalize_cpu,
    normalize_domain,
    normalize_memory,
    normalize_rel_path,
    package_error,
    php_extension_error,
    php_ini_error,
    php_ini_value,
    process_name_error,
    quote_hint,
    rate_limit_error,
    show,
    url_prefix_error,
)

FILE = "hop3.toml"

SECTIONS: dict[str, tuple[str, ...]] = {
    "metadata": (
        "id",
        "version",
        "title",
        "description",
        "author",
        "license",
        "website",
        # Informational fields of the upstream schema: accepted, type-checked, unused.
        "tagline",
        "homepage",
        "tags",
        "categories",
        "release",
        # Our extension: the catalog entry an app was installed from (hop catalog).
        "catalog",
    ),
    "build": ("before-build", "build", "after-build", "packages", "static-dir", "runtime"),
    "run": ("start", "release", "workers", "scale"),
    "env": (),
    "healthcheck": ("path", "contains", "status", "timeout", "retries"),
    "domains": ("list",),
    "addons": ("type", "name"),
    "backup": ("paths", "exclude"),
    "limits": ("memory", "cpu", "tasks"),
    "proxy": ("max-body-size", "websockets", "static", "rate-limit", "rate-limit-burst"),
    "waf": ("enabled", "mode", "paranoia", "methods", "content-types"),
    # Hop3's extension: HTTPS for the app's domains.
    "tls": ("mode", "hsts"),
    # Hop3's extension: the PHP runtime (document root, extensions, ini settings).
    "php": ("root", "extensions", "ini"),
}

ADDON_TYPES = ("postgres", "redis", "mariadb")
# Request body types an app may add to the CRS's allowed ones, lowercase.
MEDIA_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9.+-]{0,63}/[a-z0-9][a-z0-9.+-]{0,63}")
# Methods an app may let through the WAF besides GET HEAD POST OPTIONS (the
# CRS default): REST verbs, and WebDAV/CalDAV/CardDAV ones.
WAF_EXTRA_METHODS = ("PUT", "PATCH", "DELETE", "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE",
                     "LOCK", "UNLOCK", "REPORT", "MKCALENDAR", "SEARCH")  # fmt: skip
ADDON_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
GENERATORS = ("hex", "base64", "password")
GENERATE_LENGTH = (8, 256)
WAF_MODES = ("block", "detect")
TLS_MODES = ("acme", "self-signed", "off")
RATE_BURST_RANGE = (0, 100_000)
TASKS_RANGE = (16, 65536)
_AT_END = " (at end of document)"
_LOCATION_RE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def _suggest(word: str, known: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1)
    return f"did you mean {close[0]!r}? " if close else ""


class _Section:
    """Typed access to one table, recording a problem for each bad value."""

    def __init__(
        self, problems: Problems, name: str, table: dict[str, Any], prefix: str | None = None
    ):
        self.problems = problems
        self.name = name
        self.table = table
        self.prefix = prefix or f"[{name}]"

    def where(self, key: str) -> str:
        return f"{self.prefix} {key_label(key)}" if key else self.prefix

    def add(self, key: str, message: str, *, incomplete: bool = False) -> None:
        self.problems.add(FILE, self.where(key), message, incomplete=incomplete)

    def check_keys(self, known: tuple[str, ...]) -> None:
        for key in list(self.table):
            if key in known:
                continue
            alias = key.replace("_", "-")
            if alias in known and alias not in self.table:
                self.table[alias] = self.table.pop(key)
                continue
            self.add(
                key,
                f"unknown key; {_suggest(key, known)}known keys: {', '.join(known)}",
            )

    def string(self, key: str, *, allow_empty: bool = True) -> str | None:
        value = self.table.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.add(key, f"must be a string, got {show(value)}{quote_hint(value)}")
            return None
        if not allow_empty and not value.strip():
            self.add(key, "must not be empty")
            return None
        return value

    def integer(self, key: str, low: int, high: int) -> int | None:
        value = self.table.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.add(key, f"must be an integer between {low} and {high}, got {show(value)}")
            return None
        return value

    def boolean(self, key: str) -> bool | None:
        value = self.table.get(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            self.add(key, f"must be true or false, got {show(value)}")
            return None
        return value

    def choice(self, key: str, choices: tuple[str, ...]) -> str | None:
        value = self.table.get(key)
        if value is None:
            return None
        if value not in choices:
            self.add(key, f"must be one of {', '.join(choices)}, got {show(value)}")
            return None
        return value

    def string_list(self, key: str, what: str = "strings") -> list[Any] | None:
        value = self.table.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            example = f'["{value}"]' if isinstance(value, str) else '["..."]'
            self.add(key, f"must be a list of {what}, got {show(value)} (e.g. {key} = {example})")
            return None
        return value

    def commands(self, key: str) -> list[str] | None:
        items = self.string_list(key, "commands")
        if items is None:
            return None
        good = []
        for index, item in enumerate(items, start=1):
            error = command_error(item, single_line=False)
            if error:
                self.add(key, f"item {index} {error}", incomplete=True)
            else:
                good.append(item)
        return good

    def table_of(self, key: str) -> dict[str, Any] | None:
        value = self.table.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.add(key, f"must be a table, got {show(value)}")
            return None
        return value


def parse_hop3_toml(text: str, problems: Problems) -> Layer | None:
    """Parse and validate hop3.toml text; None if it is not valid TOML."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _LOCATION_RE.search(message)
        where = ""
        if match:
            where = f"line {match.group(1)}"
            message = f"{message[: match.start()]} (column {match.group(2)})"
        elif message.endswith(_AT_END):
            where = "end of file"
            message = message[: -len(_AT_END)]
        problems.add(FILE, where, f"invalid TOML: {message}", incomplete=True)
        return None

    layer = Layer(file=FILE)
    known = tuple(SECTIONS)
    for name, table in data.items():
        if name not in SECTIONS:
            problems.add(
                FILE,
                f"[{key_label(name)}]",
                f"unknown section; {_suggest(name, known)}known sections: {', '.join(known)}",
            )
            continue
        if name == "addons":
            _addons(problems, table, layer)
            continue
        if not isinstance(table, dict):
            problems.add(FILE, f"[{name}]", f"must be a table ([{name}]), got {show(table)}")
            continue
        section = _Section(problems, name, table)
        if name != "env":
            section.check_keys(SECTIONS[name])
        _READERS[name](section, layer)
    return layer


def _metadata(s: _Section, layer: Layer) -> None:
    if "id" in s.table:
        layer.name = s.string("id")
        layer.name_where = s.where("id")
    layer.version = s.string("version")
    layer.title = s.string("title")
    layer.catalog = s.string("catalog")
    for key in ("description", "author", "license", "website", "tagline", "homepage"):
        s.string(key)
    for key in ("tags", "categories"):
        for item in s.string_list(key) or []:
            if not isinstance(item, str):
                s.add(key, f"must be a list of strings, got an item {show(item)}")
    s.integer("release", 0, 1_000_000)


def _build(s: _Section, layer: Layer) -> None:
    layer.before_build = s.commands("before-build")
    layer.build = s.commands("build")
    layer.after_build = s.commands("after-build")
    packages = s.string_list("packages", "Debian package names")
    if packages is not None:
        layer.packages = []
        for item in packages:
            error = package_error(item)
            if error:
                s.add("packages", error)
            elif item not in layer.packages:
                layer.packages.append(item)
    if "static-dir" in s.table:
        try:
            layer.static_dir = normalize_rel_path(s.table["static-dir"])
        except ValueError as exc:
            s.add("static-dir", str(exc), incomplete=True)
    if "runtime" in s.table:
        layer.runtime = s.choice("runtime", RUNTIMES)
        if layer.runtime is None:
            s.problems.incomplete = True


def _run(s: _Section, layer: Layer) -> None:
    for key in ("start", "release"):
        value = s.table.get(key)
        if value is None:
            continue
        error = command_error(value)
        if error:
            s.add(key, error, incomplete=True)
        else:
            setattr(layer, key, value)
    workers = s.table_of("workers")
    if workers is not None:
        sub = _Section(s.problems, "run.workers", workers)
        for name, command in workers.items():
            error = process_name_error(name)
            if not error and name in ("web", "release", "cron", "static"):
                error = {
                    "web": "use [run] start for the web process",
                    "release": "use [run] release for the release command",
                }.get(name, f"{name!r} is a Procfile kind, not a worker name")
            error = error or command_error(command)
            if error:
                sub.add(name, error, incomplete=True)
            else:
                layer.workers[name] = command
    scale = s.table_of("scale")
    if scale is not None:
        sub = _Section(s.problems, "run.scale", scale)
        for name in scale:
            value = sub.integer(name, 0, SCALE_MAX)
            if value is not None:
                layer.scale[name] = (value, sub.where(name))


def _env(s: _Section, layer: Layer) -> None:
    for key, value in s.table.items():
        error = env_key_error(key)
        if error:
            s.add(key, error)
            continue
        if isinstance(value, dict):
            spec = _generate_spec(s, key, value)
            if spec is not None:
                layer.env_generate[key] = spec
            continue
        error = env_value_error(value)
        if error:
            s.add(key, error)
        else:
            layer.env[key] = value


def _generate_spec(s: _Section, key: str, value: dict[str, Any]) -> dict[str, Any] | None:
    if "generate" not in value:
        s.add(key, 'must be a string, or a table like { generate = "hex", length = 32 }')
        return None
    ok = True
    unknown = [k for k in value if k not in ("generate", "length")]
    if unknown:
        s.add(key, f"unknown key {show(unknown[0])} (known: generate, length)")
        ok = False
    generate = value.get("generate")
    if generate not in GENERATORS:
        s.add(
            key,
            f"generate must be one of {', '.join(GENERATORS)}, got {show(generate)} "
            '(e.g. { generate = "hex", length = 32 })',
        )
        ok = False
    length = value.get("length", 32)
    low, high = GENERATE_LENGTH
    if isinstance(length, bool) or not isinstance(length, int) or not low <= length <= high:
        s.add(key, f"length must be an integer between {low} and {high}, got {show(length)}")
        ok = False
    return {"generate": generate, "length": length} if ok else None


def _healthcheck(s: _Section, layer: Layer) -> None:
    hc = layer.healthcheck
    if "path" in s.table:
        error = health_path_error(s.table["path"])
        if error:
            s.add("path", error)
        else:
            hc["path"] = s.table["path"]
    contains = s.string("contains", allow_empty=False)
    if contains is not None:
        hc["contains"] = contains
    for key, low, high in (("status", 100, 599), ("timeout", 1, 300), ("retries", 1, 20)):
        value = s.integer(key, low, high)
        if value is not None:
            hc[key] = value


def _domains(s: _Section, layer: Layer) -> None:
    items = s.string_list("list", "domain names")
    if items is None:
        return
    layer.domains = []
    for item in items:
        try:
            domain = normalize_domain(item)
        except ValueError as exc:
            s.add("list", str(exc))
            continue
        if domain in layer.domains:
            s.add("list", f"{show(domain)} is listed twice")
        else:
            layer.domains.append(domain)


def _addons(problems: Problems, value: Any, layer: Layer) -> None:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        problems.add(
            FILE, "[[addons]]", 'must be an array of tables: [[addons]] then type = "postgres"'
        )
        return
    layer.addons = []
    seen: set[tuple[str, str | None]] = set()
    for index, table in enumerate(value, start=1):
        s = _Section(problems, "addons", table, prefix=f"[[addons]] #{index}")
        s.check_keys(SECTIONS["addons"])
        kind = table.get("type")
        if kind is None:
            s.add("type", f"is required: one of {', '.join(ADDON_TYPES)}")
            continue
        kind = s.choice("type", ADDON_TYPES)
        name = s.string("name")
        if name is not None and not ADDON_NAME_RE.fullmatch(name):
            s.add(
                "name",
                f"{show(name)} is not a valid addon name: use 1-31 lowercase letters, digits "
                "or '_', starting with a letter",
            )
            continue
        if kind is None:
            continue
        if (kind, name) in seen:
            s.add("type", f"{kind} addon{f' {name!r}' if name else ''} is declared twice")
            continue
        seen.add((kind, name))
        addon: dict[str, Any] = {"type": kind}
        if name is not None:
            addon["name"] = name
        layer.addons.append(addon)


def _paths(s: _Section, key: str, *, glob: bool) -> list[str]:
    result: list[str] = []
    for item in s.string_list(key, "paths") or []:
        try:
            path = normalize_rel_path(item, glob=glob)
        except ValueError as exc:
            s.add(key, str(exc))
            continue
        if path not in result:
            result.append(path)
    return result


def _backup(s: _Section, layer: Layer) -> None:
    layer.backup = {
        "paths": _paths(s, "paths", glob=False),
        "exclude": _paths(s, "exclude", glob=True),
    }


def _limits(s: _Section, layer: Layer) -> None:
    for key, normalize in (("memory", normalize_memory), ("cpu", normalize_cpu)):
        if key in s.table:
            try:
                layer.limits[key] = normalize(s.table[key])
            except ValueError as exc:
                s.add(key, str(exc))
    tasks = s.integer("tasks", *TASKS_RANGE)
    if tasks is not None:
        layer.limits["tasks"] = tasks


def _proxy(s: _Section, layer: Layer) -> None:
    if "max-body-size" in s.table:
        error = body_size_error(s.table["max-body-size"])
        if error:
            s.add("max-body-size", error)
        else:
            layer.proxy["max_body_size"] = s.table["max-body-size"]
    websockets = s.boolean("websockets")
    if websockets is not None:
        layer.proxy["websockets"] = websockets
    if "rate-limit" in s.table:
        error = rate_limit_error(s.table["rate-limit"])
        if error:
            s.add("rate-limit", error)
        else:
            layer.proxy["rate_limit"] = s.table["rate-limit"]
    burst = s.integer("rate-limit-burst", *RATE_BURST_RANGE)
    if burst is not None:
        if "rate-limit" not in s.table:
            s.add(
                "rate-limit-burst",
                'needs a rate: set rate-limit too (e.g. rate-limit = "10r/s")',
            )
        else:
            layer.proxy["rate_limit_burst"] = burst
    static = s.table_of("static")
    if static is None:
        return
    sub = _Section(s.problems, "proxy.static", static)
    layer.static_paths = {}
    for prefix, directory in static.items():
        error = url_prefix_error(prefix)
        if error:
            sub.add(prefix, error)
            continue
        try:
            layer.static_paths[prefix] = normalize_rel_path(directory)
        except ValueError as exc:
            sub.add(prefix, str(exc))


def _waf(s: _Section, layer: Layer) -> None:
    enabled = s.boolean("enabled")
    if enabled is not None:
        layer.waf["enabled"] = enabled
    mode = s.choice("mode", WAF_MODES)
    if mode is not None:
        layer.waf["mode"] = mode
    paranoia = s.integer("paranoia", 1, 4)
    if paranoia is not None:
        layer.waf["paranoia"] = paranoia
    methods = s.string_list("methods", "HTTP methods")
    if methods is not None:
        unknown = [m for m in methods if m not in WAF_EXTRA_METHODS]
        if unknown:
            named = ", ".join(map(repr, unknown))
            known = ", ".join(WAF_EXTRA_METHODS)
            s.add("methods", f"{named}: not methods the WAF can let through (known: {known})")
        else:
            layer.waf["methods"] = sorted(set(methods), key=WAF_EXTRA_METHODS.index)
    types = s.string_list("content-types", "media types")
    if types is not None:
        bad = [t for t in types if not MEDIA_TYPE_RE.fullmatch(t)]
        if bad:
            named = ", ".join(map(repr, bad))
            s.add("content-types", f"{named}: not media types like 'text/calendar'")
        else:
            layer.waf["content_types"] = sorted(set(types))


def _tls(s: _Section, layer: Layer) -> None:
    mode = s.choice("mode", TLS_MODES)
    if mode is not None:
        layer.tls["mode"] = mode
    hsts = s.boolean("hsts")
    if hsts is not None:
        layer.tls["hsts"] = hsts
    if hsts and s.table.get("mode", "off") == "off":
        s.add("hsts", 'needs HTTPS: set mode = "acme" or "self-signed" too')


def _php(s: _Section, layer: Layer) -> None:
    if "root" in s.table:
        try:
            layer.php["root"] = normalize_rel_path(s.table["root"])
        except ValueError as exc:
            s.add("root", str(exc))
    extensions = s.string_list("extensions", "PHP extension names")
    if extensions is not None:
        layer.php["extensions"] = []
        for item in extensions:
            error = php_extension_error(item)
            if error:
                s.add("extensions", error)
            elif item not in layer.php["extensions"]:
                layer.php["extensions"].append(item)
    ini = s.table_of("ini")
    if ini is not None:
        sub = _Section(s.problems, "php.ini", ini)
        layer.php["ini"] = {}
        for name, value in ini.items():
            error = php_ini_error(name, value)
            if error:
                sub.add(name, error)
            else:
                layer.php["ini"][name] = php_ini_value(value)


_READERS = {
    "metadata": _metadata,
    "build": _build,
    "run": _run,
    "env": _env,
    "healthcheck": _healthcheck,
    "domains": _domains,
    "backup": _backup,
    "limits": _limits,
    "proxy": _proxy,
    "waf": _waf,
    "tls": _tls,
    "php": _php,
}
