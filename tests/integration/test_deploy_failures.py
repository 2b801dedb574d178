"""Failed deploys leave a clean host, on real sandbox hosts through the real CLI:
a redeploy that fails after its new instances started (a process that exits at
once, one that never binds $PORT, nginx stopped) leaves the old release serving
and nothing of the new one running or enabled (a config change whose instances
fail also puts the config back); a failed first deploy (a missing
Debian package, a start command that exits) leaves no app at all; a symlink out
of the app's tree is refused. Each test compares what serves over HTTP, the
units systemd runs and enables, the app's lock, and `hop apps`, `hop ps` and
`hop releases` with the host."""

from __future__ import annotations

import base64
import io
import json
import shutil
import tarfile
import time
from pathlib import Path

import pytest

from hop3.source import pack

from .conftest import hop, hop_json, http_get, ssh

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HOST = "sandbox-2"  # test_apps.py uses sandbox-1; stopping nginx here disturbs none of it
APP = "kept"


def get(address: str, app: str, path: str = "/") -> tuple[int, str]:
    return http_get(address, f"{app}.{HOST}", path)


def flask_copy(tmp_path: Path, version: str, procfile: str | None = None) -> Path:
    app_dir = tmp_path / f"flask-{version}"
    shutil.copytree(EXAMPLES / "python-flask", app_dir)
    (app_dir / "VERSION").write_text(version + "\n")
    if procfile:
        (app_dir / "Procfile").write_text(procfile + "\n")
    return app_dir


def set_healthcheck(app_dir: Path, **settings: int) -> None:
    toml = app_dir / "hop3.toml"
    lines = "".join(f"{key} = {value}\n" for key, value in settings.items())
    toml.write_text(toml.read_text().replace("[healthcheck]\n", "[healthcheck]\n" + lines))


def deploy(app_dir: Path, app: str, check: bool = True):
    return hop("deploy", str(app_dir), "--app", app, "-t", HOST, check=check)


def host_units(address: str, app: str) -> dict:
    """What systemd has of the app: loaded units with their sub-state, failed
    ones, and enabled unit files (instances included)."""
    pattern = f"'hop3-{app}-*'"
    units = ssh(address, f"systemctl list-units --all --no-legend --plain {pattern}").stdout
    files = ssh(address, f"systemctl list-unit-files --no-legend {pattern}").stdout
    wants = ssh(address, f"ls /etc/systemd/system/*.wants/ | grep -F hop3-{app}- || true").stdout
    loaded = {line.split()[0]: line.split()[3] for line in units.splitlines() if line.strip()}
    return {
        "running": sorted(u for u, sub in loaded.items() if sub == "running"),
        "failed": sorted(u for u, sub in loaded.items() if sub in ("failed", "auto-restart")),
        "enabled": sorted(
            {line.split()[0] for line in files.splitlines() if line.split()[1:2] == ["enabled"]}
            | {n for n in wants.split() if n.endswith(".service")}
        ),
    }


def settled_units(address: str, app: str) -> dict:
    """host_units once the old instances a swap stopped in the background are gone."""
    deadline = time.monotonic() + 60
    units = host_units(address, app)
    while set(units["running"]) - set(units["enabled"]) and time.monotonic() < deadline:
        time.sleep(0.5)
        units = host_units(address, app)
    return units


def lock_held(address: str, app: str) -> bool:
    return ssh(address, f"test -e /srv/hop3/locks/{app}.json", check=False).returncode == 0


def cli_view(app: str) -> dict:
    """What `hop apps`, `hop ps` and `hop releases` say of the app."""
    apps = {a["app"]: a for a in hop_json("apps", "-t", HOST)[HOST]}
    processes = hop_json("ps", app, "-t", HOST)[HOST]["processes"]
    releases = hop_json("releases", app, "-t", HOST)[HOST]
    return {"app": apps[app], "processes": processes, "releases": releases}


