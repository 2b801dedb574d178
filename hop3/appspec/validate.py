"""Validators for the values a user gives Hop3: app names, env keys, domains, sizes.

Every user-supplied string ends up in a unix user name, a systemd unit, an nginx
config or an env file on a host. These checks run at the edge (here, in Python)
so that the roles only ever see values of a known shape.

Two layers:
- ``*_error(value) -> str | None`` return a problem message (used by the app
  loader, which collects every problem before failing);
- ``validate_*(value)`` return the normalized value or raise ``HopError`` (used
  by the CLI for ``config:set``, ``domains:add``, ``--app``...).
"""

from __future__ import annotations

import json
import re

from hop3.errors import HopError

# --- app names ---------------------------------------------------------------

APP_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,29}$")

#: Names an app may not take. The app name becomes the unix user that runs the
#: app, the prefix of its systemd units and nginx site, and a directory name, so
#: names that clash with system accounts or services (root, daemon, bin, sys,
#: nobody, www-data, sshd, systemd), with the services Hop3 installs (nginx,
#: postgres, redis, mysql, git) or with Hop3 itself and its own host names (hop3, admin,
#: www, api) are refused.
RESERVED_APP_NAMES: frozenset[str] = frozenset(
    {
        "root",
        "admin",
        "hop3",
        "nginx",
        "www-data",
        "postgres",
        "redis",
        "mysql",
        "mariadb",
        "daemon",
        "bin",
        "sys",
        "nobody",
        "systemd",
        "sshd",
        "git",
        "www",
        "api",
    }
)

_APP_NAME_RULE = "use 1-30 lowercase letters, digits or '-', starting with a letter (e.g. my-app)"


def app_name_error(name: object) -> str | None:
    """Why ``name`` is not a valid app name, or None if it is."""
    if not isinstance(name, str):
        return f"{show(name)} is not a valid app name: it must be a string; {_APP_NAME_RULE}."
    if not APP_NAME_RE.fullmatch(name) or name.endswith("-"):
        return f"{show(name)} is not a valid app name: {_APP_NAME_RULE}."
    if name in RESERVED_APP_NAMES:
        return (
            f"{show(name)} is a reserved name (it clashes with a system account or service): "
            f"pick another, e.g. my-{name}."
        )
    return None


def validate_app_name(name: str) -> str:
    """Return ``name`` if it is a valid app name, else raise ``HopError``."""
    error = app_name_error(name)
    if error:
        reserved = ", ".join(sorted(RESERVED_APP_NAMES))
        raise HopError(error, hint=f"Reserved names: {reserved}.")
    return name


# --- environment variables ---------------------------------------------------

ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Variables Hop3 sets itself; an app may not define them.
RESERVED_ENV_KEYS: frozenset[str] = frozenset({"PORT"})
ENV_KEY_MAX = 128


def env_key_error(key: object) -> str | None:
    if not isinstance(key, str) or not ENV_KEY_RE.fullmatch(key) or len(key) > ENV_KEY_MAX:
        return (
            f"{show(key)} is not a valid variable name: use letters, digits and '_', "
            f"not starting with a digit (e.g. SECRET_KEY)"
        )
    if key in RESERVED_ENV_KEYS:
        return f"{key} is reserved: Hop3 sets it for each process"
    return None


def env_value_error(value: object) -> str | None:
    """Env values are kept byte for byte; only NUL cannot be stored in an env file."""
    if not isinstance(value, str):
        return f"must be a string, got {show(value)}{quote_hint(value)}"
    if "\x00" in value:
        return "must not contain a NUL character"
    return None


def validate_env_key(key: str) -> str:
    """Return ``key`` if it can be an environment variable name, else raise ``HopError``."""
    error = env_key_error(key)
    if error:
        raise HopError(error + ".")
    return key


# --- domains -----------------------------------------------------------------

_LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def normalize_domain(domain: object) -> str:
    """Return the normalized (lower-case, ASCII) form of ``domain`` or raise ValueError."""
    if not isinstance(domain, str):
        raise ValueError(f"{show(domain)} is not a valid domain name: it must be a string")
    original = domain
    name = domain.strip().lower()
    if name.endswith("."):
        name = name[:-1]

    def bad(why: str) -> ValueError:
        return ValueError(f"{show(original)} is not a valid domain name: {why}")

    if not name:
        raise bad("it is empty")
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise bad("it cannot be converted to an ASCII (punycode) name") from None
    wildcard = name.startswith("*.")
    rest = name[2:] if wildcard else name
    if "*" in rest:
        raise bad("a wildcard is only allowed as the first label ('*.example.com')")
    if "." not in rest:
        raise bad("it needs at least one dot (e.g. shop.example.com)")
    if len(name) > 253:
        raise bad("it is longer than 253 characters")
    for label in rest.split("."):
        if not label:
            raise bad("it has an empty label (two dots in a row?)")
        if len(label) > 63:
            raise bad(f"label {show(label)} is longer than 63 characters")
        if not _LABEL_RE.fullmatch(label):
            if label.startswith("-") or label.endswith("-"):
                raise bad(f"label {show(label)} starts or ends with '-'")
            raise bad(f"label {show(label)} may only contain letters, digits and '-'")
    if rest.rsplit(".", 1)[-1].isdigit():
        raise bad("it looks like an IP address; use a DNS name")
    return name


