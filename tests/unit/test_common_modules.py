"""The shared modules of the setup roles (role hop3_common), without hosts:
hop3_files run as Ansible runs it (a process reading its arguments) on files
under tmp_path, and hop3_units' parsing of systemctl's output."""

from __future__ import annotations

import grp
import importlib.util
import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

LIBRARY = Path(__file__).resolve().parents[2] / "roles" / "hop3_common" / "library"
OWNER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name


def run_files(files: list[dict], check: bool = False) -> dict:
    args = {"files": [{"owner": OWNER, "group": GROUP, **f} for f in files]}
    if check:
        args["_ansible_check_mode"] = True
    proc = subprocess.run(
        [sys.executable, str(LIBRARY / "hop3_files.py")],
        input=json.dumps({"ANSIBLE_MODULE_ARGS": args}),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def units():
    spec = importlib.util.spec_from_file_location("hop3_units", LIBRARY / "hop3_units.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def layout(tmp_path: Path) -> list[dict]:
    return [
        {"path": str(tmp_path / "srv"), "state": "directory", "mode": "0750"},
        {"path": str(tmp_path / "srv" / "a.conf"), "content": "a = 1\n", "tag": "nginx"},
        {"path": str(tmp_path / "srv" / "link"), "state": "link", "src": "a.conf", "tag": "nginx"},
        {"path": str(tmp_path / "srv" / "log"), "state": "touch", "mode": "0640"},
        {"path": str(tmp_path / "old"), "state": "absent", "tag": "old"},
    ]


def test_files_converge_then_change_nothing(tmp_path):
    (tmp_path / "old").write_text("x")
    first = run_files(layout(tmp_path))
    assert first["changed"] and first["updated_tags"] == ["nginx", "old"]
    assert len(first["updated_paths"]) == 5
    srv = tmp_path / "srv"
    assert oct(srv.stat().st_mode & 0o777) == "0o750"
    assert (srv / "a.conf").read_text() == "a = 1\n"
    assert os.readlink(srv / "link") == "a.conf"
    assert oct((srv / "log").stat().st_mode & 0o777) == "0o640"
    assert not (tmp_path / "old").exists()
    second = run_files(layout(tmp_path))
    assert second == {**second, "changed": False, "updated_paths": [], "updated_tags": []}


def test_touch_keeps_content_and_fixes_mode(tmp_path):
    log = tmp_path / "audit.jsonl"
    log.write_text('{"entry": 1}\n')
    log.chmod(0o600)
    result = run_files([{"path": str(log), "state": "touch", "mode": "0640"}])
    assert result["changed"] and log.read_text() == '{"entry": 1}\n'
    assert oct(log.stat().st_mode & 0o777) == "0o640"


def test_only_a_changed_file_reports_its_tag(tmp_path):
    run_files(layout(tmp_path))
    entries = layout(tmp_path)
    entries[1]["content"] = "a = 2\n"
    result = run_files(entries)
    assert result["updated_paths"] == [entries[1]["path"]] and result["updated_tags"] == ["nginx"]


def test_a_file_that_fails_its_check_never_replaces_the_old_one(tmp_path):
    conf = tmp_path / "sshd.conf"
    conf.write_text("PermitRootLogin no\n")
    result = run_files([{"path": str(conf), "content": "broken\n",
                         "validate": "/bin/sh -c 'echo bad file %s >&2; exit 1'"}])  # fmt: skip
    assert result["failed"] and "bad file" in result["msg"]
    assert conf.read_text() == "PermitRootLogin no\n"
    assert [p.name for p in tmp_path.iterdir()] == ["sshd.conf"]  # no temporary file left


def test_check_mode_changes_nothing(tmp_path):
    result = run_files(layout(tmp_path), check=True)
    assert result["changed"] and not (tmp_path / "srv").exists()


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        ({"state": "directory"}, "is not a directory"),
        ({"state": "link", "src": "x"}, "is not a link"),
        ({"state": "sideways"}, "needs a path and a state"),
        ({"mode": "rw-r--r--", "content": ""}, "is not octal"),
        ({"owner": "no-such-user-hop3", "content": ""}, "no such user or group"),
    ],
)
def test_bad_entries_fail_with_the_path(tmp_path, entry, said):
    target = tmp_path / "file"
    target.write_text("kept\n")
    result = run_files([{"path": str(target), **entry}])
    assert result["failed"] and said in result["msg"], result
    assert target.read_text() == "kept\n"


SHOW = """Id=nginx.service
LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=enabled
ConditionResult=yes
ConditionTimestampMonotonic=1200

Id=systemd-timesyncd.service
LoadState=loaded
ActiveState=inactive
SubState=dead
UnitFileState=enabled
ConditionResult=no
ConditionTimestampMonotonic=1300

Id=hop3-firewall.service
LoadState=loaded
ActiveState=inactive
SubState=dead
UnitFileState=disabled
ConditionResult=no
ConditionTimestampMonotonic=0
"""


