"""hop3.toml: every section, its types and ranges, and the exact problem texts."""

from __future__ import annotations

import pytest

from hop3.appspec.model import Layer, Problems
from hop3.appspec.toml_spec import SECTIONS, parse_hop3_toml

FULL = """
[metadata]
id = "shop"
version = "1.2"
title = "Shop"
description = "A shop"
author = "Me"
license = "MIT"
website = "https://example.com"

[build]
before-build = ["npm ci"]
build = ["npm run build", "echo 'multi\\nline'"]
after-build = []
packages = ["libpq-dev", "build-essential", "libpq-dev"]
static-dir = "public/"
runtime = "node"

[run]
start = "gunicorn -b 127.0.0.1:$PORT app:app"
release = "python manage.py migrate"

[run.workers]
worker = "python worker.py"
mailer = "python mailer.py"

[run.scale]
web = 2
worker = 0

[env]
FEATURE_X = "on"
lower_ok = ""
SECRET_KEY = { generate = "hex", length = 32 }
TOKEN = { generate = "password" }

[healthcheck]
path = "/health?full=1"
contains = "ok"
timeout = 30
retries = 3
status = 200

[domains]
list = ["Shop.Example.com", "*.shop.example.com"]

[[addons]]
type = "postgres"

[[addons]]
type = "redis"
name = "cache"

[backup]
paths = ["uploads", "./data/"]
exclude = ["cache", "*.tmp"]

[limits]
memory = "512m"
cpu = "50%"
tasks = 256

[proxy]
max-body-size = "20m"
websockets = false
static = { "/static" = "static", "/media" = "./uploads/media" }
rate-limit = "10r/s"
rate-limit-burst = 20

[waf]
enabled = true
mode = "detect"
paranoia = 2

[tls]
mode = "self-signed"
hsts = true
"""


def parse(text: str) -> tuple[Layer | None, list[str]]:
    problems = Problems()
    layer = parse_hop3_toml(text, problems)
    return layer, [str(p) for p in problems.items]


def test_full_file() -> None:
    layer, problems = parse(FULL)
    assert problems == []
    assert layer is not None
    assert (layer.name, layer.name_where) == ("shop", "[metadata] id")
    assert (layer.version, layer.title) == ("1.2", "Shop")
    assert layer.before_build == ["npm ci"]
    assert layer.build == ["npm run build", "echo 'multi\nline'"]
    assert layer.after_build == []
    assert layer.packages == ["libpq-dev", "build-essential"]
    assert layer.static_dir == "public"
    assert layer.runtime == "node"
    assert layer.start == "gunicorn -b 127.0.0.1:$PORT app:app"
    assert layer.release == "python manage.py migrate"
    assert layer.workers == {"worker": "python worker.py", "mailer": "python mailer.py"}
    assert layer.scale == {"web": (2, "[run.scale] web"), "worker": (0, "[run.scale] worker")}
    assert layer.env == {"FEATURE_X": "on", "lower_ok": ""}
    assert layer.env_generate == {
        "SECRET_KEY": {"generate": "hex", "length": 32},
        "TOKEN": {"generate": "password", "length": 32},
    }
    assert layer.healthcheck == {
        "path": "/health?full=1",
        "contains": "ok",
        "timeout": 30,
        "retries": 3,
        "status": 200,
    }
    assert layer.domains == ["shop.example.com", "*.shop.example.com"]
    assert layer.addons == [{"type": "postgres"}, {"type": "redis", "name": "cache"}]
    assert layer.backup == {"paths": ["uploads", "data"], "exclude": ["cache", "*.tmp"]}
    assert layer.limits == {"memory": "512M", "cpu": "50%", "tasks": 256}
    assert layer.proxy == {
        "max_body_size": "20m",
        "websockets": False,
        "rate_limit": "10r/s",
        "rate_limit_burst": 20,
    }
    assert layer.static_paths == {"/static": "static", "/media": "uploads/media"}
    assert layer.waf == {"enabled": True, "mode": "detect", "paranoia": 2}
    assert layer.tls == {"mode": "self-signed", "hsts": True}


