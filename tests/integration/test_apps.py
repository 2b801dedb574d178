"""Deploying apps from source on real sandbox hosts: every example, config,
scaling, zero-downtime redeploys, health checks, rollback, destroy, bad input."""

from __future__ import annotations

import http.client
import json
import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .conftest import hop, hop_json, http_get, ssh

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HOST = "sandbox-1"


def get(address: str, app: str, path: str = "/", timeout: float = 5) -> tuple[int, str]:
    return http_get(address, f"{app}.{HOST}", path, timeout)


def copy_example(name: str, tmp_path: Path, version: str | None = None) -> Path:
    target = tmp_path / name
    shutil.copytree(EXAMPLES / name, target, ignore=shutil.ignore_patterns("node_modules", "bin"))
    if version:
        set_version(target, version)
    return target


def set_version(app_dir: Path, version: str) -> None:
    old = (app_dir / "VERSION").read_text().strip()
    (app_dir / "VERSION").write_text(version + "\n")
    index = app_dir / "public" / "index.html"
    if index.exists():
        index.write_text(index.read_text().replace(f"v{old}", f"v{version}"))


def deploy(app_dir: Path, app: str, check: bool = True):
    return hop("deploy", str(app_dir), "--app", app, "-t", HOST, "--json", check=check)


@pytest.fixture(scope="module")
def flask_app(host, tmp_path_factory):
    """The Flask example deployed once as app 'flask' and shared by the tests below."""
    app_dir = copy_example("python-flask", tmp_path_factory.mktemp("flask"), "1.0.0")
    deploy(app_dir, "flask")
    yield app_dir
    hop("destroy", "flask", "--yes", "-t", HOST, check=False)


@pytest.mark.parametrize(
    "example", ["python-fastapi", "node-express", "go-http", "static-site", "python-worker"]
)
def test_example_deploys_and_answers_through_nginx(example, host, tmp_path):
    app = example.replace("python-", "py-")
    app_dir = copy_example(example, tmp_path, "2.0.0")
    result = json.loads(deploy(app_dir, app).stdout)
    assert result["status"] == "successful"
    assert get(host, app) == (200, f"Hello from {example} v2.0.0") or (
        example == "static-site" and f"Hello from {example} v2.0.0" in get(host, app)[1]
    )
    assert get(host, app, "/health")[1].strip() == "ok"
    if example != "static-site":
        who = json.loads(get(host, app, "/whoami")[1])
        assert who["user"] == app  # each app runs as its own unix user
    hop("destroy", app, "--yes", "-t", HOST)


def test_flask_serves_and_runs_as_its_user(flask_app, host):
    assert get(host, "flask") == (200, "Hello from python-flask v1.0.0")
    who = json.loads(get(host, "flask", "/whoami")[1])
    assert who["user"] == "flask" and who["release"].startswith("v")
    units = ssh(host, "systemctl show -p NoNewPrivileges -p ProtectSystem -p PrivateTmp "
                      "'hop3-flask-web@*'").stdout  # fmt: skip
    assert "NoNewPrivileges=yes" in units and "ProtectSystem=strict" in units


def test_unchanged_redeploy_changes_nothing(flask_app):
    result = json.loads(deploy(flask_app, "flask").stdout)
    assert result["status"] == "successful"
    assert result["changed"] == 0


HOSTILE = "a 'quoted' \"value\"\nline2 $(id) `id` {{ 7*7 }} {% raw %} %s 100% ;$HOME\\"


def test_config_values_reach_the_app_literally(flask_app, host):
    hop("config:set", "flask", f"APP_HOSTILE={HOSTILE}", "APP_PLAIN=yes", "-t", HOST)
    assert get(host, "flask", "/config/HOSTILE") == (200, HOSTILE)
    assert get(host, "flask", "/config/PLAIN") == (200, "yes")
    again = hop_json("config:set", "flask", f"APP_HOSTILE={HOSTILE}", "-t", HOST)
    assert again["changed"] == 0  # the same value again changes nothing
    got = hop("config:get", "flask", "APP_HOSTILE", "-t", HOST).stdout
    assert got == HOSTILE
    hop("config:unset", "flask", "APP_PLAIN", "-t", HOST)
    assert get(host, "flask", "/config/PLAIN")[0] == 404
    listed = hop_json("config", "flask", "-t", HOST)
    assert listed["APP_HOSTILE"] == HOSTILE and "APP_PLAIN" not in listed


