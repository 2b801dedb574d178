"""app.json (Heroku/Dokku): env, formation, healthchecks, scripts, addons."""

from __future__ import annotations

import json

import pytest

from hop3.appspec.appjson import parse_app_json
from hop3.appspec.model import Layer, Problems


def parse(data: object) -> tuple[Layer | None, list[str]]:
    problems = Problems()
    text = data if isinstance(data, str) else json.dumps(data)
    layer = parse_app_json(text, problems)
    return layer, [str(p) for p in problems.items]


HEROKU = {
    "name": "Small Sharp Tool",
    "description": "This app does one little thing, and does it well.",
    "keywords": ["productivity", "HTML5"],
    "website": "https://small-sharp-tool.com/",
    "repository": "https://github.com/jane-doe/small-sharp-tool",
    "logo": "https://small-sharp-tool.com/logo.svg",
    "success_url": "/welcome",
    "stack": "heroku-22",
    "buildpacks": [{"url": "heroku/python"}],
    "environments": {"test": {"scripts": {"test": "pytest"}}},
    "scripts": {
        "postdeploy": "bundle exec rake bootstrap",
        "dokku": {"predeploy": "python manage.py collectstatic --noinput", "postdeploy": "x"},
    },
    "env": {
        "SECRET_TOKEN": {
            "description": "A secret key for verifying the integrity of signed cookies.",
            "generator": "secret",
        },
        "WEB_CONCURRENCY": {"description": "The number of processes to run.", "value": "5"},
        "PLAIN": "value",
        "OPTIONAL": {"description": "set me later", "required": False},
    },
    "formation": {"web": {"quantity": 2, "size": "standard-1x"}, "worker": {"quantity": 1}},
    "healthchecks": {
        "web": [
            {"type": "liveness", "path": "/live"},
            {
                "type": "startup",
                "name": "web check",
                "path": "/health",
                "content": "ok",
                "timeout": 5,
                "attempts": 3,
                "wait": 2,
            },
        ],
        "worker": [{"type": "startup", "command": ["true"]}],
    },
    "addons": [
        "openredis",
        {"plan": "heroku-postgresql:essential-0", "as": "DATABASE"},
        "heroku-redis:mini",
        "rediscloud",
    ],
}


def test_heroku_app_json() -> None:
    layer, problems = parse(HEROKU)
    assert problems == []
    assert layer is not None
    assert layer.title == "Small Sharp Tool"
    assert layer.env == {"WEB_CONCURRENCY": "5", "PLAIN": "value"}
    assert layer.env_generate == {"SECRET_TOKEN": {"generate": "hex", "length": 64}}
    assert layer.scale == {
        "web": (2, "formation.web.quantity"),
        "worker": (1, "formation.worker.quantity"),
    }
    assert layer.healthcheck == {"path": "/health", "contains": "ok", "timeout": 5, "retries": 3}
    assert layer.after_build == ["python manage.py collectstatic --noinput"]
    assert layer.addons == [{"type": "postgres"}, {"type": "redis"}]


def test_minimal_app_json() -> None:
    layer, problems = parse({})
    assert problems == []
    assert layer == Layer(file="app.json")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([], "app.json: must be a JSON object, got a list"),
        ({"name": 3}, "app.json name: must be a string, got 3"),
        ({"env": []}, "app.json env: must be an object, got a list"),
        (
            {"env": {"PORT": "1"}},
            "app.json env.PORT: PORT is reserved: Hop3 sets it for each process",
        ),
        (
            {"env": {"A-B": "1"}},
            "app.json env.A-B: 'A-B' is not a valid variable name: use letters, digits and '_', "
            "not starting with a digit (e.g. SECRET_KEY)",
        ),
        (
            {"env": {"N": 5}},
            'app.json env.N: must be a string or an object like {"value": "..."}, got 5',
        ),
        (
            {"env": {"N": {"value": 5}}},
            'app.json env.N.value: must be a string, got 5 (quote it: "5")',
        ),
        (
            {"env": {"N": {"generator": "uuid"}}},
            "app.json env.N.generator: only \"secret\" is supported, got 'uuid'",
        ),
        (
            {"env": {"N": {"required": "yes"}}},
            "app.json env.N.required: must be true or false, got 'yes'",
        ),
        (
            {"formation": {"web": {"quantity": 50}}},
            "app.json formation.web.quantity: must be an integer between 0 and 20, got 50",
        ),
        (
            {"formation": {"web": {"quantity": "2"}}},
            "app.json formation.web.quantity: must be an integer between 0 and 20, got '2'",
        ),
        (
            {"formation": {"web": 2}},
            'app.json formation.web: must be an object like {"quantity": 1}, got 2',
        ),
        (
            {"formation": {"Web": {"quantity": 1}}},
            "app.json formation.Web: 'Web' is not a valid process name: use 1-20 lowercase "
            "letters, digits, '_' or '-', starting with a letter (e.g. web, worker)",
        ),
        (
            {"healthchecks": {"web": {}}},
            "app.json healthchecks.web: must be a list of checks, got an object",
        ),
        (
            {"healthchecks": {"web": [{"attempts": 0}]}},
            "app.json healthchecks.web[0].attempts: must be an integer between 1 and 20, got 0",
        ),
        (
            {"healthchecks": {"web": [{"timeout": 301}]}},
            "app.json healthchecks.web[0].timeout: must be an integer between 1 and 300, got 301",
        ),
        (
            {"healthchecks": {"web": [{"path": "x"}]}},
            "app.json healthchecks.web[0].path: must be a URL path starting with '/' without "
            "spaces or control characters (e.g. '/health'), got 'x'",
        ),
        (
            {"healthchecks": {"web": [{"content": ""}]}},
            "app.json healthchecks.web[0].content: must be a non-empty string, got ''",
        ),
        (
            {"scripts": {"dokku": {"predeploy": ""}}},
            "app.json scripts.dokku.predeploy: must be a command, got an empty string",
        ),
        ({"addons": "heroku-redis"}, "app.json addons: must be a list, got 'heroku-redis'"),
        ({"addons": [3]}, 'app.json addons[0]: must be a plan name or {"plan": "..."}, got 3'),
    ],
)
def test_problem_texts(data: object, expected: str) -> None:
    _, problems = parse(data)
    assert problems == [expected]


def test_json_syntax_error_has_line_and_column() -> None:
    layer, problems = parse('{\n  "name": "x",\n  "env": {,}\n}')
    assert layer is None
    assert problems == [
        "app.json line 3: invalid JSON: Expecting property name enclosed in double quotes "
        "(column 11)"
    ]


def test_ignored_heroku_keys_and_scripts_produce_no_problem() -> None:
    layer, problems = parse({"scripts": {"postdeploy": "x", "dokku": {"postdeploy": "y"}}})
    assert problems == []
    assert layer is not None
    assert layer.after_build is None
