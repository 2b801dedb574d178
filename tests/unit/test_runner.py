"""hop3.runner without hosts: the ansible-runner call, event folding, run dirs.

Most tests replace ``ansible_runner.run`` by a fake that replays events shaped
like the ones ansible-runner 2.4 emits with ansible-core 2.19 (copied from real
runs, trimmed). One test runs a real playbook against localhost.
"""

from __future__ import annotations

import io
import json
import os
import stat
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from hop3 import history, runner
from hop3.errors import HopError
from hop3.progress import LiveDisplay, PlainDisplay, StreamDisplay, make_display

SECRET = "s3cr3t-value-do-not-leak"


@pytest.fixture(autouse=True)
def hop3_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOP3_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("HOP3_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HOP3_CONFIG_DIR", str(tmp_path / "config"))
    return tmp_path


@pytest.fixture
def files(tmp_path: Path) -> SimpleNamespace:
    playbook = tmp_path / "deploy.yml"
    playbook.write_text("- hosts: all\n  gather_facts: false\n  tasks: []\n")
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("web1\nweb2\ndb1\n")
    return SimpleNamespace(playbook=playbook, inventory=inventory)


# -- events, shaped like ansible-runner's --------------------------------------------------


def ev(kind: str, stdout: str = "", **data) -> dict:
    base = {"playbook": "/x/deploy.yml", "play": "all", "play_pattern": "all"}
    return {
        "event": kind,
        "uuid": f"u-{kind}",
        "counter": 1,
        "stdout": stdout,
        "event_data": {**base, **data},
    }


def task_start(name: str, action: str = "ansible.builtin.command", role: str | None = None):
    data = {"task": name, "name": name, "task_action": action, "resolved_action": action}
    if role:
        data["role"] = role
    return ev("playbook_on_task_start", f"\r\nTASK [{name}] ****", **data)


def on_ok(host: str, task: str, res: dict, **extra) -> dict:
    return ev(
        "runner_on_ok",
        f"ok: [{host}]",
        host=host,
        remote_addr=host,
        task=task,
        res={"_ansible_no_log": False, **res},
        **extra,
    )


def on_failed(host: str, task: str, res: dict, action="ansible.builtin.command", **extra):
    return ev(
        "runner_on_failed",
        f"fatal: [{host}]: FAILED!",
        host=host,
        task=task,
        task_action=action,
        resolved_action=action,
        res={"_ansible_no_log": False, "exception": "(traceback unavailable)", **res},
        **{"ignore_errors": None, **extra},
    )


def stats_event(**per_key: dict) -> dict:
    keys = ("changed", "dark", "failures", "ignored", "ok", "processed", "rescued", "skipped")
    return ev(
        "playbook_on_stats", "PLAY RECAP", **{k: per_key.get(k, {}) for k in keys}, artifact_data={}
    )


REPORT = {"apps": [{"name": "shop", "state": "running"}], "hop3_version": "0.1.0"}

FLEET_EVENTS = [
    ev("playbook_on_start", playbook_uuid="p1"),
    ev("playbook_on_play_start", "PLAY [all]", name="all", pattern="all"),
    task_start("Build the release", role="app"),
    ev("runner_on_start", host="web1", task="Build the release"),
    on_ok("web1", "Build the release", {"changed": True, "rc": 0, "stdout": "built"}, role="app"),
    on_failed(
        "web2",
        "Build the release",
        {
            "changed": True,
            "rc": 2,
            "cmd": "npm run build",
            "msg": "non-zero return code",
            "stdout": "\n".join(f"step {i}" for i in range(30)),
            "stderr": "npm ERR! missing script: build",
        },
        role="app",
    ),
    ev(
        "runner_on_unreachable",
        "fatal: [db1]: UNREACHABLE!",
        host="db1",
        task="Build the release",
        res={
            "unreachable": True,
            "msg": "Task failed: Failed to connect to the host via ssh: Connection timed out "
            "during banner exchange\r\nConnection to 10.0.0.9 port 22 timed out",
            "changed": False,
        },
    ),
    task_start("Report", action="ansible.builtin.set_fact"),
    on_ok("web1", "Report", {"ansible_facts": {"hop3_report": {"apps": []}}, "changed": False}),
    on_ok("web1", "Report", {"ansible_facts": {"hop3_report": REPORT}, "changed": False}),
    stats_event(
        ok={"web1": 3},
        changed={"web1": 1, "web2": 1},
        failures={"web2": 1},
        dark={"db1": 1},
        processed={"web1": 1, "web2": 1, "db1": 1},
    ),
]


