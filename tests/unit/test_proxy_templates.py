"""The hop3_proxy role's nginx templates and input checks, without hosts.

Templates are rendered with Ansible's own templating, the way the template
module does it (role defaults and vars, trim_blocks, no backslash escaping),
for a matrix of app shapes. When nginx is installed here, the rendered files
are also checked with `nginx -t` inside a minimal copy of Debian's nginx.conf,
so "valid nginx" is nginx's verdict, not ours; with ModSecurity and the CRS
installed too (`make test` installs them), with the WAF loaded as on a host.
The input checks (tasks/validate.yml) run through a real `ansible-playbook`.
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
MODSECURITY = Path("/usr/lib/nginx/modules/ngx_http_modsecurity_module.so")
HAS_WAF = MODSECURITY.exists() and Path("/usr/share/modsecurity-crs/rules").is_dir()
needs_waf = pytest.mark.skipif(
    NGINX is None or not HAS_WAF,
    reason="nginx, libnginx-mod-http-modsecurity or modsecurity-crs is not installed",
)
# Without ModSecurity here, the nginx checks run with the WAF off (so they
# never skip); the WAF's own checks then skip.
NO_WAF = {"hop3_proxy_waf": {"enabled": False}, "hop3_proxy_waf_install": False}
WAF_VARS = {} if HAS_WAF else NO_WAF

FAKE_UPSTREAM = "upstream hop3-{app} {{\n    server 127.0.0.1:18080;\n    keepalive 8;\n}}\n"


def render(template: str, **variables) -> str:
    """Render one of the role's templates as the template module would."""
    loader = DataLoader()
    loader.set_basedir(str(ROLE))
    defaults = loader.load_from_file(str(ROLE / "defaults/main.yml"), trusted_as_template=True)
    internal = loader.load_from_file(str(ROLE / "vars/main.yml"), trusted_as_template=True)
    templar = Templar(
        loader=loader,
        variables={**defaults, **internal, "inventory_hostname": "sandbox-1", **variables},
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


# --- WAF, rate limits, TLS ----------------------------------------------------------------

CERT = {"present": True, "cert": "/etc/hop3/tls/shop/cert.pem", "key": "/etc/hop3/tls/shop/key.pem"}


def servers(text: str) -> list[str]:
    """The server blocks of a vhost, in order."""
    return re.findall(r"^server \{\n.*?^\}", text, re.M | re.S)


def test_waf_blocks_at_paranoia_1_by_default():
    text = vhost()
    lines = directives(text)
    assert "modsecurity on;" in lines
    assert "modsecurity_rules 'SecRuleEngine On';" in lines
    assert (
        "modsecurity_rules 'SecAction \"id:900000,phase:1,pass,nolog,t:none,"
        "setvar:tx.paranoia_level=1\"';" in lines
    )
    assert "modsecurity_transaction_id $hop3_request_id;" in lines
    # Inside the server block, before the locations.
    assert text.index("modsecurity on;") < text.index("location / ")


def test_waf_detect_mode_and_paranoia():
    text = vhost(hop3_proxy_waf={"enabled": True, "mode": "detect", "paranoia": 3})
    assert "modsecurity_rules 'SecRuleEngine DetectionOnly';" in text
    assert "tx.paranoia_level=3" in text
    # Keys left out take the defaults.
    assert "tx.paranoia_level=2" in vhost(hop3_proxy_waf={"paranoia": 2})
    assert "SecRuleEngine On" in vhost(hop3_proxy_waf={})


def test_waf_lets_listed_methods_through_and_no_others():
    text = vhost(hop3_proxy_waf={"methods": ["PUT", "PROPFIND", "EVIL"]})
    line = [x for x in text.splitlines() if "id:900200" in x]
    assert line == [
        "    modsecurity_rules 'SecAction \"id:900200,phase:1,pass,nolog,t:none,"
        "setvar:\\'tx.allowed_methods=GET HEAD POST OPTIONS PUT PROPFIND\\'\"';"
    ]
    assert "id:900200" not in vhost(hop3_proxy_waf={})


def test_waf_adds_content_types_to_the_crs_defaults():
    text = vhost(hop3_proxy_waf={"content_types": ["text/calendar", "bad type"]})
    line = next(x for x in text.splitlines() if "id:900220" in x)
    assert "|application/cloudevents-batch+json| |text/calendar|" in line
    assert line.count("|application/json|") == 1
    assert "bad" not in line and line.endswith("""|\\'"';""")
    assert "id:900220" not in vhost(hop3_proxy_waf={})


def test_waf_off_leaves_modsecurity_out():
    text = vhost(hop3_proxy_waf={"enabled": False, "mode": "block", "paranoia": 1})
    assert "modsecurity" not in text


def test_rate_limit_zone_at_http_level_and_limit_in_every_location():
    text = vhost(
        hop3_proxy_rate_limit="10r/s",
        hop3_proxy_rate_limit_burst=20,
        hop3_proxy_static_paths={"/static": "static"},
    )
    lines = directives(text)
    zone = 'limit_req_zone $binary_remote_addr "zone=hop3-shop:1m" "rate=10r/s";'
    assert lines.index(zone) < lines.index("server {")
    limit = 'limit_req "zone=hop3-shop" burst=20 nodelay;'
    assert lines.count(limit) == 2 and lines.count("limit_req_status 429;") == 2
    assert limit in directives(location(text, 'location ^~ "/static/"'))
    assert limit in directives(location(text, "location / "))


def test_rate_limit_burst_defaults_to_the_rate_and_may_be_zero():
    assert "burst=600 nodelay;" in vhost(hop3_proxy_rate_limit="600r/m")
    assert "burst=0 nodelay;" in vhost(hop3_proxy_rate_limit="5r/s", hop3_proxy_rate_limit_burst=0)
    static = vhost(
        hop3_proxy_rate_limit="5r/s", hop3_proxy_has_web=False, hop3_proxy_static_root="public"
    )
    assert "limit_req " in location(static, "location / ")
    web_root = vhost(hop3_proxy_rate_limit="5r/s", hop3_proxy_static_root="public")
    assert "limit_req " in location(web_root, "location / ")
    assert "limit_req " in location(web_root, "location @app ")


def test_no_rate_limit_by_default():
    assert "limit_req" not in vhost()


def test_self_signed_tls_redirects_port_80_and_serves_443():
    text = vhost(
        hop3_proxy_domains=["shop.example.com"],
        hop3_proxy_tls={"mode": "self-signed", "hsts": False},
        hop3_proxy__cert=CERT,
    )
    plain, tls = servers(text)
    assert "listen 80;" in plain and "return 301 https://$host$request_uri;" in plain
    assert "acme-challenge" not in plain and "proxy_pass" not in plain
    assert 'server_name "shop.sandbox-1" "shop.example.com";' in plain
    tls_lines = directives(tls)
    for expected in (
        "listen 443 ssl http2;",
        "listen [::]:443 ssl http2;",
        'ssl_certificate "/etc/hop3/tls/shop/cert.pem";',
        'ssl_certificate_key "/etc/hop3/tls/shop/key.pem";',
        "ssl_protocols TLSv1.2 TLSv1.3;",
        "ssl_prefer_server_ciphers off;",
        "ssl_session_tickets off;",
        'ssl_dhparam "/etc/nginx/hop3/ffdhe2048.pem";',
        'server_name "shop.sandbox-1" "shop.example.com";',
        'proxy_pass "http://hop3-shop";',
        "modsecurity on;",
    ):
        assert expected in tls_lines, expected
    ciphers = next(line for line in tls_lines if line.startswith("ssl_ciphers "))
    assert ciphers.startswith("ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM")
    assert "CBC" not in ciphers and "RSA-AES128-SHA" not in ciphers
    assert "Strict-Transport-Security" not in text


def test_hsts_only_when_asked():
    text = vhost(hop3_proxy_tls={"mode": "self-signed", "hsts": True}, hop3_proxy__cert=CERT)
    header = 'add_header Strict-Transport-Security "max-age=63072000" always;'
    assert header in directives(servers(text)[1])
    assert header not in servers(text)[0]


def test_tls_without_a_certificate_yet_serves_http():
    # ACME before the first certificate: port 80 serves the app and answers
    # the challenges (before any other location), no redirect, no 443.
    text = vhost(
        hop3_proxy_domains=["shop.example.com"],
        hop3_proxy_tls={"mode": "acme", "hsts": True},
        hop3_proxy__cert={"present": False, "cert": None, "key": None},
        hop3_proxy_static_paths={"/.well-known": "wk"},
    )
    (only,) = servers(text)
    assert "listen 80;" in only and "443" not in text and "return 301" not in text
    assert "Strict-Transport-Security" not in text
    challenge = directives(location(text, "location ^~ /.well-known/acme-challenge/ "))
    assert challenge == [
        'root "/var/lib/hop3/acme";',
        "default_type text/plain;",
        "modsecurity off;",
    ]
    assert text.index("acme-challenge") < text.index('location ^~ "/.well-known/"')
    assert 'proxy_pass "http://hop3-shop";' in text


def test_acme_with_a_certificate_keeps_challenges_on_port_80():
    text = vhost(
        hop3_proxy_domains=["shop.example.com"],
        hop3_proxy_tls={"mode": "acme", "hsts": False},
        hop3_proxy__cert={
            "present": True,
            "cert": "/etc/letsencrypt/live/hop3-shop/fullchain.pem",
            "key": "/etc/letsencrypt/live/hop3-shop/privkey.pem",
        },
        hop3_proxy_waf={"enabled": False},
    )
    plain, tls = servers(text)
    assert plain.index("acme-challenge") < plain.index("return 301")
    assert "modsecurity" not in plain
    assert 'ssl_certificate "/etc/letsencrypt/live/hop3-shop/fullchain.pem";' in tls


def test_tls_off_is_plain_http():
    text = vhost(hop3_proxy__cert=CERT)
    assert len(servers(text)) == 1 and "ssl" not in text and "443" not in text


def test_shared_settings_load_the_waf_and_refuse_unknown_tls_names():
    text = render("hop3-proxy.conf.j2")
    lines = directives(text)
    assert "modsecurity_rules_file /etc/nginx/hop3/waf/modsecurity.conf;" in lines
    assert "modsecurity_rules_file /etc/nginx/hop3/waf/crs.conf;" in lines
    assert lines.index("modsecurity_rules_file /etc/nginx/hop3/waf/modsecurity.conf;") < (
        lines.index("modsecurity_rules_file /etc/nginx/hop3/waf/crs.conf;")
    )
    (default,) = servers(text)
    assert "listen 443 ssl http2 default_server;" in default
    assert "ssl_reject_handshake on;" in default
    # Debian's nginx.conf sets ssl_protocols at http level: never again here.
    assert "ssl_protocols" not in text
    bare = render("hop3-proxy.conf.j2", hop3_proxy_waf_install=False, hop3_proxy_ipv6=False)
    assert "modsecurity" not in bare and "[::]" not in bare


def test_waf_base_rules():
    text = render("waf-modsecurity.conf.j2")
    lines = directives(text)
    for expected in (
        "SecRuleEngine DetectionOnly",
        "SecRequestBodyAccess On",
        "SecRequestBodyLimit 13107200",
        "SecRequestBodyLimitAction ProcessPartial",
        "SecResponseBodyAccess Off",
        "SecAuditEngine RelevantOnly",
        "SecAuditLog /var/log/hop3/waf/audit.log",
        "SecStatusEngine Off",
    ):
        assert expected in lines, expected
    assert "ctl:requestBodyProcessor=JSON" in text
    crs = (ROLE / "files" / "waf-crs.conf").read_text()
    assert "Include /usr/share/modsecurity-crs/rules/*.conf" in crs
    assert "IncludeOptional" not in directives(crs)  # libmodsecurity 3.0.9 cannot read it


# --- nginx's own verdict --------------------------------------------------------------


def nginx_test(tmp_path: Path, apps: dict[str, str], upstreams: dict[str, str], waf=HAS_WAF):
    """`nginx -t` on a copy of Debian's http block holding these vhosts.

    Log paths are moved under tmp_path so the check writes nothing outside it.
    With ``waf``, ModSecurity is loaded and hop3-proxy.conf loads Hop3's rule
    files (written under tmp_path) and the CRS, as on a host.
    """
    for sub in ("conf.d", "sites-enabled", "upstreams", "log", "waf"):
        (tmp_path / sub).mkdir(exist_ok=True)
    shared = {"hop3_proxy_waf_dir": str(tmp_path / "waf")} if waf else NO_WAF
    (tmp_path / "conf.d" / "hop3-proxy.conf").write_text(render("hop3-proxy.conf.j2", **shared))
    if waf:
        (tmp_path / "waf" / "modsecurity.conf").write_text(
            render("waf-modsecurity.conf.j2", hop3_proxy_waf_audit_log=str(tmp_path / "log/audit"))
        )
        shutil.copy(ROLE / "files" / "waf-crs.conf", tmp_path / "waf" / "crs.conf")
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
        (f"load_module {MODSECURITY};\n" if waf else "") + f"pid {tmp_path}/nginx.pid;\n"
        "events { worker_connections 64; }\n"
        "http {\n"
        "    include /etc/nginx/mime.types;\n"
        "    default_type application/octet-stream;\n"
        # As in Debian's nginx.conf: the vhosts must not set these at http level again.
        "    ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;\n"
        "    ssl_prefer_server_ciphers on;\n"
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
    return vhost(
        app,
        hop3_proxy_upstreams_dir=str(tmp_path / "upstreams"),
        **{**WAF_VARS, "hop3_proxy__dhparam": str(ROLE / "files" / "ffdhe2048.pem"), **variables},
    )


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


def self_signed(tmp_path: Path, *names: str) -> dict:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=test", "-keyout", str(key), "-out", str(cert),
         "-addext", "subjectAltName=" + ",".join("DNS:" + n for n in names)],
        check=True, capture_output=True,
    )  # fmt: skip
    return {"present": True, "cert": str(cert), "key": str(key), "changed": False}


