"""The PHP runtime on real sandbox hosts: the guestbook example served by
nginx (files) and the app's own PHP-FPM (scripts, over FastCGI), with the WAF
on, zero-downtime redeploys, a failing health check, idempotence and destroy."""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from .conftest import hop, hop_json, ssh, under_load

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "php-guestbook"
HOST = "sandbox-1"
APP = "guestbook"


def request(address, path="/", data=None, timeout=5.0):
    """(status, headers, body) of a request through nginx with the app's Host."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    req = urllib.request.Request(
        f"http://{address}{path}", data=body, headers={"Host": f"{APP}.{HOST}"}
    )
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def get(address, path="/", timeout=5.0):
    status, _, body = request(address, path, timeout=timeout)
    return status, body


def set_version(app_dir: Path, version: str) -> None:
    (app_dir / "VERSION").write_text(version + "\n")


def deploy(app_dir: Path, check: bool = True):
    return hop("deploy", str(app_dir), "--app", APP, "-t", HOST, "--json", check=check)


@pytest.fixture(scope="module")
def app_dir(host, tmp_path_factory):
    """The guestbook deployed once and shared by the tests below (in order)."""
    target = tmp_path_factory.mktemp("php") / "php-guestbook"
    shutil.copytree(EXAMPLE, target)
    set_version(target, "1.0.0")
    started = time.monotonic()
    result = json.loads(deploy(target).stdout)
    print(f"first deploy of the PHP app: {time.monotonic() - started:.1f} s")
    assert result["status"] == "successful"
    yield target
    hop("destroy", APP, "--yes", "-t", HOST, check=False)


def test_php_app_answers_through_nginx_with_waf(app_dir, host):
    assert get(host) == (200, "Hello from php-guestbook v1.0.0")
    assert get(host, "/health") == (200, "ok")
    who = json.loads(get(host, "/whoami")[1])
    assert who["user"] == APP and who["release"].startswith("v")
    # The WAF is on (the default) in front of PHP too.
    assert get(host, "/guestbook?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E")[0] == 403
    vhost = ssh(host, f"cat /etc/nginx/sites-enabled/hop3-{APP}.conf").stdout
    assert "modsecurity on;" in vhost and "fastcgi_pass" in vhost


def test_php_gets_config_from_getenv(app_dir, host):
    hop("config:set", APP, "APP_GREETING=Hi 'there' $(id) {{ x }}", "-t", HOST)
    assert get(host, "/config/GREETING") == (200, "Hi 'there' $(id) {{ x }}")
    assert "Hi &#039;there&#039; $(id) {{ x }}" in get(host, "/guestbook")[1]


def test_php_answers_other_hosts(app_dir, host, sandbox_hosts):
    other = sandbox_hosts[1]["address"]
    out = ssh(other, f"curl -sS -H 'Host: {APP}.{HOST}' http://{host}/")
    assert out.stdout == "Hello from php-guestbook v1.0.0"


def test_post_an_entry_kept_in_the_shared_dir(app_dir, host):
    status, headers, _ = request(host, "/guestbook", {"name": "Ada", "message": "Hello PHP"})
    assert status == 303 and headers["Location"] == "/guestbook"
    assert {"name": "Ada", "message": "Hello PHP"}.items() <= json.loads(get(host, "/entries")[1])[
        -1
    ].items()
    stored = ssh(host, f"cat /srv/hop3/apps/{APP}/shared/guestbook.jsonl").stdout
    assert "Hello PHP" in stored
    owner = ssh(host, f"stat -c %U /srv/hop3/apps/{APP}/shared/guestbook.jsonl").stdout
    assert owner.strip() == APP


def test_static_files_come_from_nginx_and_dotfiles_are_denied(app_dir, host):
    status, headers, body = request(host, "/style.css")
    assert status == 200 and body == (app_dir / "style.css").read_text()
    # nginx's own file answers (PHP's have neither header).
    assert "ETag" in headers and "Last-Modified" in headers
    assert "X-Powered-By" not in headers
    for path in ("/.htaccess", "/.hop3-php-fpm.conf", "/.hop3-release.json", "/hop3.toml"):
        assert get(host, path)[0] == 403, path
    # A script that does not exist is a 404 from nginx, not run by PHP.
    assert get(host, "/style.css/x.php")[0] == 404


def test_php_fpm_runs_as_the_app_user_not_the_system_pool(app_dir, host):
    processes = ssh(host, "ps -eo user:20,args | grep '[p]hp-fpm'").stdout
    masters = [line for line in processes.splitlines() if "master process" in line]
    assert masters and all(line.split()[0] == APP for line in masters), processes
    system = ssh(host, "systemctl is-enabled php8.2-fpm; systemctl is-active php8.2-fpm",
                 check=False).stdout.split()  # fmt: skip
    assert system == ["disabled", "inactive"]
    ps = hop_json("ps", APP, "-t", HOST)[HOST]["processes"]
    assert [p["state"] for p in ps if p["process"] == "web"] == ["running"]
    logs = hop("logs", APP, "-n", "200", "-t", HOST).stdout
    assert "fpm is running" in logs and "ready to handle connections" in logs


def test_unchanged_redeploy_changes_nothing(app_dir):
    started = time.monotonic()
    result = json.loads(deploy(app_dir).stdout)
    print(f"unchanged redeploy: {time.monotonic() - started:.1f} s")
    assert result["status"] == "successful"
    assert result["changed"] == 0


def test_redeploy_under_load_serves_new_code_without_errors(app_dir, host):
    def probe():
        status, body = get(host, "/", timeout=10)
        yield status == 200 and body.startswith("Hello from php-guestbook v"), (status, body[:80])
        status, _ = get(host, "/style.css", timeout=10)
        yield status == 200, (status, "style.css")

    def redeploy():
        set_version(app_dir, "1.1.0")
        started = time.monotonic()
        deploy(app_dir)
        print(f"code-change redeploy: {time.monotonic() - started:.1f} s")

    successes, failures = under_load(probe, redeploy, seconds=180)
    assert failures == []
    assert len(successes) > 20
    assert get(host) == (200, "Hello from php-guestbook v1.1.0")
    # The entry posted before survives the new release (shared dir).
    assert any(e["name"] == "Ada" for e in json.loads(get(host, "/entries")[1]))
    upstream = ssh(host, f"cat /etc/nginx/hop3/upstreams/{APP}.conf").stdout
    current = ssh(host, f"readlink /srv/hop3/apps/{APP}/current").stdout.strip()
    assert f'"/srv/hop3/apps/{APP}/{current}"' in upstream


def test_failing_health_check_keeps_the_old_release(app_dir, host, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(app_dir, broken)
    set_version(broken, "9.9.9")
    toml = broken / "hop3.toml"
    text = toml.read_text().replace('path = "/health"', 'path = "/nope"')
    toml.write_text(text.replace("[healthcheck]", "[healthcheck]\ntimeout = 5\nretries = 2"))
    before = hop_json("releases", APP, "-t", HOST)[HOST]
    proc = hop("deploy", str(broken), "--app", APP, "-t", HOST, check=False)
    assert proc.returncode != 0
    assert "health check" in proc.stderr and "HTTP 404" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert get(host) == (200, "Hello from php-guestbook v1.1.0")
    assert hop_json("releases", APP, "-t", HOST)[HOST] == before


def test_bad_php_settings_are_refused_before_touching_hosts(app_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(app_dir, bad)
    (bad / "hop3.toml").write_text(
        '[php]\nroot = "../x"\nextensions = ["GD!"]\nmodules = []\n'
        'ini = { "a=b" = "1", memory_limit = "1\\nx=1", "x" = "${HOME}" }\n'
    )
    before = hop_json("apps", "-t", HOST)
    proc = hop("deploy", str(bad), "--app", "badphp", "-t", HOST, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    for fragment in ("[php] root", "[php] extensions", "[php] modules", '[php.ini] "a=b"',
                     "[php.ini] memory_limit", "[php.ini] x"):  # fmt: skip
        assert fragment in proc.stderr, fragment
    assert hop_json("apps", "-t", HOST) == before


@pytest.mark.last
def test_destroy_cleans_up(app_dir, host):
    hop("destroy", APP, "--yes", "-t", HOST)
    assert hop_json("destroy", APP, "--yes", "-t", HOST)["changed"] == 0
    leftovers = ssh(host, f"ls /etc/systemd/system | grep -c hop3-{APP}; "
                          f"ls /etc/nginx/sites-enabled /etc/nginx/hop3/upstreams | grep -c {APP}; "
                          "pgrep -c php-fpm; getent passwd {APP} | wc -l; "
                          f"test -e /srv/hop3/apps/{APP}; echo $?",
                    check=False).stdout.split()  # fmt: skip
    assert leftovers == ["0", "0", "0", "0", "1"]
    assert get(host)[0] == 404