def test_scale_gives_two_live_instances(flask_app, host):
    hop("ps:scale", "flask", "web=2", "-t", HOST)
    ports = {json.loads(get(host, "flask", "/whoami")[1])["port"] for _ in range(20)}
    assert len(ports) == 2
    processes = hop_json("ps", "flask", "-t", HOST)[HOST]["processes"]
    assert [p["state"] for p in processes if p["process"] == "web"] == ["running", "running"]
    hop("ps:scale", "flask", "web=1", "-t", HOST)


class Load:
    """Requests during an operation: 4 threads on new connections, and 4
    keep-alive clients that each reuse one connection (a reset on those is
    what an nginx reload causes). Bounded: stops by itself after 180 s."""

    def __init__(self, host: str, app: str) -> None:
        self.host, self.app = host, app
        self.failures: list[str] = []
        self.successes = {"plain": 0, "keepalive": 0}
        self.stop = threading.Event()

    def plain(self) -> None:
        while self._going():
            try:
                status, _ = get(self.host, self.app, "/", timeout=10)
                self._count("plain", status)
            except OSError as err:
                self.failures.append(f"plain: {err!r}")

    def keepalive(self) -> None:
        connection = http.client.HTTPConnection(self.host, timeout=10)
        while self._going():
            try:
                connection.request("GET", "/", headers={"Host": f"{self.app}.{HOST}"})
                response = connection.getresponse()
                response.read()
                self._count("keepalive", response.status)
            except (OSError, http.client.HTTPException) as err:
                self.failures.append(f"keep-alive: {err!r}")
                connection.close()
                connection = http.client.HTTPConnection(self.host, timeout=10)
            time.sleep(0.2)
        connection.close()

    def _going(self) -> bool:
        return not self.stop.is_set() and time.monotonic() < self.deadline

    def _count(self, kind: str, status: int) -> None:
        if status == 200:
            self.successes[kind] += 1
        else:
            self.failures.append(f"{kind}: HTTP {status}")

    def __enter__(self) -> Load:
        self.deadline = time.monotonic() + 180
        self.workers = [threading.Thread(target=self.plain) for _ in range(4)]
        self.workers += [threading.Thread(target=self.keepalive) for _ in range(4)]
        for worker in self.workers:
            worker.start()
        time.sleep(1)
        return self

    def __exit__(self, *_exc) -> None:
        time.sleep(1)
        self.stop.set()
        for worker in self.workers:
            worker.join()


def test_redeploy_config_and_scale_under_load_fail_no_request(flask_app, host):
    """Zero failed requests, keep-alive clients included: a swap switches the
    app's route port, it does not reload nginx (docs/apps.md)."""
    reloads = nginx_reloads(host)
    with Load(host, "flask") as load:
        set_version(flask_app, "1.1.0")
        deploy(flask_app, "flask")
        hop("config:set", "flask", "APP_UNDER_LOAD=1", "-t", HOST)
        hop("ps:scale", "flask", "web=2", "-t", HOST)
        hop("ps:scale", "flask", "web=1", "-t", HOST)
    assert load.failures == []
    assert load.successes["plain"] > 20 and load.successes["keepalive"] > 20
    assert get(host, "flask") == (200, "Hello from python-flask v1.1.0")
    assert nginx_reloads(host) == reloads


def nginx_reloads(host: str) -> str:
    """The start time of nginx's workers: a reload replaces them."""
    return ssh(host, "ps -o lstart= -o pid= --ppid $(cat /run/nginx.pid)").stdout