def assert_cli_matches_host(view: dict, units: dict, release: str) -> None:
    assert view["app"]["status"] == "running"
    assert [r["id"] for r in view["releases"] if r["status"] == "active"] == [release]
    listed = sorted(f"hop3-{APP}-{p['process']}@{p['instance']}.service" for p in view["processes"])
    assert listed == units["running"] == units["enabled"], (view, units)
    assert all(p["state"] == "running" and p["instance"].startswith(release + "-")
               for p in view["processes"])  # fmt: skip


@pytest.fixture(scope="module")
def host(setup_runs, sandbox_hosts):
    return sandbox_hosts[1]["address"]


@pytest.fixture(scope="module")
def kept(host, tmp_path_factory):
    """App 'kept' serving v1.0.0, and what the host and the CLI say of it."""
    deploy(flask_copy(tmp_path_factory.mktemp("kept"), "1.0.0"), APP)
    units = settled_units(host, APP)
    view = cli_view(APP)
    upstream = ssh(host, f"cat /etc/nginx/hop3/upstreams/{APP}.conf").stdout
    yield {"units": units, "view": view, "upstream": upstream, "routes": routes(host, APP)}
    ssh(host, "systemctl start nginx", check=False)
    hop("destroy", APP, "--yes", "-t", HOST, check=False)


def routes(host: str, app: str) -> tuple[str, str]:
    """The app's route (module_utils/hop3_app_routes.py): its file, and the rule
    the kernel has loaded."""
    path = f"/etc/hop3/routes.d/{app}.nft"
    return (ssh(host, f"cat {path}").stdout,
            ssh(host, f"nft list chain ip hop3_routes app_{app}").stdout)  # fmt: skip


def assert_kept_as_before(host: str, kept: dict) -> None:
    """The failed deploy left v1.0.0 serving, alone, exactly as before."""
    assert get(host, APP) == (200, "Hello from python-flask v1.0.0")
    units = settled_units(host, APP)
    assert units == kept["units"] and units["failed"] == []
    assert ssh(host, f"cat /etc/nginx/hop3/upstreams/{APP}.conf").stdout == kept["upstream"]
    assert routes(host, APP) == kept["routes"]
    assert not lock_held(host, APP)
    view = cli_view(APP)
    assert view["releases"] == kept["view"]["releases"]
    assert_cli_matches_host(view, units, kept["view"]["releases"][-1]["id"])


def test_the_kept_app_agrees_with_the_host(host, kept):
    assert get(host, APP) == (200, "Hello from python-flask v1.0.0")
    assert len(kept["units"]["running"]) == 1 and kept["units"]["failed"] == []
    assert_cli_matches_host(kept["view"], kept["units"], kept["view"]["releases"][-1]["id"])


def test_a_process_that_exits_at_once_fails_fast_with_its_output(host, kept, tmp_path):
    broken = flask_copy(tmp_path, "1.1.0", "web: no-such-server-xyz --port $PORT")
    set_healthcheck(broken, timeout=120)
    started = time.monotonic()
    proc = deploy(broken, APP, check=False)
    took = time.monotonic() - started
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "no-such-server-xyz: not found" in proc.stderr  # the journal of the instance
    assert "stopped at once" in proc.stderr and "status 127" in proc.stderr
    assert "systemctl status hop3-kept-web@" in proc.stderr and "Active:" in proc.stderr
    # It exited: no need to wait out the 120 s health check (a generous bound).
    assert took < 60, took
    assert_kept_as_before(host, kept)