class FakeRunner:
    """Stands in for ansible_runner.run: records the call, replays events."""

    def __init__(self, events: list[dict], status: str = "failed", rc: int = 2):
        self.events, self.status, self.rc = events, status, rc
        self.kwargs: dict = {}
        self.extravars_seen: dict | None = None
        self.extravars_mode: int | None = None

    def __call__(self, **kwargs):
        self.kwargs = kwargs
        cmdline = (kwargs.get("cmdline") or "").split()
        if "-e" in cmdline:
            path = Path(cmdline[cmdline.index("-e") + 1].lstrip("@"))
            self.extravars_mode = stat.S_IMODE(path.stat().st_mode)
            self.extravars_seen = json.loads(path.read_text())
        kwargs["status_handler"]({"status": "starting", "runner_ident": "job"}, runner_config=None)
        for event in self.events:
            assert kwargs["event_handler"](event) is True
        kwargs["status_handler"]({"status": self.status, "runner_ident": "job"}, runner_config=None)
        return SimpleNamespace(status=self.status, rc=self.rc)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeRunner:
    fake = FakeRunner(FLEET_EVENTS)
    monkeypatch.setattr(runner.ansible_runner, "run", fake)
    return fake


def run(files: SimpleNamespace, **kwargs) -> runner.RunResult:
    options = {"inventory": files.inventory, "limit": "all", "verb": "deploy", "quiet": True}
    return runner.run_playbook(str(files.playbook), **{**options, **kwargs})


# -- the ansible-runner call --------------------------------------------------------------


def test_runner_call_keeps_secrets_out_of_args_and_env_files(fake, files, hop3_dirs):
    extravars = {"hop3_app": {"name": "shop", "env": {"SECRET_KEY": SECRET}}}
    result = run(files, limit="web", extravars=extravars)

    kw = fake.kwargs
    assert kw["suppress_env_files"] is True
    assert kw["quiet"] is True
    assert kw["limit"] == "web"
    assert kw["playbook"] == str(files.playbook)
    assert kw["inventory"] == str(files.inventory)
    assert Path(kw["inventory"]).is_absolute()
    assert "extravars" not in kw  # ansible-runner would put a dict on the command line
    assert SECRET not in json.dumps({k: v for k, v in kw.items() if isinstance(v, str | dict)})
    assert kw["cmdline"] == f"-e @{result.run_dir / 'extravars.json'}"
    assert callable(kw["event_handler"]) and callable(kw["status_handler"])

    # The file existed while ansible ran, private, with the values marked unsafe ...
    assert fake.extravars_mode == 0o600
    assert fake.extravars_seen == {
        "hop3_app": {
            "name": {"__ansible_unsafe": "shop"},
            "env": {"SECRET_KEY": {"__ansible_unsafe": SECRET}},
        }
    }
    # ... and is gone now.
    assert not (result.run_dir / "extravars.json").exists()

    run_dir = Path(kw["private_data_dir"])
    assert run_dir == result.run_dir
    assert run_dir.parent == hop3_dirs / "state" / "runs"
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    assert not (run_dir / "env").exists()


