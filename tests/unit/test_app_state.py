"""Truthful app state: the host-side classification (module_utils/hop3_app_status.py),
the crash-loop recovery unit (module_utils/hop3_app_recover.py), and `hop apps
--check`, `hop ps`, `hop releases` rendering reports, with the runner faked."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from hop3.cli import apps as apps_cli
from hop3.cli.main import cli
from hop3.errors import HopError
from hop3.runner import HostStats, RunResult
from hop3.targets import Target

UTILS = Path(__file__).resolve().parents[2] / "roles/hop3_app/module_utils"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, UTILS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


status = load("hop3_app_status")
recover = load("hop3_app_recover")

SHOW = """Id=hop3-shop-web@v2-20001.service
LoadState=loaded
ActiveState=active
SubState=running
Result=success
NRestarts=0

Id=hop3-shop-web@v2-20002.service
LoadState=loaded
ActiveState=failed
SubState=failed
Result=start-limit-hit
NRestarts=10
"""

TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid
   0: 0100007F:4E21 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1001
   1: 0100007F:4E22 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1001
"""
TCP6 = """  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A
"""


def test_parse_show_gives_each_units_properties():
    units = status.parse_show(SHOW)
    assert set(units) == {"hop3-shop-web@v2-20001.service", "hop3-shop-web@v2-20002.service"}
    failed = units["hop3-shop-web@v2-20002.service"]
    assert (failed["ActiveState"], failed["Result"], failed["NRestarts"]) == (
        "failed",
        "start-limit-hit",
        "10",
    )


def test_listening_ports_are_only_listen_sockets():
    # 0x4E21 = 20001 listens; 0x4E22 = 20002 is an established connection.
    assert status.listening_ports(TCP, TCP6) == {20001, 80}


@pytest.mark.parametrize(
    ("active", "sub", "port", "expected"),
    [
        ("active", "running", 20001, "running"),
        ("active", "running", 20003, "starting"),  # up, but not listening yet
        ("active", "running", None, "running"),  # a worker has no port
        ("activating", "auto-restart", 20001, "restarting"),
        ("activating", "start", 20001, "activating"),
        ("deactivating", "stop-sigterm", 20001, "stopping"),
        ("failed", "failed", 20001, "failed"),
        ("inactive", "dead", 20001, "inactive"),
        (None, None, 20001, "inactive"),  # unit unknown to systemd
    ],
)
def test_instance_state(active, sub, port, expected):
    props = {"ActiveState": active, "SubState": sub} if active else {}
    assert status.instance_state(props, port, {20001, 20002}) == expected


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"wanted": 2, "states": ["running", "running"]}, "running"),
        ({"wanted": 2, "states": ["running", "failed"]}, "degraded"),
        ({"wanted": 2, "states": ["running", "inactive"]}, "degraded"),
        ({"wanted": 2, "states": ["starting", "running"]}, "degraded"),
        ({"wanted": 2, "states": ["inactive", "inactive"]}, "down"),
        ({"wanted": 2, "states": ["restarting", "inactive"]}, "down"),
        ({"wanted": 2, "states": ["failed", "restarting"]}, "failed"),
        ({"wanted": 2, "states": ["failed", "failed"], "stopped": True}, "stopped"),
        ({"wanted": 0, "states": [], "stopped": True}, "stopped"),
        ({"wanted": 0, "states": []}, "idle"),
        ({"wanted": 0, "states": [], "static": True}, "running"),
        ({"wanted": 0, "states": [], "current": None}, "failed"),
        ({"wanted": 0, "states": [], "current": None, "busy": "deploy"}, "deploying"),
    ],
)
def test_app_status(kwargs, expected):
    args = {"stopped": False, "current": "v2", "static": False, "busy": None, **kwargs}
    assert status.app_status(**args) == expected


def test_recover_unit_is_named_after_the_failed_unit():
    unit = "hop3-shop-web@v2-20001.service"
    assert recover.recover_unit(unit) == "hop3-recover@hop3-shop-web@v2-20001.service.service"


def test_recover_template_is_written_once(tmp_path):
    def write_file(path, content):
        old = Path(path).read_text() if Path(path).exists() else None
        Path(path).write_text(content)
        return old != content

    assert recover.write_recover_template(str(tmp_path), write_file) is True
    assert recover.write_recover_template(str(tmp_path), write_file) is False
    text = (tmp_path / "hop3-recover@.service").read_text()
    assert f"ExecStart=/bin/sleep {recover.RECOVER_DELAY}" in text
    assert 30 <= recover.RECOVER_DELAY <= 60


@pytest.mark.parametrize(
    ("enabled", "failed", "started"), [(0, 0, True), (1, 0, False), (0, 1, False), (1, 1, False)]
)
def test_recover_starts_only_an_enabled_failed_unit(tmp_path, enabled, failed, started):
    """The unit's shell line, run with a fake systemctl: it starts the unit
    again only when it is both enabled (still wanted) and failed."""
    line = next(x for x in recover.RECOVER_UNIT.splitlines() if "is-enabled" in x)
    script = line.split("-c '", 1)[1].rsplit("' ", 1)[0].replace("$$", "$")
    calls = tmp_path / "calls"
    fake = tmp_path / "systemctl"
    fake.write_text(
        "#!/bin/sh\n"
        f'case "$2" in is-enabled) exit {enabled};; is-failed) exit {failed};; esac\n'
        f'echo "$@" >> {calls}\n'
    )
    fake.chmod(0o755)
    unit = "hop3-a-web@v1-20001.service"
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    subprocess.run(["/bin/sh", "-c", script, "hop3-recover", unit], env=env, check=True)
    done = calls.read_text().splitlines() if calls.exists() else []
    assert done == ([f"reset-failed {unit}", f"start --no-block {unit}"] if started else [])


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze")
def test_recover_template_passes_systemd_analyze(tmp_path):
    unit = tmp_path / "hop3-recover@hop3-a-web@v1-20001.service.service"
    unit.write_text(recover.RECOVER_UNIT + "\n")
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True)  # fmt: skip
    assert "hop3-recover" not in proc.stderr, proc.stderr