SECURE_CASES = {
    "waf-detect-paranoia-4": {"hop3_proxy_waf": {"enabled": True, "mode": "detect", "paranoia": 4}},
    "waf-off": {"hop3_proxy_waf": {"enabled": False}},
    "rate-limit": {
        "hop3_proxy_rate_limit": "10r/s",
        "hop3_proxy_rate_limit_burst": 20,
        "hop3_proxy_static_paths": {"/static": "static"},
    },
    "self-signed-hsts": {"hop3_proxy_tls": {"mode": "self-signed", "hsts": True}},
    "acme-pending": {"hop3_proxy_tls": {"mode": "acme", "hsts": False}, "cert": False},
    "acme-rate-static-root": {
        "hop3_proxy_tls": {"mode": "acme", "hsts": True},
        "hop3_proxy_rate_limit": "600r/m",
        "hop3_proxy_static_root": "public",
    },
}


@needs_nginx
@pytest.mark.parametrize("case", sorted(SECURE_CASES))
def test_nginx_accepts_waf_rate_limit_and_tls_shapes(tmp_path, case):
    variables = dict(SECURE_CASES[case])
    with_cert = variables.pop("cert", True)
    cert = self_signed(tmp_path, "shop.sandbox-1", "shop.example.com") if with_cert else {}
    variables = {"hop3_proxy_domains": ["shop.example.com"], "hop3_proxy__cert": cert, **variables}
    if not HAS_WAF and variables.get("hop3_proxy_waf", {}).get("enabled", True):
        variables["hop3_proxy_waf"] = {"enabled": False}
    text = app_vhost(tmp_path, "shop", **variables)
    proc = nginx_test(tmp_path, {"shop": text}, {"shop": FAKE_UPSTREAM.format(app="shop")})
    assert proc.returncode == 0, proc.stderr
    assert "[warn]" not in proc.stderr, proc.stderr


