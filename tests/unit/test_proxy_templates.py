"""The hop3_proxy role's nginx templates and input checks, without hosts.

Templates are rendered with Ansible's own templating, the way the template
module does it (role defaults, trim_blocks, no backslash escaping), for a
matrix of app shapes. When nginx is installed here, the rendered files are
also checked with `nginx -t` inside a minimal copy of Debian's nginx.conf, so
"valid nginx" is nginx's verdict, not ours. The input checks
(tasks/validate.yml) run through a real `ansible-playbook`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from hop3.runner import as_unsafe

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "hop3_proxy"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed")

FAKE_UPSTREAM = "upstream hop3-{app} {{\n    server 127.0.0.1:18080;\n    keepalive 8;\n}}\n"


def render(template: str, **variables) -> str:
    """Render one of the role's templates as the template module would."""
    loader = DataLoader()
    defaults = loader.load_from_file(str(ROLE / "defaults/main.yml"), trusted_as_template=True)
    templar = Templar(
        loader=loader,
        variables={**defaults, "inventory_hostname": "sandbox-1", **variables},
    )
    source = trust_as_template((ROLE / "templates" / template).read_text())
    return templar.template(
        source, escape_backslashes=False, overrides={"trim_blocks": True, "lstrip_blocks": False}
    )


def vhost(app: str = "shop", **variables) -> str:
    return render("hop3-app.conf.j2", hop3_proxy_app=app, **variables)


def directives(text: str) -> list[str]:
    """The non-comment, non-blank lines, stripped."""
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def location(text: str, header: str) -> str:
    """The body of the location block whose first line starts with `header`."""
    match = re.search(r"^    " + re.escape(header) + r".*?\{\n(.*?)^    \}", text, re.M | re.S)
    assert match, f"no location {header!r} in:\n{text}"
    return match.group(1)


# name -> role variables: the app shapes a deploy produces.
CASES = {
    "web": {},
    "web-domains-static-paths": {
        "hop3_proxy_domains": ["Shop.Example.com", "*.shop.example.com", "shop.example.com"],
        "hop3_proxy_static_paths": {"/static": "static", "/media/": "/var/uploads/"},
        "hop3_proxy_max_body_size": "20m",
    },
    "web-static-root": {"hop3_proxy_static_root": "public"},
    "static-only": {"hop3_proxy_has_web": False, "hop3_proxy_static_root": "public/"},
    "static-only-paths": {
        "hop3_proxy_has_web": False,
        "hop3_proxy_static_root": "dist",
        "hop3_proxy_static_paths": {"/assets": "dist/assets"},
    },
    "workers-only": {"hop3_proxy_has_web": False},
    "no-websockets-no-ipv6": {"hop3_proxy_websockets": False, "hop3_proxy_ipv6": False},
}


def test_web_app_proxies_to_its_upstream_with_forwarding_headers():
    text = vhost()
    lines = directives(text)
    # The upstream file is included at http level, before the server block.
    assert lines[0] == 'include "/etc/nginx/hop3/upstreams/shop.conf";'
    assert lines[1] == "server {"
    assert "listen 80;" in lines and "listen [::]:80;" in lines
    assert 'server_name "shop.sandbox-1";' in lines
    assert 'access_log "/var/log/nginx/hop3-shop.access.log" hop3;' in lines
    assert 'client_max_body_size "10m";' in lines
    body = directives(location(text, "location / "))
    assert body[0] == 'proxy_pass "http://hop3-shop";'
    for expected in (
        "proxy_http_version 1.1;",
        "proxy_set_header Host $host;",
        "proxy_set_header X-Real-IP $remote_addr;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-Host $host;",
        "proxy_set_header X-Request-Id $hop3_request_id;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $hop3_connection_upgrade;",
        "proxy_connect_timeout 5s;",
        "proxy_next_upstream error timeout http_502;",
    ):
        assert expected in body
    assert "root" not in text and "@app" not in text


def test_server_names_default_first_lowercased_and_unique():
    text = vhost(**CASES["web-domains-static-paths"])
    assert 'server_name "shop.sandbox-1" "shop.example.com" "*.shop.example.com";' in text
    assert 'client_max_body_size "20m";' in text


def test_default_domain_override():
    text = vhost(hop3_proxy_default_domain="shop.203.0.113.5", hop3_proxy_domains=["a.example"])
    assert 'server_name "shop.203.0.113.5" "a.example";' in text