def test_a_web_process_that_never_binds_port_is_told_so(host, kept, tmp_path):
    silent = flask_copy(tmp_path, "1.2.0", "web: sleep 600")
    set_healthcheck(silent, timeout=5, retries=2)
    proc = deploy(silent, APP, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "is running but nothing listens on 127.0.0.1:" in proc.stderr
    assert "must bind $PORT" in proc.stderr
    assert "answers but did not pass" not in proc.stderr
    assert_kept_as_before(host, kept)


def test_a_failing_health_check_is_told_apart_from_no_listener(host, kept, tmp_path):
    wrong = flask_copy(tmp_path, "1.3.0")
    toml = wrong / "hop3.toml"
    toml.write_text(toml.read_text().replace('path = "/health"', 'path = "/nope"'))
    # A long timeout: it fails after two 404s, once gunicorn answers (slow on a busy machine).
    set_healthcheck(wrong, timeout=120, retries=2)
    proc = deploy(wrong, APP, check=False)
    assert proc.returncode != 0
    assert "answers but did not pass the health check" in proc.stderr and "HTTP 404" in proc.stderr
    assert "nothing listens" not in proc.stderr
    assert_kept_as_before(host, kept)


def test_a_config_change_whose_instances_fail_puts_the_config_back(host, kept):
    """config:set swaps in the same module call; new instances that exit at
    once leave the old ones serving and the config as it was."""
    env = f"/srv/hop3/apps/{APP}/env"
    before = ssh(host, f"cat {env}").stdout
    proc = hop("config:set", APP, "GUNICORN_CMD_ARGS=--no-such-flag", "-t", HOST, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stdout + proc.stderr
    said = " ".join((proc.stdout + proc.stderr).split())
    assert "stopped at once" in said and "The config was put back as it was" in said
    assert ssh(host, f"cat {env}").stdout == before
    assert "GUNICORN_CMD_ARGS" not in hop_json("config", APP, "-t", HOST)
    assert_kept_as_before(host, kept)


def test_nginx_stopped_during_a_redeploy_keeps_the_old_release(host, kept, tmp_path):
    v2 = flask_copy(tmp_path, "2.0.0")
    ssh(host, "systemctl stop nginx")
    try:
        proc = deploy(v2, APP, check=False)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr
        assert "nginx is not running" in proc.stderr and "Start nginx" in proc.stderr
        units = settled_units(host, APP)
        assert units == kept["units"] and units["failed"] == []
        assert ssh(host, f"cat /etc/nginx/hop3/upstreams/{APP}.conf").stdout == kept["upstream"]
        assert not lock_held(host, APP)
    finally:
        ssh(host, "systemctl start nginx")
    assert_kept_as_before(host, kept)
    # Once nginx runs, the same deploy goes through and v2 alone runs.
    deploy(v2, APP)
    assert get(host, APP) == (200, "Hello from python-flask v2.0.0")
    units = settled_units(host, APP)
    view = cli_view(APP)
    assert len(units["running"]) == 1 and units["failed"] == []
    assert_cli_matches_host(view, units, view["releases"][-1]["id"])
    # The earlier releases are the same ones; none of them serves any more.
    assert _identity(view["releases"][:-1]) == _identity(kept["view"]["releases"])
    assert not any(r["current"] or r["serving"] for r in view["releases"][:-1])


def _identity(releases: list[dict]) -> list[dict]:
    return [{k: r[k] for k in ("id", "time", "rev", "digest")} for r in releases]


def assert_no_trace(host: str, app: str) -> None:
    """Nothing of the app on the host, and the CLI agrees."""
    checks = (
        f"getent passwd {app} | wc -l; "
        f"test -e /srv/hop3/apps/{app}; echo $?; "
        f"ls /etc/systemd/system /etc/systemd/system/*.wants | grep -c -F hop3-{app}-; "
        f"systemctl list-units --all --no-legend --plain 'hop3-{app}-*' | wc -l; "
        f"grep -c '\"{app}\"' /srv/hop3/ports.json; "
        f"test -e /srv/hop3/locks/{app}.json; echo $?; "
        f"ls /srv/hop3/uploads | grep -c '^{app}-'"
    )
    assert ssh(host, checks, check=False).stdout.split() == ["0", "1", "0", "0", "0", "1", "0"]
    assert app not in {a["app"] for a in hop_json("apps", "-t", HOST)[HOST]}
    for verb in ("ps", "releases"):
        proc = hop(verb, app, "-t", HOST, check=False)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr
        assert f"no app named '{app}'" in proc.stderr.lower(), proc.stderr
    assert get(host, app)[0] == 404  # the default server


def test_failed_first_deploy_missing_package_leaves_nothing(host, tmp_path):
    app_dir = flask_copy(tmp_path, "1.0.0")
    toml = app_dir / "hop3.toml"
    toml.write_text(toml.read_text() + '\n[build]\npackages = ["hop3-no-such-package"]\n')
    proc = deploy(app_dir, "nopkg", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "hop3-no-such-package" in proc.stderr
    assert "Nothing of app 'nopkg' was kept on the host" in proc.stderr
    assert_no_trace(host, "nopkg")


def test_failed_first_deploy_start_command_exits_leaves_nothing(host, tmp_path):
    app_dir = flask_copy(tmp_path, "1.0.0", "web: echo 'no database configured' >&2; exit 3")
    set_healthcheck(app_dir, timeout=120)
    started = time.monotonic()
    proc = deploy(app_dir, "noexec", check=False)
    took = time.monotonic() - started
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "no database configured" in proc.stderr and "status 3" in proc.stderr
    assert "Nothing of app 'noexec' was kept on the host" in proc.stderr
    assert took < 90, took  # the build, then no wait for the 120 s health check
    assert_no_trace(host, "noexec")
    # The same name deploys from scratch afterwards, and destroy removes it all.
    deploy(flask_copy(tmp_path, "1.0.1"), "noexec")
    assert get(host, "noexec") == (200, "Hello from python-flask v1.0.1")
    hop("destroy", "noexec", "--yes", "-t", HOST)
    assert_no_trace(host, "noexec")


def test_symlinks_out_of_the_tree_are_refused_and_inner_ones_work(host, tmp_path):
    site = tmp_path / "site"
    shutil.copytree(EXAMPLES / "static-site", site)
    (site / "public" / "passwd").symlink_to("/etc/passwd")
    proc = deploy(site, "linky", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "public/passwd -> /etc/passwd" in proc.stderr
    assert "outside the app's directory" in proc.stderr
    assert_no_trace(host, "linky")
    (site / "public" / "passwd").unlink()
    (site / "public" / "escape").symlink_to("../../../etc")
    proc = deploy(site, "linky", check=False)
    assert proc.returncode != 0 and "public/escape -> ../../../etc" in proc.stderr
    (site / "public" / "escape").unlink()
    # An archive not made by `hop deploy` (a git push builds its own on the
    # host): put in place of the upload, the host refuses it when unpacking.
    packed = pack(site)
    crafted = io.BytesIO()
    with tarfile.open(fileobj=crafted, mode="w:gz") as tar:
        tar.add(site / "hop3.toml", arcname="hop3.toml")
        tar.add(site / "public" / "index.html", arcname="public/index.html")
        link = tarfile.TarInfo("public/passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    upload = f"/srv/hop3/uploads/linky-{packed.digest}.tar.gz"
    data = base64.b64encode(crafted.getvalue()).decode()
    ssh(host, f"mkdir -p /srv/hop3/uploads && echo {data} | base64 -d > {upload}")
    proc = deploy(site, "linky", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "step 'unpack'" in proc.stderr and "public/passwd -> /etc/passwd" in proc.stderr
    assert_no_trace(host, "linky")
    (site / "public" / "home.html").symlink_to("index.html")
    deploy(site, "linky")
    index = get(host, "linky", "/index.html")
    assert index[0] == 200 and get(host, "linky", "/home.html") == index
    hop("destroy", "linky", "--yes", "-t", HOST)
    assert json.dumps(hop_json("apps", "-t", HOST)).count('"linky"') == 0