def test_empty_file_is_fine() -> None:
    layer, problems = parse("")
    assert problems == []
    assert layer == Layer(file="hop3.toml")


def test_underscore_spelling_of_keys_is_accepted() -> None:
    layer, problems = parse('[build]\nbefore_build = ["a"]\nstatic_dir = "out"\n')
    assert problems == []
    assert layer is not None
    assert (layer.before_build, layer.static_dir) == (["a"], "out")


def test_upstream_informational_metadata_is_accepted() -> None:
    _, problems = parse(
        '[metadata]\nid = "x"\ntagline = "t"\ntags = ["a"]\ncategories = ["b"]\nrelease = 2\n'
        'homepage = "https://x.org"\n'
    )
    assert problems == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # unknown sections and keys name the known ones
        (
            "[bulid]\nx = 1\n",
            "hop3.toml [bulid]: unknown section; did you mean 'build'? known sections: "
            + ", ".join(SECTIONS),
        ),
        (
            "[healthcheck]\nretrys = 3\n",
            "hop3.toml [healthcheck] retrys: unknown key; did you mean 'retries'? known keys: "
            "path, contains, status, timeout, retries",
        ),
        (
            "[waf]\nzzz = 1\n",
            "hop3.toml [waf] zzz: unknown key; known keys: enabled, mode, paranoia, methods, "
            "content-types",
        ),
        ("healthcheck = 3\n", "hop3.toml [healthcheck]: must be a table ([healthcheck]), got 3"),
        # metadata
        (
            "[metadata]\nversion = 1.2\n",
            'hop3.toml [metadata] version: must be a string, got 1.2 (quote it: "1.2")',
        ),
        ("[metadata]\ntitle = [1]\n", "hop3.toml [metadata] title: must be a string, got a list"),
        # healthcheck
        (
            '[healthcheck]\nretries = "x"\n',
            "hop3.toml [healthcheck] retries: must be an integer between 1 and 20, got 'x'",
        ),
        (
            "[healthcheck]\nretries = 21\n",
            "hop3.toml [healthcheck] retries: must be an integer between 1 and 20, got 21",
        ),
        (
            "[healthcheck]\ntimeout = true\n",
            "hop3.toml [healthcheck] timeout: must be an integer between 1 and 300, got true",
        ),
        (
            "[healthcheck]\ntimeout = 0\n",
            "hop3.toml [healthcheck] timeout: must be an integer between 1 and 300, got 0",
        ),
        (
            "[healthcheck]\nstatus = 99\n",
            "hop3.toml [healthcheck] status: must be an integer between 100 and 599, got 99",
        ),
        (
            '[healthcheck]\npath = "health"\n',
            "hop3.toml [healthcheck] path: must be a URL path starting with '/' without spaces "
            "or control characters (e.g. '/health'), got 'health'",
        ),
        (
            '[healthcheck]\npath = "/a b"\n',
            "hop3.toml [healthcheck] path: must be a URL path starting with '/' without spaces "
            "or control characters (e.g. '/health'), got '/a b'",
        ),
        ('[healthcheck]\ncontains = ""\n', "hop3.toml [healthcheck] contains: must not be empty"),
        # build
        (
            '[build]\nbuild = "make"\n',
            "hop3.toml [build] build: must be a list of commands, got 'make' "
            '(e.g. build = ["make"])',
        ),
        (
            '[build]\nbuild = ["make", ""]\n',
            "hop3.toml [build] build: item 2 must be a command, got an empty string",
        ),
        (
            "[build]\nbefore-build = [3]\n",
            "hop3.toml [build] before-build: item 1 must be a command (a string), got 3",
        ),
        (
            '[build]\npackages = ["libpq-dev; rm"]\n',
            "hop3.toml [build] packages: 'libpq-dev; rm' is not a valid Debian package name "
            "(e.g. libpq-dev)",
        ),
        (
            '[build]\nruntime = "ruby"\n',
            "hop3.toml [build] runtime: must be one of python, node, go, php, static, generic, got "
            "'ruby'",
        ),
        (
            '[build]\nstatic-dir = "/var/www"\n',
            "hop3.toml [build] static-dir: must be a path relative to the app directory, "
            "got '/var/www'",
        ),
        # run
        ('[run]\nstart = ""\n', "hop3.toml [run] start: must be a command, got an empty string"),
        (
            '[run]\nstart = """a\nb"""\n',
            "hop3.toml [run] start: must be a single line (put longer scripts in a file and run "
            "that)",
        ),
        ("[run]\nrelease = 1\n", "hop3.toml [run] release: must be a command (a string), got 1"),
        ("[run]\nworkers = 1\n", "hop3.toml [run] workers: must be a table, got 1"),
        (
            '[run.workers]\nWorker = "x"\n',
            "hop3.toml [run.workers] Worker: 'Worker' is not a valid process name: use 1-20 "
            "lowercase letters, digits, '_' or '-', starting with a letter (e.g. web, worker)",
        ),
        (
            '[run.workers]\nweb = "x"\n',
            "hop3.toml [run.workers] web: use [run] start for the web process",
        ),
        (
            '[run.workers]\ncron = "x"\n',
            "hop3.toml [run.workers] cron: 'cron' is a Procfile kind, not a worker name",
        ),
        (
            "[run.scale]\nweb = 21\n",
            "hop3.toml [run.scale] web: must be an integer between 0 and 20, got 21",
        ),
        (
            "[run.scale]\nweb = -1\n",
            "hop3.toml [run.scale] web: must be an integer between 0 and 20, got -1",
        ),
        # env
        (
            '[env]\nPORT = "80"\n',
            "hop3.toml [env] PORT: PORT is reserved: Hop3 sets it for each process",
        ),
        (
            '[env]\n"BAD-KEY" = "x"\n',
            "hop3.toml [env] BAD-KEY: 'BAD-KEY' is not a valid variable name: use letters, "
            "digits and '_', not starting with a digit (e.g. SECRET_KEY)",
        ),
        (
            "[env]\nWORKERS = 4\n",
            'hop3.toml [env] WORKERS: must be a string, got 4 (quote it: "4")',
        ),
        (
            "[env]\nDEBUG = true\n",
            'hop3.toml [env] DEBUG: must be a string, got true (quote it: "true")',
        ),
        ('[env]\nNUL = "a\\u0000b"\n', "hop3.toml [env] NUL: must not contain a NUL character"),
        (
            '[env]\nS = { generate = "uuid" }\n',
            "hop3.toml [env] S: generate must be one of hex, base64, password, got 'uuid' "
            '(e.g. { generate = "hex", length = 32 })',
        ),
        (
            '[env]\nS = { generate = "hex", length = 4 }\n',
            "hop3.toml [env] S: length must be an integer between 8 and 256, got 4",
        ),
        (
            '[env]\nS = { generate = "hex", size = 9 }\n',
            "hop3.toml [env] S: unknown key 'size' (known: generate, length)",
        ),
        (
            '[env]\n"A\\nB" = "x"\n',
            "hop3.toml [env] \"A\\nB\": 'A\\nB' is not a valid variable name: use letters, "
            "digits and '_', not starting with a digit (e.g. SECRET_KEY)",
        ),
        (
            '[env.production]\nX = "1"\n',
            'hop3.toml [env] production: must be a string, or a table like { generate = "hex", '
            "length = 32 }",
        ),
        # domains
        (
            '[domains]\nlist = ["exa mple.com"]\n',
            "hop3.toml [domains] list: 'exa mple.com' is not a valid domain name: label "
            "'exa mple' may only contain letters, digits and '-'",
        ),
        (
            '[domains]\nlist = ["a.example.com", "A.example.com"]\n',
            "hop3.toml [domains] list: 'a.example.com' is listed twice",
        ),
        (
            '[domains]\nlist = "a.example.com"\n',
            "hop3.toml [domains] list: must be a list of domain names, got 'a.example.com' "
            '(e.g. list = ["a.example.com"])',
        ),
        (
            "[domains]\nlist = [1]\n",
            "hop3.toml [domains] list: 1 is not a valid domain name: it must be a string",
        ),
        # addons
        (
            '[[addons]]\ntype = "mysql"\n',
            "hop3.toml [[addons]] #1 type: must be one of postgres, redis, mariadb, got 'mysql'",
        ),
        (
            '[[addons]]\nname = "db"\n',
            "hop3.toml [[addons]] #1 type: is required: one of postgres, redis, mariadb",
        ),
        (
            '[[addons]]\ntype = "redis"\n[[addons]]\ntype = "redis"\n',
            "hop3.toml [[addons]] #2 type: redis addon is declared twice",
        ),
        (
            '[[addons]]\ntype = "redis"\nversion = "7"\n',
            "hop3.toml [[addons]] #1 version: unknown key; known keys: type, name",
        ),
        (
            '[[addons]]\ntype = "postgres"\nname = "My DB"\n',
            "hop3.toml [[addons]] #1 name: 'My DB' is not a valid addon name: use 1-31 lowercase "
            "letters, digits or '_', starting with a letter",
        ),
        (
            '[addons]\ntype = "redis"\n',
            'hop3.toml [[addons]]: must be an array of tables: [[addons]] then type = "postgres"',
        ),
        # backup
        (
            '[backup]\npaths = ["../secrets"]\n',
            "hop3.toml [backup] paths: must stay inside the app directory (no '..'), got "
            "'../secrets'",
        ),
        # limits
        (
            '[limits]\nmemory = "12X"\n',
            "hop3.toml [limits] memory: must be a size like '512M' or '2G' (K, M or G; between "
            "16M and 64G), got '12X'",
        ),
        (
            "[limits]\nmemory = 512\n",
            "hop3.toml [limits] memory: must be a size like '512M' or '2G' (K, M or G; between "
            "16M and 64G), got 512",
        ),
        (
            '[limits]\ncpu = "0%"\n',
            "hop3.toml [limits] cpu: must be a percentage of one CPU core between 1% and 6400% "
            "(e.g. '50%'), got '0%'",
        ),
        (
            "[limits]\ntasks = 1\n",
            "hop3.toml [limits] tasks: must be an integer between 16 and 65536, got 1",
        ),
        # proxy
        (
            '[proxy]\nmax-body-size = "20 MB"\n',
            "hop3.toml [proxy] max-body-size: must be an nginx size like '20m', '512k' or '1g', "
            "got '20 MB'",
        ),
        (
            '[proxy]\nwebsockets = "yes"\n',
            "hop3.toml [proxy] websockets: must be true or false, got 'yes'",
        ),
        (
            '[proxy.static]\n"static" = "static"\n',
            "hop3.toml [proxy.static] static: 'static' is not a valid URL prefix: start with "
            "'/' and use letters, digits, '.', '_', '~', '-', '/' (e.g. '/static')",
        ),
        (
            '[proxy.static]\n"/s" = "/etc"\n',
            'hop3.toml [proxy.static] "/s": must be a path relative to the app directory, '
            "got '/etc'",
        ),
        # waf
        ('[waf]\nmode = "on"\n', "hop3.toml [waf] mode: must be one of block, detect, got 'on'"),
        (
            "[waf]\nparanoia = 5\n",
            "hop3.toml [waf] paranoia: must be an integer between 1 and 4, got 5",
        ),
        ('[waf]\nenabled = "true"\n', "hop3.toml [waf] enabled: must be true or false, got 'true'"),
        # rate limits
        *[
            (
                f"[proxy]\nrate-limit = {value}\n",
                "hop3.toml [proxy] rate-limit: must be a request rate per client address like "
                "'10r/s' or '600r/m' (1 to 999999 requests per second or minute), got " + shown,
            )
            for value, shown in (
                ('"10"', "'10'"),
                ('"10r/h"', "'10r/h'"),
                ('"0r/s"', "'0r/s'"),
                ('"10 r/s"', "'10 r/s'"),
                ('"1000000r/s"', "'1000000r/s'"),
                ('"10r/s; evil"', "'10r/s; evil'"),
                ('"10r/s\\n"', "'10r/s\\n'"),
                ("10", "10"),
            )
        ],
        (
            '[proxy]\nrate-limit = "5r/s"\nrate-limit-burst = -1\n',
            "hop3.toml [proxy] rate-limit-burst: must be an integer between 0 and 100000, got -1",
        ),
        (
            '[proxy]\nrate-limit = "5r/s"\nrate-limit-burst = "20"\n',
            "hop3.toml [proxy] rate-limit-burst: must be an integer between 0 and 100000, got '20'",
        ),
        (
            "[proxy]\nrate-limit-burst = 20\n",
            "hop3.toml [proxy] rate-limit-burst: needs a rate: set rate-limit too "
            '(e.g. rate-limit = "10r/s")',
        ),
        # tls
        (
            '[tls]\nmode = "on"\n',
            "hop3.toml [tls] mode: must be one of acme, self-signed, off, got 'on'",
        ),
        ('[tls]\nhsts = "yes"\n', "hop3.toml [tls] hsts: must be true or false, got 'yes'"),
        (
            "[tls]\nhsts = true\n",
            'hop3.toml [tls] hsts: needs HTTPS: set mode = "acme" or "self-signed" too',
        ),
        (
            '[tls]\nmode = "off"\nhsts = true\n',
            'hop3.toml [tls] hsts: needs HTTPS: set mode = "acme" or "self-signed" too',
        ),
        (
            '[tls]\nmod = "acme"\n',
            "hop3.toml [tls] mod: unknown key; did you mean 'mode'? known keys: mode, hsts",
        ),
    ],
)
def test_problem_texts(text: str, expected: str) -> None:
    _, problems = parse(text)
    assert problems == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[metadata]\nid = "x"\n[build\n',
            "hop3.toml line 3: invalid TOML: Expected ']' at the end of a table declaration "
            "(column 7)",
        ),
        ("a = ", "hop3.toml end of file: invalid TOML: Invalid value"),
        (
            '[run]\nstart = "a"\nstart = "b"\n',
            "hop3.toml line 3: invalid TOML: Cannot overwrite a value (column 12)",
        ),
    ],
)
def test_toml_syntax_errors_have_line_numbers(text: str, expected: str) -> None:
    layer, problems = parse(text)
    assert layer is None
    assert problems == [expected]