@needs_nginx
def test_nginx_accepts_several_secure_apps_side_by_side(tmp_path):
    """Two apps with their own rate limit zones, certificates, WAF modes, on one port 443."""
    apps = {}
    for app, mode in (("one", "block"), ("two", "detect")):
        (tmp_path / app).mkdir()
        apps[app] = app_vhost(
            tmp_path,
            app,
            hop3_proxy_rate_limit="5r/s",
            hop3_proxy_tls={"mode": "self-signed", "hsts": True},
            hop3_proxy__cert=self_signed(tmp_path / app, f"{app}.sandbox-1"),
            **({"hop3_proxy_waf": {"mode": mode}} if HAS_WAF else {}),
        )
    upstreams = {app: FAKE_UPSTREAM.format(app=app) for app in apps}
    proc = nginx_test(tmp_path, apps, upstreams)
    assert proc.returncode == 0, proc.stderr
    assert "[warn]" not in proc.stderr, proc.stderr


@needs_waf
def test_nginx_loads_the_crs_for_apps_with_the_waf_on(tmp_path):
    """The CRS is parsed once, at http level (hop3-proxy.conf); each vhost with
    the WAF on adds only its two inline settings."""
    apps = {f"app{i}": app_vhost(tmp_path, f"app{i}") for i in range(3)}
    upstreams = {app: FAKE_UPSTREAM.format(app=app) for app in apps}
    proc = nginx_test(tmp_path, apps, upstreams)
    assert proc.returncode == 0, proc.stderr
    log = (tmp_path / "log" / "error.log").read_text()
    loaded = re.findall(r"rules loaded inline/local/remote: (\d+)/(\d+)/\d+", log)
    inline, local = (int(n) for n in loaded[-1]) if loaded else (0, 0)
    assert 500 < local < 1500, log  # the CRS's rules from files, counted once, not per app
    assert inline == len(apps), log  # the paranoia level SecAction of each app