def test_a_lost_route_is_reported_and_the_next_deploy_restores_it(flask_app, host):
    """If the host's nftables rules lose an app's route (`nft flush ruleset`),
    nginx answers 502: `hop apps` says so, and a redeploy of the same source
    does not take the unchanged fast path but puts the route back."""
    ssh(host, "nft delete table ip hop3_routes")
    try:
        assert get(host, "flask")[0] == 502
        apps = {a["app"]: a for a in hop_json("apps", "-t", HOST)[HOST]}
        assert apps["flask"]["status"] == "down" and apps["flask"]["instances_up"] == 0
        processes = hop_json("ps", "flask", "-t", HOST)[HOST]["processes"]
        assert [p["state"] for p in processes if p["process"] == "web"] == ["unrouted"]
        assert hop("apps", "--check", "-t", HOST, check=False).returncode != 0
        result = json.loads(deploy(flask_app, "flask").stdout)
        assert result["status"] == "successful" and result["changed"] > 0
    finally:
        ssh(host, "systemctl restart hop3-routes.service")  # every app's route, from its file
    assert get(host, "flask") == (200, "Hello from python-flask v1.1.0")
    assert {a["app"]: a for a in hop_json("apps", "-t", HOST)[HOST]}["flask"]["status"] == "running"


def test_failing_health_check_keeps_old_release_serving(flask_app, host, tmp_path):
    broken = copy_example("python-flask", tmp_path, "9.9.9")
    toml = broken / "hop3.toml"
    text = toml.read_text().replace('path = "/health"', 'path = "/nope"')
    toml.write_text(text.replace("[healthcheck]", "[healthcheck]\ntimeout = 5\nretries = 2"))
    before = hop_json("releases", "flask", "-t", HOST)[HOST]
    proc = hop("deploy", str(broken), "--app", "flask", "-t", HOST, check=False)
    assert proc.returncode != 0
    assert "health check" in proc.stderr and "Traceback" not in proc.stderr
    assert get(host, "flask")[1] == "Hello from python-flask v1.1.0"
    assert hop_json("releases", "flask", "-t", HOST)[HOST] == before


def test_rollback_serves_previous_code(flask_app, host):
    hop("rollback", "flask", "-t", HOST)
    assert get(host, "flask") == (200, "Hello from python-flask v1.0.0")
    releases = hop_json("releases", "flask", "-t", HOST)[HOST]
    active = [r["id"] for r in releases if r["status"] == "active"]
    assert len(active) == 1 and active[0] != releases[-1]["id"]
    hop("rollback", "flask", releases[-1]["id"], "-t", HOST)
    assert get(host, "flask") == (200, "Hello from python-flask v1.1.0")


def test_killed_process_comes_back(flask_app, host):
    before = json.loads(get(host, "flask", "/whoami")[1])
    ssh(host, "systemctl kill -s KILL 'hop3-flask-web@*'")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            status, body = get(host, "flask", "/whoami")
            if status == 200 and json.loads(body)["pid"] != before["pid"]:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    pytest.fail("the killed web process did not come back within 30 s")


def test_stop_start_restart(flask_app, host):
    hop("stop", "flask", "-t", HOST)
    assert get(host, "flask")[0] == 502
    apps = {a["app"]: a for a in hop_json("apps", "-t", HOST)[HOST]}
    assert apps["flask"]["status"] == "stopped"
    running = "systemctl list-units --state=running --no-legend 'hop3-flask-*'"
    deadline = time.monotonic() + 30  # old instances stop in the background
    while ssh(host, running).stdout.strip() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ssh(host, running).stdout.strip() == ""
    hop("start", "flask", "-t", HOST)
    assert hop_json("start", "flask", "-t", HOST)["changed"] == 0
    before = json.loads(get(host, "flask", "/whoami")[1])
    hop("restart", "flask", "-t", HOST)
    after = json.loads(get(host, "flask", "/whoami")[1])
    assert after["pid"] != before["pid"] and after["port"] != before["port"]
    apps = {a["app"]: a for a in hop_json("apps", "-t", HOST)[HOST]}
    assert apps["flask"]["status"] == "running"


