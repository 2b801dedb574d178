"""Errors: every problem reported at once, with exact file/where/message texts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hop3.appspec import AppSpecError, Problem, load_app
from hop3.appspec.toml_spec import SECTIONS
from hop3.errors import HopError

RULE = "use 1-30 lowercase letters, digits or '-', starting with a letter (e.g. my-app)."


def write_app(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def problems_of(root: Path, name: str | None = None) -> list[str]:
    with pytest.raises(AppSpecError) as caught:
        load_app(root, name)
    return [str(p) for p in caught.value.problems]


# --- app names -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../x", "A B", "-x", "a" * 31, "x-", "", "a\nb"])
def test_bad_name_argument(tmp_path: Path, name: str) -> None:
    write_app(tmp_path, {"Procfile": "web: x"})
    assert problems_of(tmp_path, name) == [f"app name: {name!r} is not a valid app name: {RULE}"]


def test_reserved_name_argument(tmp_path: Path) -> None:
    write_app(tmp_path, {"Procfile": "web: x"})
    assert problems_of(tmp_path, "root") == [
        "app name: 'root' is a reserved name (it clashes with a system account or service): "
        "pick another, e.g. my-root."
    ]


def test_bad_metadata_id(tmp_path: Path) -> None:
    write_app(tmp_path, {"Procfile": "web: x", "hop3.toml": '[metadata]\nid = "My Shop"\n'})
    assert problems_of(tmp_path) == [
        f"hop3.toml [metadata] id: 'My Shop' is not a valid app name: {RULE}"
    ]


@pytest.mark.parametrize("dirname", ["my app", "www", "1st", "under_score"])
def test_bad_directory_name_says_to_pass_app(tmp_path: Path, dirname: str) -> None:
    root = write_app(tmp_path / dirname, {"Procfile": "web: x"})
    problems = problems_of(root)
    assert len(problems) == 1
    assert problems[0].startswith("app name: the directory name is used as the app name, but ")
    assert f"{dirname!r} is" in problems[0]
    assert problems[0].endswith("Pass --app NAME or set [metadata] id in hop3.toml.")
    assert load_app(root, "fine").name == "fine"


# --- the error object and its message -------------------------------------------------


def test_message_lists_every_problem_in_one_block(tmp_path: Path) -> None:
    write_app(
        tmp_path,
        {
            "hop3.toml": '[healthcheck]\nretries = "x"\n[limits]\nmemory = "12X"\n',
            "Procfile": "web: ok\nnot a process line\n",
        },
    )
    with pytest.raises(AppSpecError) as caught:
        load_app(tmp_path, "shop")
    error = caught.value
    assert isinstance(error, HopError)
    assert error.exit_code == 1
    assert error.hint == "Fix them and run the command again."
    assert error.message == (
        f"The app in {tmp_path} has 3 problems:\n"
        "  hop3.toml [healthcheck] retries: must be an integer between 1 and 20, got 'x'\n"
        "  hop3.toml [limits] memory: must be a size like '512M' or '2G' (K, M or G; between "
        "16M and 64G), got '12X'\n"
        "  Procfile line 2: expected 'name: command', got 'not a process line'"
    )
    assert str(error) == f"{error.message} {error.hint}"
    assert error.problems[0] == Problem(
        "hop3.toml",
        "[healthcheck] retries",
        "must be an integer between 1 and 20, got 'x'",
    )
    assert error.path == tmp_path


def test_one_problem_is_singular(tmp_path: Path) -> None:
    write_app(tmp_path, {"Procfile": "web: x", "hop3.toml": "[waf]\nparanoia = 9\n"})
    with pytest.raises(AppSpecError) as caught:
        load_app(tmp_path, "x")
    assert caught.value.message.startswith(f"The app in {tmp_path} has 1 problem:\n  ")


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(HopError) as caught:
        load_app(tmp_path / "missing")
    assert not isinstance(caught.value, AppSpecError)
    assert caught.value.message == f"{tmp_path / 'missing'} is not a directory."


# --- everything at once: the corpus ---------------------------------------------------

MISTYPED_TOML = """
[metadata]
id = "shop"
version = 2