def domain_error(domain: object) -> str | None:
    try:
        normalize_domain(domain)
    except ValueError as exc:
        return str(exc)
    return None


def validate_domain(domain: str) -> str:
    """Return the normalized domain (lower-case, punycode, no trailing dot) or raise HopError."""
    try:
        return normalize_domain(domain)
    except ValueError as exc:
        raise HopError(
            f"{exc}.", hint="A domain is a DNS name like shop.example.com or *.example.com."
        ) from None


# --- sizes and limits ----------------------------------------------------------

_MEMORY_RE = re.compile(r"^(\d{1,9})([KMG])$", re.IGNORECASE)
_UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3}
MEMORY_MIN = 16 * 1024**2
MEMORY_MAX = 64 * 1024**3


def normalize_memory(value: object) -> str:
    """'512m' -> '512M'; raises ValueError outside 16M..64G."""
    rule = "must be a size like '512M' or '2G' (K, M or G; between 16M and 64G)"
    if not isinstance(value, str):
        raise ValueError(f"{rule}, got {show(value)}")
    match = _MEMORY_RE.fullmatch(value.strip())
    if not match:
        raise ValueError(f"{rule}, got {show(value)}")
    number, unit = int(match.group(1)), match.group(2).upper()
    if not MEMORY_MIN <= number * _UNITS[unit] <= MEMORY_MAX:
        raise ValueError(f"{rule}, got {show(value)}")
    return f"{number}{unit}"


_CPU_RE = re.compile(r"^(\d{1,5})%$")


def normalize_cpu(value: object) -> str:
    """'50%' -> '50%'; 1%..6400% (100% is one CPU core)."""
    rule = "must be a percentage of one CPU core between 1% and 6400% (e.g. '50%')"
    if not isinstance(value, str):
        raise ValueError(f"{rule}, got {show(value)}")
    match = _CPU_RE.fullmatch(value.strip())
    if not match or not 1 <= int(match.group(1)) <= 6400:
        raise ValueError(f"{rule}, got {show(value)}")
    return f"{int(match.group(1))}%"


_BODY_SIZE_RE = re.compile(r"^\d{1,9}[kKmMgG]?$")


def body_size_error(value: object) -> str | None:
    if not isinstance(value, str) or not _BODY_SIZE_RE.fullmatch(value):
        return f"must be an nginx size like '20m', '512k' or '1g', got {show(value)}"
    return None


_RATE_LIMIT_RE = re.compile(r"^([1-9][0-9]{0,5})r/([sm])$")
RATE_BURST_MAX = 100_000


def rate_limit_error(value: object) -> str | None:
    """A request rate for nginx's limit_req: '10r/s' or '600r/m' (1 to 999999)."""
    if not isinstance(value, str) or not _RATE_LIMIT_RE.fullmatch(value):
        return (
            "must be a request rate per client address like '10r/s' or '600r/m' "
            f"(1 to 999999 requests per second or minute), got {show(value)}"
        )
    return None


# --- paths, names, commands ----------------------------------------------------

_PATH_PART_RE = re.compile(r"^[A-Za-z0-9._@+-]+$")
_GLOB_PART_RE = re.compile(r"^[A-Za-z0-9._@+*?\[\]-]+$")


def normalize_rel_path(value: object, *, glob: bool = False) -> str:
    """A path inside the app ('public', 'dist/site', '.'): relative, no '..', plain characters.

    Leading './', repeated and trailing '/' are dropped; '.' is the app directory itself.
    """
    pattern = _GLOB_PART_RE if glob else _PATH_PART_RE
    allowed = "letters, digits, '.', '_', '-', '/'" + (", '*', '?', '[]'" if glob else "")
    if not isinstance(value, str):
        raise ValueError(f"must be a path inside the app, got {show(value)}")
    path = value.strip()
    if not path:
        raise ValueError("must be a path inside the app, got an empty string")
    if path.startswith("/"):
        raise ValueError(f"must be a path relative to the app directory, got {show(value)}")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"must stay inside the app directory (no '..'), got {show(value)}")
    if not all(pattern.fullmatch(part) for part in parts):
        raise ValueError(f"{show(value)} is not a valid path: use {allowed}")
    return "/".join(parts) or "."