def test_static_paths_are_aliases_with_trailing_slashes_and_expiry():
    text = vhost(**CASES["web-domains-static-paths"])
    static = directives(location(text, 'location ^~ "/static/"'))
    assert static == ['alias "/srv/hop3/apps/shop/current/static/";', 'expires "1h";']
    # Slashes around the prefix and the directory are normalised, so an alias
    # never lacks the slash that would allow /static../ traversal.
    media = directives(location(text, 'location ^~ "/media/"'))
    assert media[0] == 'alias "/srv/hop3/apps/shop/current/var/uploads/";'
    assert text.index('"/media/"') < text.index('"/static/"')  # sorted: stable output


def test_static_root_with_web_falls_back_to_the_app():
    text = vhost(**CASES["web-static-root"])
    root = directives(location(text, "location / "))
    assert root == [
        'root "/srv/hop3/apps/shop/current/public";',
        "try_files $uri $uri/index.html @app;",
    ]
    app = directives(location(text, "location @app "))
    assert app[0] == 'proxy_pass "http://hop3-shop";'


def test_static_only_site_has_no_upstream():
    text = vhost(**CASES["static-only"])
    assert "include" not in text and "proxy_pass" not in text and "@app" not in text
    assert directives(location(text, "location / ")) == [
        'root "/srv/hop3/apps/shop/current/public";',
        "index index.html;",
        "try_files $uri $uri/ =404;",
    ]


def test_app_without_web_or_static_root_answers_404():
    text = vhost(**CASES["workers-only"])
    assert "include" not in text and "proxy_pass" not in text
    assert "return 404" in location(text, "location / ")


def test_websockets_off_and_ipv6_off():
    text = vhost(**CASES["no-websockets-no-ipv6"])
    assert "Upgrade" not in text and "$hop3_connection_upgrade" not in text
    assert 'proxy_set_header Connection "";' in text
    assert "[::]" not in text


def test_custom_directories():
    text = vhost(
        hop3_proxy_apps_root="/data/apps/",
        hop3_proxy_upstreams_dir="/run/up",
        hop3_proxy_static_root="www",
        hop3_proxy_static_expires="7d",
        hop3_proxy_static_paths={"/s": "s"},
    )
    assert 'include "/run/up/shop.conf";' in text
    assert 'root "/data/apps/shop/current/www";' in text
    assert 'expires "7d";' in text


def test_hostile_values_stay_inside_one_quoted_string():
    # validate.yml refuses these (see test_validation_refuses_hostile_inputs);
    # this proves the template alone would still keep them as data.
    prefix = '/x";} server { listen 81; } location /y {"'
    directory = 'd\\";evil'
    text = vhost(hop3_proxy_static_paths={prefix: directory})
    assert 'location ^~ "/x\\";} server { listen 81; } location /y {\\"/" {' in text
    assert 'alias "/srv/hop3/apps/shop/current/d\\\\\\";evil/";' in text
    assert directives(text).count("server {") == 1  # the text inside quotes is no block


def test_shared_settings_define_the_maps_once():
    text = render("hop3-proxy.conf.j2")
    assert text.count("map $http_upgrade $hop3_connection_upgrade") == 1
    assert "map $http_x_request_id $hop3_request_id" in text
    assert "log_format hop3 " in text
    assert "gzip_proxied any;" in text
    for mime in ("text/css", "application/javascript", "application/json", "image/svg+xml"):
        assert mime in text
    # Debian's nginx.conf already says `gzip on;` at http level: repeating it
    # there would be a duplicate directive (the vhosts turn it on instead).
    assert "gzip on;" not in directives(text)


def test_rendering_is_stable():
    assert vhost(**CASES["web-domains-static-paths"]) == vhost(**CASES["web-domains-static-paths"])


# --- nginx's own verdict --------------------------------------------------------------


def nginx_test(tmp_path: Path, apps: dict[str, str], upstreams: dict[str, str]):
    """`nginx -t` on a copy of Debian's http block holding these vhosts.

    Log paths are moved under tmp_path so the check writes nothing outside it.
    """
    for sub in ("conf.d", "sites-enabled", "upstreams", "log"):
        (tmp_path / sub).mkdir(exist_ok=True)
    (tmp_path / "conf.d" / "hop3-proxy.conf").write_text(render("hop3-proxy.conf.j2"))
    for app, text in apps.items():
        text = text.replace('"/var/log/nginx/', f'"{tmp_path}/log/')
        (tmp_path / "sites-enabled" / f"hop3-{app}.conf").write_text(text)
    for app, text in upstreams.items():
        (tmp_path / "upstreams" / f"{app}.conf").write_text(text)
    (tmp_path / "sites-enabled" / "hop3-default.conf").write_text(
        "server {\n    listen 80 default_server;\n    listen [::]:80 default_server;\n"
        "    server_name _;\n    return 404;\n}\n"
    )
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\n"
        "events { worker_connections 64; }\n"
        "http {\n"
        "    include /etc/nginx/mime.types;\n"
        "    default_type application/octet-stream;\n"
        f"    access_log {tmp_path}/log/access.log;\n"
        "    gzip on;\n"
        f"    include {tmp_path}/conf.d/*.conf;\n"
        f"    include {tmp_path}/sites-enabled/*;\n"
        "}\n"
    )
    return subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"),
         "-e", str(tmp_path / "log" / "error.log")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def app_vhost(tmp_path: Path, app: str, **variables) -> str:
    return vhost(app, hop3_proxy_upstreams_dir=str(tmp_path / "upstreams"), **variables)


