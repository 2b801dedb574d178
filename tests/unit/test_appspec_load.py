"""load_app on the example shapes, runtime detection, and how the files combine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hop3.appspec import AppSpec, AppSpecError, CronJob, HealthCheck, Process, load_app

FIXTURES = Path(__file__).parent / "fixtures" / "apps"


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


# --- the example shapes ----------------------------------------------------------


def test_flask_requirements_and_procfile() -> None:
    spec = load_app(FIXTURES / "flask")
    assert spec.name == "flask"
    assert spec.root == FIXTURES / "flask"
    assert spec.runtime == "python"
    assert spec.processes == {
        "web": Process("web", "gunicorn -b 127.0.0.1:$PORT app:app", 1),
    }
    assert spec.release is None
    assert spec.cron == []
    assert spec.static_dir is None
    assert spec.sources == ["Procfile"]
    assert spec.healthcheck == HealthCheck()
    assert spec.limits == {"memory": None, "cpu": None, "tasks": 512}
    assert spec.proxy == {
        "max_body_size": "10m",
        "websockets": True,
        "rate_limit": None,
        "rate_limit_burst": None,
    }
    # Secure by default: the WAF blocks; HTTPS is opt-in.
    assert spec.waf == {
        "enabled": True,
        "mode": "block",
        "paranoia": 1,
        "methods": [],
        "content_types": [],
    }
    assert spec.tls == {"mode": "off", "hsts": False}
    assert spec.backup == {"paths": [], "exclude": []}
    assert spec.build == {
        "packages": [],
        "before_build": [],
        "build": [],
        "after_build": [],
        "node_build_script": False,
        "node_lockfile": False,
    }


def test_fastapi_pyproject_and_hop3_toml() -> None:
    spec = load_app(FIXTURES / "fastapi")
    assert spec.name == "fast-api"  # from [metadata] id, not the directory
    assert spec.runtime == "python"
    assert (spec.version, spec.title) == ("1.2", "FastAPI demo")
    assert spec.processes["web"].command == "uvicorn main:app --host 127.0.0.1 --port $PORT"
    assert spec.healthcheck == HealthCheck(
        path="/health", contains="ok", status=200, timeout=10, retries=5
    )
    assert spec.domains == ["api.example.com", "*.apps.example.com"]
    assert spec.sources == ["hop3.toml"]


def test_node_with_lockfile_and_build_script() -> None:
    spec = load_app(FIXTURES / "node")
    assert spec.runtime == "node"
    assert spec.build["node_build_script"] is True
    assert spec.build["node_lockfile"] is True
    assert spec.processes == {"web": Process("web", "npm start")}
    assert spec.sources == []


def test_node_without_lockfile_or_scripts(tmp_path: Path) -> None:
    write_app(
        tmp_path,
        {"package.json": '{"name": "x"}', "Procfile": "web: node server.js\n"},
    )
    spec = load_app(tmp_path, "x")
    assert spec.build["node_lockfile"] is False
    assert spec.build["node_build_script"] is False
    assert spec.processes["web"].command == "node server.js"


def test_node_shrinkwrap_counts_as_lockfile(tmp_path: Path) -> None:
    scripts = {"scripts": {"start": "node ."}}
    write_app(tmp_path, {"package.json": json.dumps(scripts), "npm-shrinkwrap.json": "{}"})
    spec = load_app(tmp_path, "x")
    assert spec.build["node_lockfile"] is True


def test_go_module_gets_default_web() -> None:
    spec = load_app(FIXTURES / "go")
    assert spec.runtime == "go"
    assert spec.processes == {"web": Process("web", "bin/app")}


def test_static_public_dir() -> None:
    spec = load_app(FIXTURES / "static")
    assert spec.runtime == "static"
    assert spec.static_dir == "public"
    assert spec.processes == {}


def test_generic_with_only_build_commands() -> None:
    spec = load_app(FIXTURES / "generic")
    assert spec.name == "generic"
    assert spec.runtime == "generic"
    assert spec.build["build"] == ["make site"]
    assert spec.build["packages"] == ["make"]
    assert spec.processes == {}


def test_workers_release_cron_and_scale() -> None:
    spec = load_app(FIXTURES / "workers")
    assert spec.runtime == "python"
    assert list(spec.processes) == ["web", "worker", "beat"]
    assert spec.processes["web"] == Process("web", "gunicorn app:app", 2)
    assert spec.processes["worker"] == Process("worker", "celery -A tasks worker", 3)
    assert spec.processes["beat"] == Process("beat", "celery -A tasks beat", 0)
    assert spec.release == "python manage.py migrate"
    assert spec.cron == [
        CronJob("cron-1", "*/5 * * * *", "*-*-* *:00/5:00", "python manage.py clearsessions"),
        CronJob(
            "cron-2",
            "30 2 * * 1-5",
            "Mon..Fri *-*-* 02:30:00",
            "python manage.py report --daily",
        ),
    ]
    assert spec.sources == ["hop3.toml", "Procfile"]


def test_to_vars_is_json_and_has_everything_but_root() -> None:
    spec = load_app(FIXTURES / "workers")
    data = spec.to_vars()
    assert json.loads(json.dumps(data)) == data
    assert "root" not in data
    assert data["name"] == "workers"
    assert data["processes"]["web"] == {"name": "web", "command": "gunicorn app:app", "scale": 2}
    assert data["cron"][0] == {
        "name": "cron-1",
        "schedule": "*/5 * * * *",
        "on_calendar": "*-*-* *:00/5:00",
        "command": "python manage.py clearsessions",
    }
    assert data["healthcheck"] == {
        "path": None,
        "contains": None,
        "status": None,
        "timeout": 30,
        "retries": 3,
    }
    # "php" is there for PHP apps only (tests/unit/test_php_spec.py).
    expected_keys = {f for f in AppSpec.__dataclass_fields__ if f not in ("root", "php")}
    assert set(data) == expected_keys


def test_path_may_be_a_string() -> None:
    spec = load_app(str(FIXTURES / "flask"), "my-flask")
    assert spec.name == "my-flask"
    assert spec.root == FIXTURES / "flask"


# --- runtime detection -------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "runtime"),
    [
        ({"requirements.txt": "", "Procfile": "web: x"}, "python"),
        ({"pyproject.toml": "", "Procfile": "web: x"}, "python"),
        ({"requirements.txt": "", "package.json": "{}", "Procfile": "web: x"}, "python"),
        ({"package.json": "{}", "go.mod": "", "Procfile": "web: x"}, "node"),
        ({"go.mod": "module x"}, "go"),
        ({"Procfile": "static: site"}, "static"),
        ({"hop3.toml": '[build]\nstatic-dir = "out"'}, "static"),
        ({"public/index.html": "<p>"}, "static"),
        ({"Procfile": "web: ./server"}, "generic"),
        ({"Procfile": "worker: ./loop"}, "generic"),
        ({"Procfile": "web: ./server", "public/index.html": "<p>"}, "generic"),
        ({"hop3.toml": '[build]\nbuild = ["make"]'}, "generic"),
        ({"hop3.toml": '[build]\nruntime = "python"\n[run]\nstart = "x"'}, "python"),
        ({"requirements.txt": "", "hop3.toml": '[build]\nruntime = "generic"\n[run]\nstart = "x"'},
         "generic"),
    ],
)  # fmt: skip
def test_runtime_detection(tmp_path: Path, files: dict[str, str], runtime: str) -> None:
    write_app(tmp_path, files)
    assert load_app(tmp_path, "x").runtime == runtime


def test_static_runtime_override_uses_public(tmp_path: Path) -> None:
    write_app(tmp_path, {"hop3.toml": '[build]\nruntime = "static"', "public/index.html": "<p>"})
    spec = load_app(tmp_path, "x")
    assert (spec.runtime, spec.static_dir) == ("static", "public")


def test_public_dir_without_index_is_not_a_site(tmp_path: Path) -> None:
    write_app(tmp_path, {"public/app.css": ""})
    assert problems_of(tmp_path, "x") == [
        "cannot tell how to build this app: add requirements.txt/pyproject.toml (Python), "
        "package.json (Node), go.mod (Go), a public/ dir (static) or a Procfile"
    ]


def test_node_static_build_does_not_get_npm_start(tmp_path: Path) -> None:
    """A Vite/React site: builds with npm, served as static files; 'start' is a dev server."""
    write_app(
        tmp_path,
        {
            "package.json": json.dumps({"scripts": {"build": "vite build", "start": "vite"}}),
            "package-lock.json": "{}",
            "Procfile": "static: dist\n",
        },
    )
    spec = load_app(tmp_path, "x")
    assert (spec.runtime, spec.static_dir, spec.processes) == ("node", "dist", {})
    assert spec.build["node_build_script"] is True


# --- combining files -------------------------------------------------------------


def test_hop3_toml_wins_over_app_json(tmp_path: Path) -> None:
    app_json = {
        "name": "From app.json",
        "env": {"A": "json", "B": "json", "S": {"generator": "secret"}, "T": {"value": "t"}},
        "formation": {"web": {"quantity": 3}, "worker": {"quantity": 4}},
        "healthchecks": {"web": [{"path": "/json", "content": "json", "timeout": 5}]},
        "scripts": {"dokku": {"predeploy": "echo predeploy"}},
        "addons": ["heroku-postgresql"],
    }
    toml = """