def test_ansible_settings_come_from_the_environment(fake, files, hop3_dirs, monkeypatch):
    monkeypatch.delenv("ANSIBLE_HOST_KEY_CHECKING", raising=False)
    result = run(files, verbose=2, check=True)
    env = fake.kwargs["envvars"]
    assert env["ANSIBLE_ROLES_PATH"] == str(runner.resources.roles_dir())
    assert env["ANSIBLE_PIPELINING"] == "True"
    assert env["ANSIBLE_FORKS"] == "25"
    assert env["ANSIBLE_GATHERING"] == "explicit"
    assert env["ANSIBLE_RETRY_FILES_ENABLED"] == "False"
    assert env["ANSIBLE_DEPRECATION_WARNINGS"] == "False"
    assert env["ANSIBLE_PYTHON_INTERPRETER"] == "auto_silent"
    assert env["ANSIBLE_INVENTORY_UNPARSED_FAILED"] == "True"
    assert "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED" not in env
    assert env["ANSIBLE_HOST_KEY_CHECKING"] == "True"  # ansible-runner would turn it off
    assert env["ANSIBLE_NOCOLOR"] == "True"  # quiet: nobody sees colours
    assert env["ANSIBLE_LOCAL_TEMP"].startswith(str(result.run_dir))
    ssh_args = env["ANSIBLE_SSH_ARGS"]
    assert "ControlMaster=auto" in ssh_args and "ControlPersist=60s" in ssh_args
    control_path = ssh_args.split("ControlPath=")[1].split()[0]
    assert control_path == f"{hop3_dirs / 'cache' / 'cp'}/%C"
    assert (hop3_dirs / "cache" / "cp").is_dir()
    assert fake.kwargs["verbosity"] == 2
    assert fake.kwargs["cmdline"] == "--check"


@pytest.mark.parametrize(
    ("choice", "playbook", "mitogen"),
    [
        ("", "setup.yml", False),  # its converging play picks it (many_calls_strategy)
        ("", "/x/playbooks/restore.yml", True),
        ("", "deploy.yml", False),  # three calls: its start-up costs more than it saves
        ("", "config.yml", False),
        ("1", "deploy.yml", True),
        ("0", "setup.yml", False),
    ],
)
def test_mitogen_only_for_playbooks_it_speeds_up(monkeypatch, choice, playbook, mitogen):
    monkeypatch.setenv("HOP3_MITOGEN", choice)
    env = runner._mitogen_env(playbook)
    assert (env.get("ANSIBLE_STRATEGY") == "mitogen_linear") is mitogen
    assert ("ANSIBLE_STRATEGY_PLUGINS" in env) is (choice != "0")


@pytest.mark.parametrize(("choice", "strategy"), [("", "mitogen_linear"), ("0", "linear")])
def test_a_play_with_many_calls_gets_mitogen_unless_turned_off(monkeypatch, choice, strategy):
    monkeypatch.setenv("HOP3_MITOGEN", choice)
    assert runner.many_calls_strategy() == strategy


def test_user_choice_of_host_key_checking_is_kept(fake, files, monkeypatch):
    monkeypatch.setenv("ANSIBLE_HOST_KEY_CHECKING", "False")
    run(files)
    assert fake.kwargs["envvars"]["ANSIBLE_HOST_KEY_CHECKING"] == "False"


def test_no_extravars_no_file_no_cmdline(fake, files):
    run(files)
    assert fake.kwargs["cmdline"] is None