[bulid]
build = ["make"]

[run]
start = ""

[run.scale]
web = "two"

[env]
PORT = "8000"
"1BAD" = "x"
GOOD = "fine"
SECRET = { generate = "uuid", length = 2 }

[healthcheck]
path = "health"
retries = "x"
timeout = 0

[domains]
list = ["exa mple.com", "ok.example.com", "OK.example.com"]

[limits]
memory = "12X"
cpu = "200"

[proxy]
max-body-size = "big"

[waf]
mode = "on"
"""

GARBAGE_PROCFILE = """\
# processes
web gunicorn app:app
worker:
Bad Name: x
cron: 61 * * * * python job.py
cron: 0 0 1 * 1 python job.py
release: a
release: b
"""

BAD_APP_JSON = {
    "env": {"PORT": "1", "OK": {"generator": "uuid"}},
    "formation": {"web": {"quantity": 99}},
    "healthchecks": {"web": [{"attempts": 0}]},
}


def test_every_problem_in_every_file_at_once(tmp_path: Path) -> None:
    write_app(
        tmp_path,
        {
            "hop3.toml": MISTYPED_TOML,
            "Procfile": GARBAGE_PROCFILE,
            "app.json": json.dumps(BAD_APP_JSON, indent=2),
            "requirements.txt": "flask\n",
        },
    )
    assert problems_of(tmp_path, "../x") == [
        f"app name: '../x' is not a valid app name: {RULE}",
        'hop3.toml [metadata] version: must be a string, got 2 (quote it: "2")',
        "hop3.toml [bulid]: unknown section; did you mean 'build'? known sections: "
        + ", ".join(SECTIONS),
        "hop3.toml [run] start: must be a command, got an empty string",
        "hop3.toml [run.scale] web: must be an integer between 0 and 20, got 'two'",
        "hop3.toml [env] PORT: PORT is reserved: Hop3 sets it for each process",
        "hop3.toml [env] 1BAD: '1BAD' is not a valid variable name: use letters, digits and "
        "'_', not starting with a digit (e.g. SECRET_KEY)",
        "hop3.toml [env] SECRET: generate must be one of hex, base64, password, got 'uuid' "
        '(e.g. { generate = "hex", length = 32 })',
        "hop3.toml [env] SECRET: length must be an integer between 8 and 256, got 2",
        "hop3.toml [healthcheck] path: must be a URL path starting with '/' without spaces or "
        "control characters (e.g. '/health'), got 'health'",
        "hop3.toml [healthcheck] timeout: must be an integer between 1 and 300, got 0",
        "hop3.toml [healthcheck] retries: must be an integer between 1 and 20, got 'x'",
        "hop3.toml [domains] list: 'exa mple.com' is not a valid domain name: label "
        "'exa mple' may only contain letters, digits and '-'",
        "hop3.toml [domains] list: 'ok.example.com' is listed twice",
        "hop3.toml [limits] memory: must be a size like '512M' or '2G' (K, M or G; between 16M "
        "and 64G), got '12X'",
        "hop3.toml [limits] cpu: must be a percentage of one CPU core between 1% and 6400% "
        "(e.g. '50%'), got '200'",
        "hop3.toml [proxy] max-body-size: must be an nginx size like '20m', '512k' or '1g', "
        "got 'big'",
        "hop3.toml [waf] mode: must be one of block, detect, got 'on'",
        "Procfile line 2: expected 'name: command', got 'web gunicorn app:app'",
        "Procfile line 3: 'worker' must be a command, got an empty string",
        "Procfile line 4: expected 'name: command', got 'Bad Name: x'",
        "Procfile line 5: cron schedule '61 * * * *' is invalid: minute must be 0-59",
        "Procfile line 6: cron schedule '0 0 1 * 1' is invalid: restricting both day-of-month "
        "and day-of-week is not supported (cron runs when either matches, systemd only when "
        "both do); use two cron entries, one for each",
        "Procfile line 8: 'release' is defined twice (first on line 7); keep one",
        "app.json env.PORT: PORT is reserved: Hop3 sets it for each process",
        "app.json env.OK.generator: only \"secret\" is supported, got 'uuid'",
        "app.json formation.web.quantity: must be an integer between 0 and 20, got 99",
        "app.json healthchecks.web[0].attempts: must be an integer between 1 and 20, got 0",
    ]


def test_toml_syntax_error_does_not_hide_other_files(tmp_path: Path) -> None:
    write_app(
        tmp_path,
        {"hop3.toml": '[run]\nstart = "x\n', "Procfile": "worker:\n", "app.json": "{"},
    )
    assert problems_of(tmp_path, "x") == [
        "hop3.toml line 2: invalid TOML: Illegal character '\\n' (column 11)",
        "Procfile line 1: 'worker' must be a command, got an empty string",
        "app.json line 1: invalid JSON: Expecting property name enclosed in double quotes "
        "(column 2)",
    ]  # and no "cannot tell how to build" guess on top of a file that could not be read


# --- cross-file problems ----------------------------------------------------------------


def test_defined_in_both_procfile_and_hop3_toml(tmp_path: Path) -> None:
    write_app(
        tmp_path,
        {
            "Procfile": "web: a\nrelease: b\nworker: c\nstatic: public\n",
            "hop3.toml": """