@needs_nginx
@pytest.mark.parametrize("case", sorted(CASES))
def test_nginx_accepts_every_shape(tmp_path, case):
    variables = CASES[case]
    upstreams = {}
    if variables.get("hop3_proxy_has_web", True):
        upstreams["shop"] = FAKE_UPSTREAM.format(app="shop")
    proc = nginx_test(tmp_path, {"shop": app_vhost(tmp_path, "shop", **variables)}, upstreams)
    assert proc.returncode == 0, proc.stderr
    assert "[warn]" not in proc.stderr, proc.stderr


@needs_nginx
def test_nginx_accepts_several_apps_side_by_side(tmp_path):
    apps = {
        "shop": app_vhost(tmp_path, "shop", hop3_proxy_domains=["shop.example.com"]),
        "blog": app_vhost(tmp_path, "blog", hop3_proxy_static_root="public"),
        "docs": app_vhost(tmp_path, "docs", hop3_proxy_has_web=False, hop3_proxy_static_root="."),
        "long": app_vhost(
            tmp_path, "long", hop3_proxy_domains=["a-very-long-subdomain-name." * 3 + "example.com"]
        ),
    }
    upstreams = {app: FAKE_UPSTREAM.format(app=app) for app in ("shop", "blog", "long")}
    proc = nginx_test(tmp_path, apps, upstreams)
    assert proc.returncode == 0, proc.stderr
    assert "[warn]" not in proc.stderr, proc.stderr


@needs_nginx
def test_nginx_keeps_hostile_values_as_data(tmp_path):
    text = app_vhost(tmp_path, "shop", hop3_proxy_static_paths={'/x";} evil {"': 'a"b\\c'})
    proc = nginx_test(tmp_path, {"shop": text}, {"shop": FAKE_UPSTREAM.format(app="shop")})
    assert proc.returncode == 0, proc.stderr


@needs_nginx
def test_nginx_reports_the_failures_the_role_rolls_back(tmp_path):
    """What the role's rescue reacts to: nginx -t fails and names the cause."""
    good = FAKE_UPSTREAM.format(app="shop")
    # A broken upstream file written by another component.
    proc = nginx_test(tmp_path, {"shop": app_vhost(tmp_path, "shop")}, {"shop": "upstream {"})
    assert proc.returncode != 0 and "[emerg]" in proc.stderr
    # A size the input check lets through but nginx refuses.
    big = app_vhost(tmp_path, "shop", hop3_proxy_max_body_size="99999999999999999999g")
    proc = nginx_test(tmp_path, {"shop": big}, {"shop": good})
    assert proc.returncode != 0 and "client_max_body_size" in proc.stderr
    # A web app whose upstream file is missing.
    (tmp_path / "upstreams" / "shop.conf").unlink()
    proc = nginx_test(tmp_path, {"shop": app_vhost(tmp_path, "shop")}, {})
    assert proc.returncode != 0 and "shop.conf" in proc.stderr


@needs_nginx
def test_nginx_warns_when_two_apps_claim_a_name(tmp_path):
    """The warning the role turns into an error for the app that claims the name."""
    apps = {
        app: app_vhost(tmp_path, app, hop3_proxy_domains=["shared.example.com"])
        for app in ("one", "two")
    }
    upstreams = {app: FAKE_UPSTREAM.format(app=app) for app in apps}
    proc = nginx_test(tmp_path, apps, upstreams)
    assert proc.returncode == 0
    assert 'conflicting server name "shared.example.com"' in proc.stderr


# --- input checks (tasks/validate.yml) through ansible-playbook ---------------------------

VALID = {
    "hop3_proxy_app": "shop-2",
    "hop3_proxy_domains": ["shop.example.com", "*.Shop.example.com", "x_y.example.com"],
    "hop3_proxy_default_domain": "shop-2.203.0.113.5",
    "hop3_proxy_static_root": "public/",
    "hop3_proxy_static_paths": {"/static": "static", "/a/b/": "build/a.b"},
    "hop3_proxy_max_body_size": "0",
    "hop3_proxy_static_expires": "max",
}