def test_extravars_file_is_removed_when_the_run_blows_up(monkeypatch, files):
    def explode(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(runner.ansible_runner, "run", explode)
    with pytest.raises(RuntimeError):
        run(files, extravars={"token": SECRET})
    (run_dir,) = (Path(runner.paths.state_dir()) / "runs").iterdir()
    assert not (run_dir / "extravars.json").exists()


def test_extravars_strings_are_never_templates():
    value = {"a": "{{ x }}", "b": [1, "y"], "c": True, "d": None, "p": Path("/srv")}
    assert runner.as_unsafe(value) == {
        "a": {"__ansible_unsafe": "{{ x }}"},
        "b": [1, {"__ansible_unsafe": "y"}],
        "c": True,
        "d": None,
        "p": {"__ansible_unsafe": "/srv"},
    }


def test_playbook_name_resolves_under_playbooks(monkeypatch, tmp_path, fake, files):
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "setup.yml").write_text("- hosts: all\n  tasks: []\n")
    monkeypatch.setattr(runner.resources, "content_root", lambda: tmp_path)
    runner.run_playbook("setup", inventory=files.inventory, limit="all", verb="setup", quiet=True)
    assert fake.kwargs["playbook"] == str(tmp_path / "playbooks" / "setup.yml")


def test_missing_playbook_or_inventory_is_a_hop_error(fake, files, tmp_path):
    with pytest.raises(HopError, match="Playbook 'nope' not found"):
        runner.run_playbook("nope", inventory=files.inventory, limit="all", verb="x", quiet=True)
    with pytest.raises(HopError, match="Inventory not found") as err:
        run(files, inventory=tmp_path / "missing.ini")
    assert "-i" in (err.value.hint or "")
    assert fake.kwargs == {}  # ansible-runner was never called


# -- events → result ----------------------------------------------------------------------


def test_events_map_to_stats_failures_reports_and_status(fake, files):
    result = run(files)

    assert result.status == "failed"
    assert result.rc == 2
    assert not result.ok
    assert result.stats == {
        "web1": runner.HostStats(ok=3, changed=1),
        "web2": runner.HostStats(changed=1, failed=1),
        "db1": runner.HostStats(unreachable=1),
    }
    assert result.changed == 2
    assert result.reports == {"web1": REPORT}  # the last report of a host wins

    web2, db1 = result.failures
    assert web2.host == "web2" and not web2.unreachable
    assert web2.task == "app : Build the release"
    assert web2.message == "the command exited with code 2"
    tail = web2.output_tail.splitlines()
    assert len(tail) == runner.OUTPUT_TAIL_LINES
    assert tail[-1] == "npm ERR! missing script: build"
    assert str(result.run_dir) in (web2.hint or "") and "-v" in (web2.hint or "")

    assert db1.host == "db1" and db1.unreachable
    assert db1.message.startswith("Failed to connect to the host via ssh")
    assert "\r" not in db1.message
    assert db1.hint == runner.UNREACHABLE_HINT
    assert db1.output_tail == ""


def test_result_to_dict_is_json(fake, files):
    data = run(files).to_dict()
    decoded = json.loads(json.dumps(data))
    assert decoded["status"] == "failed"
    assert decoded["changed"] == 2 and decoded["ok"] is False
    assert decoded["stats"]["web2"]["failed"] == 1
    assert decoded["failures"][0]["host"] == "web2"
    assert decoded["reports"]["web1"] == REPORT
    assert decoded["run_dir"].endswith(Path(decoded["run_dir"]).name)


def test_rescued_and_ignored_errors_are_not_failures(monkeypatch, files):
    events = [
        ev("playbook_on_start"),
        task_start("Try"),
        on_failed("web1", "Try", {"msg": "first attempt failed"}),
        on_failed("web2", "Try", {"msg": "ignored"}, ignore_errors=True),
        stats_event(ok={"web1": 1, "web2": 2}, rescued={"web1": 1}, ignored={"web2": 1}),
    ]
    monkeypatch.setattr(runner.ansible_runner, "run", FakeRunner(events, "successful", 0))
    result = run(files)
    assert result.status == "successful" and result.ok
    assert result.failures == []
    assert result.stats["web1"].rescued == 1
    assert runner.format_failure_summary(result) == ""