def test_all_problems_of_a_mistyped_file_at_once() -> None:
    _, problems = parse(
        """
[bulid]
build = ["make"]

[healthcheck]
retries = "x"
timeout = 900

[domains]
list = ["exa mple.com", "ok.example.com"]

[limits]
memory = "12X"
"""
    )
    assert problems == [
        "hop3.toml [bulid]: unknown section; did you mean 'build'? known sections: "
        + ", ".join(SECTIONS),
        "hop3.toml [healthcheck] timeout: must be an integer between 1 and 300, got 900",
        "hop3.toml [healthcheck] retries: must be an integer between 1 and 20, got 'x'",
        "hop3.toml [domains] list: 'exa mple.com' is not a valid domain name: label 'exa mple' "
        "may only contain letters, digits and '-'",
        "hop3.toml [limits] memory: must be a size like '512M' or '2G' (K, M or G; between 16M "
        "and 64G), got '12X'",
    ]


HOSTILE = [
    "line1\nline2\r\nline3",
    'it\'s "quoted" and `backticked`',
    "$(rm -rf /) ${HOME} $PORT",
    "{{ lookup('pipe', 'id') }} {% raw %} {# c #}",
    "100% %s %(x)s %%",
    "tab\there; semicolon; & ampersand | pipe > redirect",
    "\\backslash\\ and unicode é 🚀 \u202e",
    " leading and trailing spaces ",
    "=starts with equals",
    "",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_env_values_are_kept_byte_for_byte(value: str) -> None:
    escaped = value.encode("unicode_escape").decode("ascii").replace('"', '\\"')
    escaped = escaped.replace("\\x", "\\u00")
    layer, problems = parse(f'[env]\nVALUE = "{escaped}"\n')
    assert problems == []
    assert layer is not None
    assert layer.env["VALUE"] == value