_URL_PREFIX_RE = re.compile(r"^/[A-Za-z0-9._~@+/-]*$")


def url_prefix_error(value: str) -> str | None:
    if not _URL_PREFIX_RE.fullmatch(value) or ".." in value.split("/") or "//" in value:
        return (
            f"{show(value)} is not a valid URL prefix: start with '/' and use letters, "
            "digits, '.', '_', '~', '-', '/' (e.g. '/static')"
        )
    return None


PROCESS_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,19}$")


def process_name_error(name: str) -> str | None:
    if not PROCESS_NAME_RE.fullmatch(name):
        return (
            f"{show(name)} is not a valid process name: use 1-20 lowercase letters, digits, "
            "'_' or '-', starting with a letter (e.g. web, worker)"
        )
    return None


def command_error(value: object, *, single_line: bool = True) -> str | None:
    """A shell command: a non-empty string (one line for processes)."""
    if not isinstance(value, str):
        return f"must be a command (a string), got {show(value)}"
    if not value.strip():
        return "must be a command, got an empty string"
    if "\x00" in value:
        return "must not contain a NUL character"
    if single_line and ("\n" in value or "\r" in value):
        return "must be a single line (put longer scripts in a file and run that)"
    return None


_DEB_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


def package_error(value: object) -> str | None:
    if not isinstance(value, str) or not _DEB_PACKAGE_RE.fullmatch(value):
        return f"{show(value)} is not a valid Debian package name (e.g. libpq-dev)"
    return None


_HEALTH_PATH_RE = re.compile(r"^/[^\s\x00-\x1f\x7f]*$")


def health_path_error(value: object) -> str | None:
    if not isinstance(value, str) or not _HEALTH_PATH_RE.fullmatch(value):
        return (
            "must be a URL path starting with '/' without spaces or control characters "
            f"(e.g. '/health'), got {show(value)}"
        )
    return None


# --- PHP ([php] in hop3.toml) ---------------------------------------------------

_PHP_EXTENSION_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_PHP_INI_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.]{0,99}$")
# PHP-FPM reads a value as a double-quoted ini string: '"' would end it, '$'
# expands ${VAR} and '\\' escapes; control characters (a newline) would start
# a new directive.
_PHP_INI_VALUE_BAD_RE = re.compile(r'["$\\\x00-\x1f\x7f]')


def php_extension_error(value: object) -> str | None:
    if not isinstance(value, str) or not _PHP_EXTENSION_RE.fullmatch(value):
        return (
            f"{show(value)} is not a PHP extension name: use the name in the Debian package "
            'php8.2-<name>, e.g. "mysql", "gd", "intl"'
        )
    return None


def php_ini_error(name: str, value: object) -> str | None:
    """Why ``name = value`` cannot be a PHP ini setting, or None."""
    if not _PHP_INI_NAME_RE.fullmatch(name):
        return (
            f"{show(name)} is not a PHP ini setting name: use letters, digits, '_' and '.' "
            "(e.g. upload_max_filesize)"
        )
    if isinstance(value, int):  # bool is an int too
        return None
    if not isinstance(value, str):
        return f"must be a string, an integer or true/false, got {show(value)}"
    if _PHP_INI_VALUE_BAD_RE.search(value):
        return (
            f"{show(value)} cannot be a PHP ini value: no quotes, '$', backslashes or "
            "control characters (newlines)"
        )
    return None


def php_ini_value(value: str | int | bool) -> str:
    """The value as PHP-FPM reads it: true/false -> "1"/"0"."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


# --- showing values in messages ------------------------------------------------


def show(value: object, limit: int = 40) -> str:
    """A short, unambiguous rendering of a user value for an error message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= limit else value[: limit - 1] + "…"
        return repr(text)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return type(value).__name__


_BARE_KEY_RE = re.compile(r"[A-Za-z0-9_.-]+")


def key_label(key: str) -> str:
    """A key as shown in a 'where': bare if plain, else quoted and escaped (one line)."""
    return key if _BARE_KEY_RE.fullmatch(key) else json.dumps(key)


def quote_hint(value: object) -> str:
    """' (quote it: "4")' for a number or boolean given where a string is expected."""
    if isinstance(value, bool | int | float):
        return f' (quote it: "{show(value)}")'
    return ""