# --- the CLI, with the runner faked ------------------------------------------


def app(name, state, up, wanted, release="v2"):
    return {"app": name, "status": state, "release": release, "serving": [release] if up else [],
            "scale": {"web": wanted}, "instances_up": up, "instances_wanted": wanted,
            "instances_failed": 0, "busy": None, "domains": [f"{name}.example.com"]}  # fmt: skip


@pytest.mark.parametrize(
    ("apps", "lines"),
    [
        ([app("a", "running", 2, 2), app("b", "stopped", 0, 0), app("c", "idle", 0, 0)], []),
        ([app("a", "degraded", 1, 2)], ["web-1: a is degraded (1/2 instances up)"]),
        ([app("a", "down", 0, 2), app("b", "running", 1, 1), app("c", "failed", 0, 1)],
         ["web-1: a is down (0/2 instances up)", "web-1: c is failed (0/1 instances up)"]),
        ([app("a", "deploying", 0, 0, None)], ["web-1: a is deploying (0/0 instances up)"]),
    ],
)  # fmt: skip
def test_unsettled_apps(apps, lines):
    assert apps_cli.unsettled_apps({"web-1": {"apps": apps}}) == lines


class FakeRunner:
    def __init__(self, tmp_path: Path, reports: dict):
        self.tmp_path, self.reports = tmp_path, reports

    def __call__(self, name, **kwargs):
        return RunResult(
            verb=kwargs["verb"], target=kwargs["limit"], status="successful", rc=0,
            duration=0.1, started="2024-01-01T00:00:00Z", run_dir=self.tmp_path,
            stats={"web-1": HostStats()}, reports=self.reports,
        )  # fmt: skip


def invoke(monkeypatch, tmp_path, reports, *args):
    monkeypatch.setattr("hop3.runner.run_playbook", FakeRunner(tmp_path, reports))
    target = Target(inventory=tmp_path / "inventory.yml", limit="web-1", hosts=["web-1"])
    monkeypatch.setattr("hop3.targets.resolve_target", lambda target_, inventory: target)
    return CliRunner().invoke(cli, list(args))


def test_apps_check_exits_1_and_names_the_apps(monkeypatch, tmp_path):
    reports = {"web-1": {"apps": [app("shop", "degraded", 1, 2), app("blog", "running", 1, 1)]}}
    plain = invoke(monkeypatch, tmp_path, reports, "apps")
    assert plain.exit_code == 0 and "1/2" in plain.output and "degraded" in plain.output
    checked = invoke(monkeypatch, tmp_path, reports, "apps", "--check")
    error = checked.exception  # hop3.cli.main prints it as one paragraph, exits 1
    assert isinstance(error, HopError) and error.exit_code == 1
    assert error.message == "Not fully up: web-1: shop is degraded (1/2 instances up)."
    assert "hop ps APP" in error.hint
    as_json = invoke(monkeypatch, tmp_path, reports, "apps", "--check", "--json")
    assert isinstance(as_json.exception, HopError)
    assert json.loads(as_json.stdout[: as_json.stdout.rindex("}") + 1])["web-1"][0]["app"] == "shop"


def test_apps_check_passes_when_all_are_as_wanted(monkeypatch, tmp_path):
    reports = {"web-1": {"apps": [app("shop", "stopped", 0, 0), app("blog", "running", 1, 1)]}}
    result = invoke(monkeypatch, tmp_path, reports, "apps", "--check")
    assert result.exit_code == 0, result.output


def detail_report():
    return {
        **app("shop", "degraded", 1, 2), "exists": True, "cron": [],
        "processes": [
            {"process": "web", "instance": "v2-20001", "release": "v2", "port": 20001,
             "unit": "hop3-shop-web@v2-20001.service", "state": "running", "result": "success",
             "restarts": 0, "retrying": False},
            {"process": "web", "instance": "v2-20002", "release": "v2", "port": 20002,
             "unit": "hop3-shop-web@v2-20002.service", "state": "failed",
             "result": "start-limit-hit", "restarts": 10, "retrying": True},
        ],
        "releases": [
            {"id": "v1", "time": "t1", "rev": None, "digest": "d1", "status": "inactive",
             "current": False, "serving": False, "instances_up": 0, "instances_wanted": 0},
            {"id": "v2", "time": "t2", "rev": "git:abc1234", "digest": "d2", "status": "active",
             "current": True, "serving": True, "instances_up": 1, "instances_wanted": 2},
        ],
    }  # fmt: skip


def test_ps_shows_each_instance_and_the_summary(monkeypatch, tmp_path):
    result = invoke(monkeypatch, tmp_path, {"web-1": detail_report()}, "ps", "shop")
    assert result.exit_code == 0, result.output
    assert "shop on web-1: degraded, 1/2 instances up, release v2" in result.output
    lines = [line for line in result.output.splitlines() if "v2-2000" in line]
    assert "running" in lines[0]
    assert "failed" in lines[1] and "(retrying)" in lines[1] and "10" in lines[1]


def test_releases_show_which_release_serves(monkeypatch, tmp_path):
    result = invoke(monkeypatch, tmp_path, {"web-1": detail_report()}, "releases", "shop")
    assert result.exit_code == 0, result.output
    v1, v2 = (next(x for x in result.output.splitlines() if f" {r} " in x) for r in ("v1", "v2"))
    assert "yes" in v2 and "1/2" in v2
    assert "yes" not in v1