# host name -> (bad variables, text the failure message must contain)
HOSTILE = {
    "app-upper": ({"hop3_proxy_app": "Shop"}, '"Shop"'),
    "app-newline": ({"hop3_proxy_app": "shop\n"}, '"shop\\n"'),
    "app-traversal": ({"hop3_proxy_app": "../etc"}, '"../etc"'),
    "domain-directive": ({"hop3_proxy_domains": ["a.com; } server {"]}, '"a.com; } server {"'),
    "domain-regex": ({"hop3_proxy_domains": ["~^(.*)$"]}, '"~^(.*)$"'),
    "domain-jinja": ({"hop3_proxy_domains": ["{{ 7 * 7 }}.com"]}, '"{{ 7 * 7 }}.com"'),
    "domain-variable": ({"hop3_proxy_domains": ["$host"]}, '"$host"'),
    "default-domain": ({"hop3_proxy_default_domain": "a b"}, '"a b"'),
    "prefix-quote": ({"hop3_proxy_static_paths": {'/x";} evil {"': "s"}}, "evil"),
    "prefix-root": ({"hop3_proxy_static_paths": {"/": "s"}}, 'prefix "/"'),
    "prefix-relative": ({"hop3_proxy_static_paths": {"static": "s"}}, 'prefix "static"'),
    "prefix-dotdot": ({"hop3_proxy_static_paths": {"/a/../b": "s"}}, '"/a/../b"'),
    "prefix-repeated": (
        {"hop3_proxy_static_paths": {"/s": "s", "/s/": "t"}},
        "repeat a prefix",
    ),
    "dir-dotdot": ({"hop3_proxy_static_paths": {"/s": "../../etc"}}, '"../../etc"'),
    "dir-variable": ({"hop3_proxy_static_paths": {"/s": "$document_root"}}, "$document_root"),
    "static-root-dotdot": ({"hop3_proxy_static_root": ".."}, 'hop3_proxy_static_root ".."'),
    "size-directive": ({"hop3_proxy_max_body_size": "10m; evil"}, '"10m; evil"'),
    "size-unit": ({"hop3_proxy_max_body_size": "10 MB"}, '"10 MB"'),
    "expires": ({"hop3_proxy_static_expires": "1h; evil"}, '"1h; evil"'),
    "apps-root": ({"hop3_proxy_apps_root": "srv"}, 'hop3_proxy_apps_root "srv"'),
}


def test_validation_refuses_hostile_inputs(tmp_path):
    # One play, one host per case; the values reach Ansible as the runner
    # passes them (marked unsafe: never templated). Nothing connects anywhere:
    # validate.yml is one assert, evaluated on the controller.
    hosts = {"valid": as_unsafe(VALID)}
    for name, (bad, _) in HOSTILE.items():
        hosts[name] = as_unsafe({**VALID, **bad})
    for hostvars in hosts.values():
        hostvars["ansible_connection"] = "local"
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"all": {"hosts": hosts}}))
    playbook = tmp_path / "validate.yml"
    playbook.write_text(
        "- name: Validate\n  hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - name: Check\n      ansible.builtin.include_role:\n"
        "        name: hop3_proxy\n        tasks_from: validate\n"
    )
    env = {
        **os.environ,
        "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
        "ANSIBLE_STDOUT_CALLBACK": "oneline",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "ANSIBLE_FORKS": "20",
    }
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory),
         str(playbook)],
        capture_output=True, text=True, env=env, check=False, timeout=120,
    )  # fmt: skip
    failures = {}
    for line in proc.stdout.splitlines():
        host, _, rest = line.partition(" | FAILED! => ")
        if rest:
            failures[host] = json.loads(rest)["msg"]
    assert "valid" not in failures, failures.get("valid")
    assert "valid | SUCCESS" in proc.stdout, proc.stdout + proc.stderr
    assert sorted(failures) == sorted(HOSTILE), proc.stdout + proc.stderr
    for name, (_, expected) in HOSTILE.items():
        assert failures[name].startswith("hop3_proxy refuses these inputs: "), failures[name]
        assert expected in failures[name], (name, failures[name])
    # Not rendered: the Jinja in the domain is reported as written.
    assert "49.com" not in failures["domain-jinja"]


def test_loops_do_not_take_the_callers_item():
    """Callers loop over include_role with `item`; the role's own loops must use
    another name, or `hop3_proxy_app: "{{ item.app }}"` breaks inside them."""

    def tasks(items):
        for task in items or []:
            yield task
            for key in ("block", "rescue", "always"):
                yield from tasks(task.get(key))

    for path in (ROLE / "tasks").glob("*.yml"):
        for task in tasks(yaml.safe_load(path.read_text())):
            if "loop" in task:
                assert task.get("loop_control", {}).get("loop_var") == "hop3_proxy_item", (
                    path.name,
                    task["name"],
                )