[build]
static-dir = "site"
[run]
start = "A"
release = "B"
[run.workers]
worker = "C"
""",
        },
    )
    assert problems_of(tmp_path, "x") == [
        "Procfile line 1: 'web' is defined in both Procfile and hop3.toml [run] start; keep one",
        "Procfile line 3: 'worker' is defined in both Procfile and hop3.toml [run.workers] "
        "worker; keep one",
        "Procfile line 2: 'release' is defined in both Procfile and hop3.toml [run] release; "
        "keep one",
        "Procfile line 4: 'static' is defined in both Procfile and hop3.toml [build] "
        "static-dir; keep one",
        "hop3.toml [build] static-dir: a static site ('site') and a web process both want to "
        "serve /: keep one, or serve the files under a URL prefix with [proxy] static",
    ]


def test_scale_of_unknown_process(tmp_path: Path) -> None:
    write_app(
        tmp_path,
        {
            "Procfile": "web: a\nworker: b\n",
            "hop3.toml": "[run.scale]\nwrker = 2\n",
            "app.json": json.dumps({"formation": {"clock": {"quantity": 1}}}),
        },
    )
    assert problems_of(tmp_path, "x") == [
        "app.json formation.clock.quantity: no process named 'clock' (processes: web, worker)",
        "hop3.toml [run.scale] wrker: no process named 'wrker' (processes: web, worker)",
    ]


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {},
            "cannot tell how to build this app: add requirements.txt/pyproject.toml (Python), "
            "package.json (Node), go.mod (Go), a public/ dir (static) or a Procfile",
        ),
        (
            {"README.md": "hello", "Procfile": "# empty\n"},
            "cannot tell how to build this app: add requirements.txt/pyproject.toml (Python), "
            "package.json (Node), go.mod (Go), a public/ dir (static) or a Procfile",
        ),
        (
            {"requirements.txt": "flask"},
            "no web process: add `web: <command>` to the Procfile or [run] start to hop3.toml",
        ),
        (
            {"package.json": "{}"},
            "no web process: add `web: <command>` to the Procfile or [run] start to hop3.toml, "
            'or a "start" script to package.json',
        ),
        (
            {"hop3.toml": '[build]\nruntime = "generic"\n'},
            "nothing to run: add a Procfile with a process (web: <command>), [run] start in "
            "hop3.toml, a static dir ([build] static-dir or 'static: <dir>') or build commands",
        ),
        (
            {"hop3.toml": '[build]\nruntime = "static"\n'},
            "hop3.toml [build] runtime: 'static' needs a static directory: set [build] "
            "static-dir, add 'static: <dir>' to the Procfile, or add public/index.html",
        ),
        (
            {"Procfile": "web: a\nstatic: public\n"},
            "Procfile line 2: a static site ('public') and a web process both want to serve /: "
            "keep one, or serve the files under a URL prefix with [proxy] static",
        ),
    ],
)
def test_nothing_to_run(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    write_app(tmp_path, files)
    assert problems_of(tmp_path, "x") == [expected]


def test_a_python_worker_only_app_is_fine(tmp_path: Path) -> None:
    write_app(tmp_path, {"requirements.txt": "", "Procfile": "worker: python bot.py\n"})
    assert list(load_app(tmp_path, "bot").processes) == ["worker"]


def test_a_broken_procfile_line_does_not_add_no_web_process(tmp_path: Path) -> None:
    write_app(tmp_path, {"requirements.txt": "", "Procfile": "web python app.py\n"})
    assert problems_of(tmp_path, "x") == [
        "Procfile line 1: expected 'name: command', got 'web python app.py'"
    ]


def test_package_json_problems(tmp_path: Path) -> None:
    write_app(tmp_path, {"package.json": '{"scripts": []}', "Procfile": "web: node ."})
    assert problems_of(tmp_path, "x") == ["package.json scripts: must be an object, got a list"]
    write_app(tmp_path, {"package.json": "{oops"})
    assert problems_of(tmp_path, "x") == [
        "package.json line 1: invalid JSON: Expecting property name enclosed in double quotes "
        "(column 2)"
    ]


# --- unreadable files -------------------------------------------------------------------


def test_symlink_outside_the_app_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("web: cat /etc/shadow\n")
    app = tmp_path / "app"
    app.mkdir()
    (app / "Procfile").symlink_to(outside)
    (app / "requirements.txt").symlink_to(outside)
    problems = problems_of(app, "x")
    assert problems == ["Procfile: is a symlink to outside the app directory"]


def test_symlink_inside_the_app_is_followed(tmp_path: Path) -> None:
    write_app(tmp_path, {"deploy/Procfile": "web: x\n"})
    (tmp_path / "Procfile").symlink_to("deploy/Procfile")
    assert load_app(tmp_path, "x").processes["web"].command == "x"


def test_non_utf8_and_oversized_files(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_bytes(b"web: caf\xe9\n")
    (tmp_path / "app.json").write_bytes(b" " * (1024 * 1024 + 1))
    (tmp_path / "hop3.toml").mkdir()
    assert problems_of(tmp_path, "x") == [
        "hop3.toml: must be a regular file",
        "Procfile: is not UTF-8 text (bad byte at offset 8)",
        "app.json: is too large (1048577 bytes, at most 1 MiB)",
    ]


# --- hostile values travel unchanged ------------------------------------------------------

HOSTILE = {
    "NEWLINES": "line1\nline2\r\nline3\n",
    "QUOTES": 'it\'s "quoted" and `backticked`',
    "SHELL": "$(rm -rf /) ${HOME} $PORT; echo pwned > /tmp/x",
    "JINJA": "{{ lookup('pipe', 'id') }} {% raw %} {# c #}",
    "PERCENT": "100% %s %(x)s %%",
    "NGINX": "x; } server { listen 80; }",
    "UNICODE": "\\ é 🚀 \u202e \t",
    "SPACES": "  padded  ",
}


def test_hostile_env_values_survive_both_files_byte_for_byte(tmp_path: Path) -> None:
    toml_lines = ["[env]"]
    for key, value in HOSTILE.items():
        toml_lines.append(f"T_{key} = {json.dumps(value, ensure_ascii=False)}")
    app_json = {"env": {f"J_{k}": v for k, v in HOSTILE.items()}}
    app_json["env"]["J_OBJ"] = {"value": HOSTILE["JINJA"], "required": True}
    write_app(
        tmp_path,
        {
            "hop3.toml": "\n".join(toml_lines) + "\n",
            "app.json": json.dumps(app_json),
            "Procfile": "web: x",
        },
    )
    spec = load_app(tmp_path, "x")
    for key, value in HOSTILE.items():
        assert spec.env[f"T_{key}"].encode() == value.encode()
        assert spec.env[f"J_{key}"].encode() == value.encode()
    assert spec.env["J_OBJ"] == HOSTILE["JINJA"]
    assert json.loads(json.dumps(spec.to_vars()))["env"] == spec.env
