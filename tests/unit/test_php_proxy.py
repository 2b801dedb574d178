"""The hop3_proxy vhost of a PHP app (FastCGI to the app's PHP-FPM), checked
by rendering and by nginx's own `nginx -t` when nginx is installed here."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_proxy_templates import (
    app_vhost,
    directives,
    location,
    needs_nginx,
    nginx_test,
    vhost,
)


def upstream(app: str, release: str = "/srv/hop3/apps/{app}/releases/v1") -> str:
    """What hop3_app_processes writes: the instances and the release they serve."""
    variable = "hop3_release_" + app.replace("-", "_")
    return (
        f"upstream hop3-{app} {{\n    server 127.0.0.1:18080 max_fails=0;\n    keepalive 16;\n}}\n"
        f'map $host ${variable} {{\n    default "{release.format(app=app)}";\n}}\n'
    )


def test_php_vhost_serves_files_from_the_serving_release_and_scripts_by_fastcgi():
    text = vhost("my-wiki", hop3_proxy_php_root="public")
    lines = directives(text)
    assert 'root "$hop3_release_my_wiki/public";' in lines
    assert "index index.php index.html;" in lines
    assert "try_files $uri $uri/ /index.php?$args;" in directives(location(text, "location / "))
    php = directives(location(text, "location ~ [^/]\\.php(/|$)"))
    assert 'fastcgi_pass "hop3-my-wiki";' in php
    assert "fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;" in php
    assert "include /etc/nginx/fastcgi_params;" in php  # DOCUMENT_ROOT $document_root
    assert "try_files $fastcgi_script_name =404;" in php
    assert "deny all;" in directives(location(text, "location ~ /\\.(?!well-known/)"))
    # No HTTP proxying and no `current` symlink: only the release nginx was loaded with.
    assert "proxy_pass" not in text and "/current" not in text
    # The definition files are only denied when they are inside the document root.
    assert "hop3\\.toml" not in text
    assert "hop3\\.toml" in vhost("wiki", hop3_proxy_php_root=".")
    assert 'root "$hop3_release_wiki";' in directives(vhost("wiki", hop3_proxy_php_root="."))


def test_php_vhost_keeps_waf_body_size_rate_limit_and_tls():
    text = vhost(
        "wiki",
        hop3_proxy_php_root=".",
        hop3_proxy_max_body_size="20m",
        hop3_proxy_rate_limit="5r/s",
        hop3_proxy_waf={"enabled": True, "mode": "block", "paranoia": 1},
    )
    lines = directives(text)
    assert "modsecurity on;" in lines and 'client_max_body_size "20m";' in lines
    for header in ("location ~ [^/]\\.php(/|$)", "location / "):
        assert 'limit_req "zone=hop3-wiki" burst=5 nodelay;' in directives(location(text, header))


def test_php_root_is_validated_like_a_directory():
    # The same pattern as static roots (tasks/validate.yml): no "$", no quotes, no "..".
    validate = (Path(__file__).parents[2] / "roles/hop3_proxy/tasks/validate.yml").read_text()
    assert "hop3_proxy_php_root | string) is match(hop3_proxy__dir_re)" in validate


@needs_nginx
def test_nginx_accepts_php_apps_beside_others(tmp_path):
    apps = {
        "wiki": app_vhost(tmp_path, "wiki", hop3_proxy_php_root="."),
        "my-blog": app_vhost(
            tmp_path, "my-blog", hop3_proxy_php_root="public", hop3_proxy_rate_limit="10r/s"
        ),
        "shop": app_vhost(tmp_path, "shop"),
    }
    upstreams = {app: upstream(app) for app in apps}
    proc = nginx_test(tmp_path, apps, upstreams)
    assert proc.returncode == 0, proc.stderr