def test_units_parse_systemctl_show_of_several_units(units):
    parsed = units.parse_show(SHOW)
    assert [u["Id"] for u in parsed] == [
        "nginx.service", "systemd-timesyncd.service", "hop3-firewall.service"]  # fmt: skip
    assert not units.skipped_by_condition(parsed[0])
    assert units.skipped_by_condition(parsed[1])
    # Never started yet: its conditions were not checked, so it must be started.
    assert not units.skipped_by_condition(parsed[2])
    assert units.needs_enable({"UnitFileState": "disabled"})
    assert not units.needs_enable({"UnitFileState": "static"})


STATUS = """x hop3-firewall.service - Hop3 firewall (nftables table inet hop3)
     Loaded: loaded (/etc/systemd/system/hop3-firewall.service; enabled; preset: enabled)
    Drop-In: /etc/systemd/system/hop3-firewall.service.d
             └─99-broken.conf
     Active: failed (Result: exit-code) since Tue 2026-12-01 22:00:00 UTC; 1s ago
    Process: 41 ExecStartPre=/bin/sh -c echo broken >&2; exit 3 (code=exited, status=3)
    Process: 40 ExecStart=/usr/sbin/nft -f /etc/hop3/firewall.nft (code=exited, status=0/SUCCESS)
"""


def test_units_summary_keeps_the_active_line_and_failed_processes(units):
    summary = units.summary_of(STATUS)
    assert summary.startswith("Active: failed (Result: exit-code)")
    assert "ExecStartPre=/bin/sh -c echo broken >&2; exit 3 (code=exited, status=3)" in summary
    assert "status=0/SUCCESS" not in summary


class FakeSystemctl:
    """systemctl whose calls of the given verbs fail (a call PID 1 did not answer
    in time) as many times as said, while the unit's state is ``props``."""

    def __init__(self, props: dict, failures: dict[str, int]):
        self.props, self.failures, self.calls = props, dict(failures), []

    def __call__(self, *args):
        self.calls.append(args[0])
        if self.failures.get(args[0], 0) > 0:
            self.failures[args[0]] -= 1
            return subprocess.CompletedProcess(args, 1, "", "Connection timed out")
        if args[0] == "show":
            wanted = args[1].partition("=")[2].split(",")
            out = "".join(f"{k}={self.props.get(k, '')}\n" for k in wanted)
            return subprocess.CompletedProcess(args, 0, out, "")
        if args[0] == "enable":
            self.props["UnitFileState"] = "enabled"
        if args[0] == "start":
            self.props.update(ActiveState="active", Job="")
        return subprocess.CompletedProcess(args, 0, "", "")


NEW_UNIT = {"Id": "hop3-firewall.service", "LoadState": "loaded", "ActiveState": "inactive",
            "UnitFileState": "disabled", "ConditionResult": "no", "Result": "success"}  # fmt: skip
PARAMS = {"units": ["hop3-firewall.service"], "state": "started", "enabled": True,
          "daemon_reload": True, "journal_lines": 5, "settle_seconds": 0}  # fmt: skip


def test_units_calls_that_time_out_once_are_made_again(units, monkeypatch):
    fake = FakeSystemctl(dict(NEW_UNIT), {"daemon-reload": 1, "show": 1, "enable": 1})
    monkeypatch.setattr(units, "systemctl", fake)
    assert units.converge(PARAMS, check_mode=False) == (
        ["hop3-firewall.service"], ["hop3-firewall.service"])  # fmt: skip
    assert fake.props["UnitFileState"] == "enabled" and fake.props["ActiveState"] == "active"
    assert fake.calls.count("daemon-reload") == 2 and fake.calls.count("enable") == 2


def test_units_a_call_that_keeps_failing_names_the_unit(units, monkeypatch):
    monkeypatch.setattr(units, "systemctl", FakeSystemctl(dict(NEW_UNIT), {"enable": 2}))
    with pytest.raises(units.UnitError, match=r"cannot enable hop3-firewall\.service"):
        units.converge(PARAMS, check_mode=False)


def test_units_a_queued_start_job_is_not_settled(units, monkeypatch):
    """A unit whose start job waits in systemd's queue is "inactive": settled()
    waits for the job to end, not for the first inactive answer."""

    class Queued(FakeSystemctl):
        def __call__(self, *args):
            if self.calls.count("show") == 2:  # the job ran after two answers
                self.props.update(ActiveState="active", Job="")
            return super().__call__(*args)

    fake = Queued({"ActiveState": "inactive", "Result": "success", "Job": "154"}, {})
    monkeypatch.setattr(units, "systemctl", fake)
    assert units.settled("hop3-firewall.service", 90) == ("active", "success")
    assert fake.calls.count("show") == 3