@needs_waf
def test_nginx_refuses_waf_directives_without_the_module(tmp_path):
    """Why the role installs ModSecurity before it writes a vhost with the WAF on."""
    text = app_vhost(tmp_path, "shop", hop3_proxy_waf={"enabled": True})
    proc = nginx_test(
        tmp_path, {"shop": text}, {"shop": FAKE_UPSTREAM.format(app="shop")}, waf=False
    )
    assert proc.returncode != 0 and 'unknown directive "modsecurity"' in proc.stderr


# --- input checks (tasks/validate.yml) through ansible-playbook ---------------------------

VALID = {
    "hop3_proxy_app": "shop-2",
    "hop3_proxy_domains": ["shop.example.com", "*.Shop.example.com", "x_y.example.com"],
    "hop3_proxy_default_domain": "shop-2.203.0.113.5",
    "hop3_proxy_static_root": "public/",
    "hop3_proxy_static_paths": {"/static": "static", "/a/b/": "build/a.b"},
    "hop3_proxy_max_body_size": "0",
    "hop3_proxy_static_expires": "max",
    "hop3_proxy_waf": {"enabled": True, "mode": "detect", "paranoia": 4},
    "hop3_proxy_rate_limit": "600r/m",
    "hop3_proxy_rate_limit_burst": 0,
    "hop3_proxy_tls": {"mode": "self-signed", "hsts": True},
    "hop3_proxy_acme_directory": "https://10.213.3.12:14000/dir",
    "hop3_proxy_acme_email": "ops@example.com",
    "hop3_proxy_acme_ca_bundle": "/etc/hop3/acme-ca.pem",
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
    "waf-mode": ({"hop3_proxy_waf": {"mode": "on'; evil"}}, 'hop3_proxy_waf.mode "on\'; evil"'),
    "waf-paranoia": ({"hop3_proxy_waf": {"paranoia": 5}}, "hop3_proxy_waf.paranoia 5"),
    "waf-paranoia-text": ({"hop3_proxy_waf": {"paranoia": "1"}}, 'hop3_proxy_waf.paranoia "1"'),
    "waf-enabled-text": ({"hop3_proxy_waf": {"enabled": "yes"}}, 'hop3_proxy_waf.enabled "yes"'),
    "waf-key": ({"hop3_proxy_waf": {"rules": "x"}}, "hop3_proxy_waf keys"),
    "waf-not-installed": (
        {"hop3_proxy_waf_install": False, "hop3_proxy_waf": {"enabled": True}},
        "the WAF is not installed on this host",
    ),
    "rate-directive": ({"hop3_proxy_rate_limit": "10r/s; evil"}, '"10r/s; evil"'),
    "rate-unit": ({"hop3_proxy_rate_limit": "10r/h"}, 'hop3_proxy_rate_limit "10r/h"'),
    "rate-newline": ({"hop3_proxy_rate_limit": "10r/s\n"}, '"10r/s\\n"'),
    "burst-negative": (
        {"hop3_proxy_rate_limit": "1r/s", "hop3_proxy_rate_limit_burst": -1},
        "hop3_proxy_rate_limit_burst -1",
    ),
    "burst-text": (
        {"hop3_proxy_rate_limit": "1r/s", "hop3_proxy_rate_limit_burst": "5 nodelay; evil"},
        '"5 nodelay; evil"',
    ),
    "zone-size": ({"hop3_proxy_rate_limit_zone_size": "1m;"}, '"1m;"'),
    "tls-mode": ({"hop3_proxy_tls": {"mode": "on"}}, 'hop3_proxy_tls.mode "on"'),
    "tls-hsts": ({"hop3_proxy_tls": {"mode": "acme", "hsts": "yes"}}, 'hop3_proxy_tls.hsts "yes"'),
    "tls-acme-wildcard": (
        {"hop3_proxy_tls": {"mode": "acme"}, "hop3_proxy_domains": ["*.example.com"]},
        'domain "*.example.com": an ACME certificate cannot cover a wildcard',
    ),
    "acme-directory": (
        {"hop3_proxy_acme_directory": "https://x/dir --agree-tos"},
        'hop3_proxy_acme_directory "https://x/dir --agree-tos"',
    ),
    "acme-email": ({"hop3_proxy_acme_email": "-m x@y.z"}, 'hop3_proxy_acme_email "-m x@y.z"'),
    "acme-ca-bundle": (
        {"hop3_proxy_acme_ca_bundle": "ca.pem"},
        'hop3_proxy_acme_ca_bundle "ca.pem"',
    ),
    "tls-dir": ({"hop3_proxy_tls_dir": "/etc/../tmp"}, 'hop3_proxy_tls_dir "/etc/../tmp"'),
    "audit-log": (
        {"hop3_proxy_waf_audit_log": "/var/log/a b"},
        'hop3_proxy_waf_audit_log "/var/log/a b"',
    ),
    "self-signed-days": ({"hop3_proxy_self_signed_days": 0}, "hop3_proxy_self_signed_days 0"),
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