def test_only_unreachable_hosts_means_unreachable(monkeypatch, files):
    events = [
        ev("playbook_on_start"),
        task_start("Ping"),
        ev(
            "runner_on_unreachable",
            host="db1",
            task="Ping",
            res={"unreachable": True, "msg": "Host key verification failed."},
        ),
        stats_event(dark={"db1": 1}),
    ]
    monkeypatch.setattr(runner.ansible_runner, "run", FakeRunner(events, "failed", 4))
    result = run(files)
    assert result.status == "unreachable"
    assert result.failures[0].hint == runner.HOST_KEY_HINT


def test_canceled_run(monkeypatch, files):
    events = [ev("playbook_on_start"), task_start("Long")]
    monkeypatch.setattr(runner.ansible_runner, "run", FakeRunner(events, "canceled", 254))
    result = run(files)
    assert result.status == "canceled"
    assert "canceled" in runner.format_failure_summary(result)


def test_error_before_the_playbook_is_a_hop_error(monkeypatch, files):
    noise = "\x1b[1;35m[WARNING]: Could not match supplied host pattern, ignoring: nosuch\x1b[0m"
    error = "\x1b[0;31m[ERROR]: Specified inventory, host pattern and/or --limit leaves us with no hosts to target.\x1b[0m"  # noqa: E501
    events = [ev("verbose", noise), ev("verbose", error)]
    monkeypatch.setattr(runner.ansible_runner, "run", FakeRunner(events, "failed", 1))
    with pytest.raises(HopError) as err:
        run(files, limit="nosuch")
    message = err.value.message
    assert "leaves us with no hosts to target" in message
    assert "ignoring: nosuch" in message
    assert "\x1b" not in message
    assert "Traceback" not in message


def test_inventory_parse_error_is_a_hop_error(monkeypatch, files):
    lines = [
        "[WARNING]: Failed to parse inventory with 'auto' plugin: YAML parsing failed.",
        "",
        "Origin: /x/hosts.yml:3:3",
        "[WARNING]: Unable to parse /x/hosts.yml as an inventory source",
        "[ERROR]: No inventory was parsed, please check your configuration and options.",
    ]
    events = [ev("verbose", f"\x1b[1;35m{line}\x1b[0m") for line in lines]
    monkeypatch.setattr(runner.ansible_runner, "run", FakeRunner(events, "failed", 1))
    with pytest.raises(HopError) as err:
        run(files)
    assert "No inventory was parsed" in err.value.message
    assert "YAML parsing failed" in err.value.message


def test_crash_after_start_still_reports_something(monkeypatch, files):
    events = [
        ev("playbook_on_start"),
        task_start("Include"),
        ev("error", "[ERROR]: Unexpected Exception, this is probably a bug: boom"),
    ]
    monkeypatch.setattr(runner.ansible_runner, "run", FakeRunner(events, "failed", 250))
    result = run(files)
    assert result.status == "failed"
    (failure,) = result.failures
    assert "this is probably a bug: boom" in failure.message
    assert failure.task == "Include"


def test_prints_a_plain_line_per_task_and_a_recap_when_not_a_tty(fake, files, capsys):
    run(files, quiet=False)
    out = capsys.readouterr().out
    assert "• app : Build the release\n" in out
    assert "• Report\n" in out
    assert "✗ web2" in out and "failed=1" in out
    assert "✓ web1" not in out  # web1 changed something
    assert "~ web1" in out


# -- failure messages and hints -----------------------------------------------------------


@pytest.mark.parametrize(
    ("res", "action", "expected"),
    [
        ({"msg": "Missing sudo password"}, "ansible.builtin.apt", runner.SUDO_HINT),
        ({"msg": "sudo: a password is required"}, "ansible.builtin.command", runner.SUDO_HINT),
        (
            {"msg": "No package matching 'ngnix' is available"},
            "ansible.builtin.apt",
            runner.APT_HINT,
        ),
        ({"msg": "Failed to update apt cache: unknown reason"}, "apt", runner.APT_HINT),
        (
            {"msg": "Could not get lock /var/lib/dpkg/lock-frontend"},
            "ansible.builtin.apt",
            runner.APT_LOCK_HINT,
        ),
        (
            {"msg": "Failed to set permissions on the temporary files Ansible needs"},
            "ansible.builtin.command",
            runner.ACL_HINT,
        ),
    ],
)
def test_hints(res, action, expected, tmp_path):
    data = {"task_action": action, "resolved_action": action}
    message = runner.failure_message(res)
    assert runner.failure_hint(res, message, False, data, tmp_path) == expected