def test_domains_add_and_remove(flask_app, host):
    hop("domains:add", "flask", "shop.example.test", "-t", HOST)
    request = urllib.request.Request(f"http://{host}/", headers={"Host": "shop.example.test"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.read().decode().startswith("Hello from python-flask")
    hop("domains:remove", "flask", "shop.example.test", "-t", HOST)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=5)
    assert err.value.code == 404


def test_logs_and_run(flask_app, host):
    get(host, "flask", "/health")
    logs = hop("logs", "flask", "-n", "200", "-t", HOST).stdout
    assert "GET /health" in logs
    ran = hop("run", "flask", "-t", HOST, "--", "sh", "-c", 'echo "$HOP3_APP $(id -un) $PWD"')
    assert ran.stdout.split() == ["flask", "flask", "/srv/hop3/apps/flask/current"] or (
        ran.stdout.split()[:2] == ["flask", "flask"] and "/releases/" in ran.stdout
    )


def test_worker_release_and_cron(host, tmp_path):
    app_dir = copy_example("python-worker", tmp_path, "3.0.0")
    deploy(app_dir, "worker")
    releases = json.loads(get(host, "worker", "/releases")[1])
    assert "release-3.0.0.txt" in releases
    time.sleep(3)
    heartbeat = json.loads(get(host, "worker", "/heartbeat")[1])
    assert heartbeat["age"] < 10
    timers = ssh(host, "systemctl list-timers --all --no-legend 'hop3-worker-cron-*'").stdout
    assert "hop3-worker-cron-1.timer" in timers
    ssh(host, "systemctl start hop3-worker-cron-1.service")
    assert int(ssh(host, "wc -l < /srv/hop3/apps/worker/shared/ticks.log").stdout) >= 1
    # A failing release command aborts the deploy and keeps the running release.
    hop("config:set", "worker", "APP_FAIL_RELEASE=1", "-t", HOST)
    set_version(app_dir, "3.1.0")
    proc = hop("deploy", str(app_dir), "--app", "worker", "-t", HOST, check=False)
    assert proc.returncode != 0 and "release command" in proc.stderr
    assert get(host, "worker")[1] == "Hello from python-worker v3.0.0"
    hop("destroy", "worker", "--yes", "-t", HOST)


def test_destroy_leaves_nothing_behind(host, tmp_path):
    app_dir = copy_example("python-flask", tmp_path)
    deploy(app_dir, "doomed")
    assert get(host, "doomed")[0] == 200
    hop("destroy", "doomed", "--yes", "-t", HOST)
    assert hop_json("destroy", "doomed", "--yes", "-t", HOST)["changed"] == 0
    leftovers = ssh(host, "ls /etc/systemd/system | grep -c hop3-doomed; "
                          "ls /etc/nginx/sites-enabled /etc/nginx/hop3/upstreams | grep -c doomed; "
                          "getent passwd doomed | wc -l; test -e /srv/hop3/apps/doomed; echo $?",
                    check=False).stdout.split()  # fmt: skip
    assert leftovers == ["0", "0", "0", "1"]
    assert get(host, "doomed")[0] == 404  # back to the default server


BAD_NAMES = ["../x", "A B", "root", "-x", "x" * 31]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_app_names_are_refused_before_touching_hosts(name, flask_app):
    before = hop_json("apps", "-t", HOST)
    proc = hop("deploy", str(flask_app), "--app", name, "-t", HOST, check=False)
    assert proc.returncode != 0
    assert "not a valid app name" in proc.stderr or "reserved" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert hop_json("apps", "-t", HOST) == before


def test_garbage_procfile_and_mistyped_toml_are_reported(tmp_path, flask_app):
    app_dir = copy_example("python-flask", tmp_path)
    (app_dir / "Procfile").write_text("web gunicorn app:app\n: nothing\n")
    (app_dir / "hop3.toml").write_text('[bulid]\nbuild = "x"\n[healthcheck]\nretries = "many"\n')
    proc = hop("deploy", str(app_dir), "--app", "garbage", "-t", HOST, check=False)
    assert proc.returncode != 0
    for fragment in ("Procfile", "line 1", "hop3.toml", "bulid", "retries"):
        assert fragment in proc.stderr, fragment
    assert "Traceback" not in proc.stderr
    assert "garbage" not in json.dumps(hop_json("apps", "-t", HOST))
