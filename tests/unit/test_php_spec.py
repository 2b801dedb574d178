"""The PHP runtime in the app definition: detection, [php] and its problems."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hop3.appspec import AppSpecError, load_app
from hop3.appspec.load import DEFAULT_PHP_WEB

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "php-guestbook"


def write_app(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def problems_of(root: Path) -> list[str]:
    with pytest.raises(AppSpecError) as err:
        load_app(root, "x")
    return [str(problem) for problem in err.value.problems]


def test_index_php_makes_a_php_app_served_by_php_fpm(tmp_path: Path) -> None:
    spec = load_app(write_app(tmp_path, {"index.php": "<?php echo 1;"}), "x")
    assert spec.runtime == "php"
    assert spec.php == {"root": ".", "extensions": [], "ini": {}, "fpm": True}
    assert {name: p.command for name, p in spec.processes.items()} == {"web": DEFAULT_PHP_WEB}
    assert spec.static_dir is None


def test_the_example_reads_its_php_section() -> None:
    spec = load_app(EXAMPLE)
    assert spec.runtime == "php" and spec.php["root"] == "."
    assert spec.php["ini"]["date.timezone"] == "UTC"
    assert json.loads(json.dumps(spec.to_vars()))["php"] == spec.php


@pytest.mark.parametrize(
    ("files", "runtime"),
    [
        ({"index.php": "", "requirements.txt": "", "Procfile": "web: x\n"}, "python"),
        ({"index.php": "", "package.json": "{}", "Procfile": "web: node s.js\n"}, "node"),
        ({"index.php": "", "go.mod": "module x\n"}, "go"),
        ({"index.php": "", "public/index.html": ""}, "php"),  # before static
        ({"public/index.php": "", "public/index.html": ""}, "static"),  # only at the root
        ({"hop3.toml": '[build]\nruntime = "php"\n[php]\nroot = "web/"\n'}, "php"),
    ],
)
def test_detection_order(tmp_path: Path, files: dict[str, str], runtime: str) -> None:
    assert load_app(write_app(tmp_path, files), "x").runtime == runtime


def test_php_section_is_read_and_normalized(tmp_path: Path) -> None:
    toml = """
[build]
runtime = "php"
[php]
root = "./public/"
extensions = ["mysql", "gd", "mysql"]
[php.ini]
upload_max_filesize = "20M"
"session.gc_maxlifetime" = 1440
display_errors = false
"""
    spec = load_app(write_app(tmp_path, {"hop3.toml": toml}), "x")
    assert spec.php == {
        "root": "public",
        "extensions": ["mysql", "gd"],
        "ini": {"upload_max_filesize": "20M", "session.gc_maxlifetime": "1440",
                "display_errors": "0"},
        "fpm": True,
    }  # fmt: skip


def test_own_web_process_means_no_php_fpm(tmp_path: Path) -> None:
    files = {"index.php": "", "Procfile": "web: php -S 127.0.0.1:$PORT\n"}
    spec = load_app(write_app(tmp_path, files), "x")
    assert spec.php["fpm"] is False
    assert spec.processes["web"].command == "php -S 127.0.0.1:$PORT"


def test_other_runtimes_have_no_php_in_their_vars(tmp_path: Path) -> None:
    spec = load_app(write_app(tmp_path, {"requirements.txt": "", "Procfile": "web: x\n"}), "x")
    assert spec.php is None and "php" not in spec.to_vars()


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            '[php]\nroot = "../up"\n',
            "hop3.toml [php] root: must stay inside the app directory (no '..'), got '../up'",
        ),
        (
            '[php]\nextensions = "gd"\n',
            "hop3.toml [php] extensions: must be a list of PHP extension names, got 'gd' "
            '(e.g. extensions = ["gd"])',
        ),
        (
            '[php]\nextensions = ["GD;rm"]\n',
            "hop3.toml [php] extensions: 'GD;rm' is not a PHP extension name: use the name in "
            'the Debian package php8.2-<name>, e.g. "mysql", "gd", "intl"',
        ),
        (
            '[php]\nmodules = ["gd"]\n',
            "hop3.toml [php] modules: unknown key; known keys: root, extensions, ini",
        ),
        (
            '[php]\nini = { "a=b" = "1" }\n',
            "hop3.toml [php.ini] \"a=b\": 'a=b' is not a PHP ini setting name: use letters, "
            "digits, '_' and '.' (e.g. upload_max_filesize)",
        ),
        (
            '[php]\nini = { memory_limit = "1\\nx = 2" }\n',
            "hop3.toml [php.ini] memory_limit: '1\\nx = 2' cannot be a PHP ini value: no quotes, "
            "'$', backslashes or control characters (newlines)",
        ),
        (
            '[php]\nini = { x = "${HOME}" }\n',
            "hop3.toml [php.ini] x: '${HOME}' cannot be a PHP ini value: no quotes, '$', "
            "backslashes or control characters (newlines)",
        ),
        (
            '[php]\nini = { x = "a\\"b" }\n',
            "hop3.toml [php.ini] x: 'a\"b' cannot be a PHP ini value: no quotes, '$', "
            "backslashes or control characters (newlines)",
        ),
        (
            "[php]\nini = { x = [1] }\n",
            "hop3.toml [php.ini] x: must be a string, an integer or true/false, got a list",
        ),
        ('[php]\nini = "x=1"\n', "hop3.toml [php] ini: must be a table, got 'x=1'"),
    ],
)
def test_php_problems(tmp_path: Path, toml: str, expected: str) -> None:
    write_app(tmp_path, {"index.php": "", "hop3.toml": toml})
    assert problems_of(tmp_path) == [expected]


def test_php_section_on_another_runtime_is_a_problem(tmp_path: Path) -> None:
    files = {"requirements.txt": "", "Procfile": "web: x\n", "hop3.toml": '[php]\nroot = "."\n'}
    assert problems_of(write_app(tmp_path, files)) == [
        "hop3.toml [php]: is for PHP apps, but this app's runtime is 'python': remove [php], "
        'or set [build] runtime = "php"'
    ]


def test_all_php_problems_are_reported_at_once(tmp_path: Path) -> None:
    toml = '[php]\nroot = "/abs"\nextensions = [1]\nini = { "bad name" = "x", ok = "$y" }\n'
    problems = problems_of(write_app(tmp_path, {"index.php": "", "hop3.toml": toml}))
    assert len(problems) == 4