def test_generic_hint_points_at_verbose_and_run_dir(tmp_path):
    res = {"msg": "Something odd"}
    hint = runner.failure_hint(res, "Something odd", False, {}, tmp_path)
    assert (
        hint == f"Run again with -v for the full Ansible output; the run's files are in {tmp_path}."
    )


def test_module_crash_shows_the_exception_not_the_traceback():
    res = {
        "msg": "MODULE FAILURE\nSee stdout/stderr for the exact error",
        "module_stderr": 'Traceback (most recent call last):\n  File "x.py", line 3\n'
        "ModuleNotFoundError: No module named 'apt'\n",
        "rc": 1,
    }
    assert runner.failure_message(res) == "ModuleNotFoundError: No module named 'apt'"
    assert runner.output_tail(res).startswith("Traceback")


def test_message_falls_back_to_stderr_and_is_trimmed():
    res = {"stderr": "\n".join(f"line {i}" for i in range(20)), "rc": 1}
    message = runner.failure_message(res)
    assert message.splitlines() == [f"line {i}" for i in range(14, 20)]


def test_loop_failure_names_the_item():
    res = {
        "msg": "One or more items failed",
        "results": [
            {"item": "curl", "failed": False},
            {"item": "ngnix", "failed": True, "msg": "No package matching 'ngnix' is available"},
        ],
    }
    assert runner.failure_message(res) == "No package matching 'ngnix' is available (item: ngnix)"


def test_failure_summary_lists_each_host(fake, files):
    summary = runner.format_failure_summary(run(files))
    assert summary.startswith("deploy failed on 2 of 3 host(s):")
    assert "✗ web2 failed at task 'app : Build the release'" in summary
    assert "npm ERR! missing script: build" in summary
    assert "✗ db1 unreachable at task 'Build the release'" in summary
    assert runner.UNREACHABLE_HINT in summary
    assert "Traceback" not in summary


# -- run dirs -----------------------------------------------------------------------------


def test_prune_keeps_the_newest_runs(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    names = [f"2026010{d}T0000{s:02d}Z-deploy-abc{s:03x}" for d in (1, 2) for s in range(20)]
    for name in names:
        (root / name).mkdir()
    (root / "not-a-run").mkdir()
    removed = runner.prune_runs(root, keep=30)
    assert [p.name for p in removed] == sorted(names)[:10]
    assert sorted(p.name for p in root.iterdir()) == sorted([*sorted(names)[10:], "not-a-run"])


def test_each_run_prunes_old_run_dirs(fake, files, hop3_dirs):
    runs = hop3_dirs / "state" / "runs"
    runs.mkdir(parents=True)
    for i in range(35):
        (runs / f"20200101T0000{i:02d}Z-deploy-{i:06x}").mkdir()
    result = run(files)
    kept = sorted(p.name for p in runs.iterdir())
    assert len(kept) == runner.KEEP_RUNS
    assert kept[-1] == result.run_dir.name


def test_new_run_dir_name(hop3_dirs):
    path = runner.new_run_dir("deploy")
    assert runner._RUN_DIR_RE.match(path.name)
    assert "-deploy-" in path.name


def test_recorded_in_history(fake, files):
    result = run(files, record=True)
    (entry,) = history.load()
    assert entry["run_dir"] == str(result.run_dir)
    assert entry["result"] == "failed"
    run(files, record=False)
    assert len(history.load()) == 1


# -- display ------------------------------------------------------------------------------


def _console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=100, force_terminal=False), buffer