[build]
after-build = ["echo toml"]
[env]
A = "toml"
S = "literal now"
T = { generate = "base64", length = 16 }
[run.scale]
web = 1
[healthcheck]
path = "/toml"
[[addons]]
type = "redis"
"""
    write_app(
        tmp_path,
        {
            "app.json": json.dumps(app_json),
            "hop3.toml": toml,
            "Procfile": "web: w\nworker: k\n",
            "requirements.txt": "",
        },
    )
    spec = load_app(tmp_path, "x")
    assert spec.title == "From app.json"
    assert spec.env == {"A": "toml", "B": "json", "S": "literal now"}
    assert spec.env_generate == {"T": {"generate": "base64", "length": 16}}
    assert (spec.processes["web"].scale, spec.processes["worker"].scale) == (1, 4)
    assert spec.healthcheck == HealthCheck(path="/toml", contains="json", timeout=5)
    assert spec.build["after_build"] == ["echo toml", "echo predeploy"]
    assert spec.addons == [{"type": "redis"}]
    assert spec.sources == ["hop3.toml", "Procfile", "app.json"]


def test_app_json_addons_used_when_toml_has_none(tmp_path: Path) -> None:
    write_app(
        tmp_path,
        {
            "app.json": json.dumps({"addons": ["heroku-postgresql:mini", "rediscloud:30"]}),
            "Procfile": "web: x",
        },
    )
    assert load_app(tmp_path, "x").addons == [{"type": "postgres"}, {"type": "redis"}]


def test_process_order_web_first(tmp_path: Path) -> None:
    write_app(
        tmp_path,
        {
            "Procfile": "worker: a\nweb: b\nclock: c\n",
            "hop3.toml": '[run.workers]\nmailer = "m"\n',
        },
    )
    assert list(load_app(tmp_path, "x").processes) == ["web", "worker", "clock", "mailer"]


def test_toml_start_and_procfile_workers_combine(tmp_path: Path) -> None:
    write_app(
        tmp_path,
        {"Procfile": "worker: a\n", "hop3.toml": '[run]\nstart = "s"\nrelease = "r"\n'},
    )
    spec = load_app(tmp_path, "x")
    assert {n: p.command for n, p in spec.processes.items()} == {"web": "s", "worker": "a"}
    assert spec.release == "r"


def test_proxy_static_paths(tmp_path: Path) -> None:
    write_app(
        tmp_path,
        {
            "Procfile": "web: x",
            "hop3.toml": '[proxy]\nmax-body-size = "1g"\nstatic = { "/static" = "./static/" }\n',
        },
    )
    spec = load_app(tmp_path, "x")
    assert spec.static_paths == {"/static": "static"}
    assert spec.proxy == {
        "max_body_size": "1g",
        "websockets": True,
        "rate_limit": None,
        "rate_limit_burst": None,
    }


def test_waf_rate_limit_and_tls(tmp_path: Path) -> None:
    write_app(
        tmp_path,
        {
            "Procfile": "web: x",
            "hop3.toml": '[waf]\nmode = "detect"\n[proxy]\nrate-limit = "600r/m"\n'
            '[tls]\nmode = "acme"\n[domains]\nlist = ["shop.example.com"]\n',
        },
    )
    spec = load_app(tmp_path, "x")
    assert spec.waf == {
        "enabled": True,
        "mode": "detect",
        "paranoia": 1,
        "methods": [],
        "content_types": [],
    }
    assert spec.proxy["rate_limit"] == "600r/m" and spec.proxy["rate_limit_burst"] is None
    assert spec.tls == {"mode": "acme", "hsts": False}
    assert spec.to_vars()["tls"] == {"mode": "acme", "hsts": False}


def test_acme_refuses_wildcard_domains(tmp_path: Path) -> None:
    write_app(
        tmp_path,
        {
            "Procfile": "web: x",
            "hop3.toml": '[tls]\nmode = "acme"\n'
            '[domains]\nlist = ["a.example.com", "*.example.com"]\n',
        },
    )
    with pytest.raises(AppSpecError) as err:
        load_app(tmp_path, "x")
    assert [str(p) for p in err.value.problems] == [
        "hop3.toml [tls] mode: 'acme' cannot certify the wildcard domain '*.example.com': "
        "Let's Encrypt and other ACME servers check each name over HTTP (HTTP-01), which a "
        "wildcard cannot answer; list the names instead or use 'self-signed'"
    ]
    # A self-signed certificate may cover a wildcard.
    (tmp_path / "hop3.toml").write_text(
        '[tls]\nmode = "self-signed"\n[domains]\nlist = ["*.example.com"]\n'
    )
    assert load_app(tmp_path, "x").tls["mode"] == "self-signed"


def test_byte_order_mark_and_crlf(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_bytes(b"\xef\xbb\xbfweb: run\r\nworker: w\r\n")
    (tmp_path / "hop3.toml").write_bytes(b'\xef\xbb\xbf[metadata]\r\nid = "bom"\r\n')
    spec = load_app(tmp_path)
    assert spec.name == "bom"
    assert {n: p.command for n, p in spec.processes.items()} == {"web": "run", "worker": "w"}


def test_empty_procfile_with_build(tmp_path: Path) -> None:
    write_app(tmp_path, {"Procfile": "# nothing yet\n", "hop3.toml": '[build]\nbuild = ["x"]\n'})
    assert load_app(tmp_path, "x").runtime == "generic"


def test_directory_name_is_lower_cased(tmp_path: Path) -> None:
    root = write_app(tmp_path / "MyShop", {"Procfile": "web: x"})
    assert load_app(root).name == "myshop"


def test_name_argument_wins_over_metadata_id(tmp_path: Path) -> None:
    write_app(tmp_path, {"Procfile": "web: x", "hop3.toml": '[metadata]\nid = "Not Valid"\n'})
    assert load_app(tmp_path, "given").name == "given"


def test_waf_methods_are_checked_and_kept_in_a_fixed_order(tmp_path: Path) -> None:
    write_app(tmp_path, {"Procfile": "web: x", "hop3.toml": '[waf]\nmethods = ["DELETE", "PUT"]\n'})
    assert load_app(tmp_path, "x").waf["methods"] == ["PUT", "DELETE"]
    write_app(tmp_path, {"Procfile": "web: x", "hop3.toml": '[waf]\nmethods = ["TRACE"]\n'})
    with pytest.raises(AppSpecError, match=r"\[waf\] methods.*TRACE.*not methods the WAF"):
        load_app(tmp_path, "x")


def test_waf_content_types_must_be_media_types(tmp_path: Path) -> None:
    toml = '[waf]\ncontent-types = ["text/vcard", "text/calendar"]\n'
    write_app(tmp_path, {"Procfile": "web: x", "hop3.toml": toml})
    assert load_app(tmp_path, "x").waf["content_types"] == ["text/calendar", "text/vcard"]
    write_app(tmp_path, {"Procfile": "web: x", "hop3.toml": '[waf]\ncontent-types = ["x y"]\n'})
    with pytest.raises(AppSpecError, match="not media types"):
        load_app(tmp_path, "x")