def test_make_display_picks_by_mode():
    console, _ = _console()
    assert type(make_display("t", quiet=True, console=console)).__name__ == "Display"
    assert isinstance(make_display("t", verbose=1, console=console), StreamDisplay)
    assert isinstance(make_display("t", console=console), PlainDisplay)
    tty = Console(file=io.StringIO(), force_terminal=True)
    assert isinstance(make_display("t", console=tty), LiveDisplay)


def test_stream_display_prints_ansible_output_and_recap():
    console, buffer = _console()
    display = StreamDisplay(console)
    with display:
        display.output("\r\nTASK [x] ***\r\n\x1b[0;33mchanged: [web1]\x1b[0m")
        display.output("")
    display.recap({"web1": runner.HostStats(ok=1, changed=1)})
    out = buffer.getvalue()
    assert "TASK [x] ***\nchanged: [web1]\n" in out
    assert "~ web1  ok=1 changed=1 failed=0 unreachable=0" in out


def test_live_display_renders_task_and_hosts():
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    display = LiveDisplay(console, "hop deploy · deploy.yml")
    display.task_started("app : [build] release")
    display.update({"web1": runner.HostStats(ok=2, changed=1), "web2": runner.HostStats(failed=1)})
    with console.capture() as capture:
        console.print(display._render())
    text = capture.get()
    assert "app : [build] release" in text  # square brackets are not rich markup here
    assert "hop deploy" in text and "web1" in text and "web2" in text


# -- a real run ---------------------------------------------------------------------------

REAL_PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: Run a command
      ansible.builtin.command: "true"
    - name: Write a private file with the secret
      ansible.builtin.copy:
        content: "{{ secret }}"
        dest: "{{ out_dir }}/secret.txt"
        mode: "0600"
      no_log: true
    - name: Publish a report
      ansible.builtin.set_fact:
        hop3_report:
          secret_length: "{{ secret | length }}"
          template_kept: "{{ template }}"
"""


def test_real_run_against_localhost(tmp_path):
    playbook = tmp_path / "play.yml"
    playbook.write_text(REAL_PLAYBOOK)
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    result = runner.run_playbook(
        str(playbook),
        inventory=inventory,
        limit="localhost",
        verb="test",
        extravars={"secret": SECRET, "out_dir": str(out_dir), "template": "{{ 6 * 7 }}"},
        quiet=True,
    )

    assert result.status == "successful", runner.format_failure_summary(result)
    assert result.rc == 0 and result.ok
    assert result.stats["localhost"].ok == 3
    assert result.stats["localhost"].changed == 2
    assert result.failures == []
    assert result.reports == {
        "localhost": {"secret_length": len(SECRET), "template_kept": "{{ 6 * 7 }}"}
    }
    assert (out_dir / "secret.txt").read_text() == SECRET  # the value did reach the play

    assert not (result.run_dir / "extravars.json").exists()
    leaks = [
        path
        for path in result.run_dir.rglob("*")
        if path.is_file() and SECRET.encode() in path.read_bytes()
    ]
    assert leaks == []
    assert list(result.run_dir.glob("artifacts/*/job_events/*.json"))  # events were kept


def test_a_run_about_an_app_names_its_controller_for_the_lock(fake, files):
    result = run(files, extravars={"hop3_app_name": "shop"})
    seen = fake.extravars_seen
    assert seen["hop3_app_lock_run"] == {"__ansible_unsafe": result.run_dir.name}
    controller = seen["hop3_app_lock_controller"]["__ansible_unsafe"]
    assert controller.endswith(f" pid {os.getpid()}") and "@" in controller


def test_skipped_tags_reach_ansible_playbook(fake, files):
    run(files, skip_tags=("hop3_deploy_vhost", "hop3_deploy_record"))
    assert fake.kwargs["cmdline"] == "--skip-tags hop3_deploy_vhost,hop3_deploy_record"
