"""Run a playbook through ansible-runner and turn its events into a result.

This is the only module in Hop3 that imports ansible_runner. Each run gets a
private data dir under ``state_dir()/runs/``; the newest runs are kept for
debugging. Extra vars may carry app secrets, so they never reach the process
arguments nor stay on disk: they go to a 0600 file passed as ``-e @file`` and
deleted when ansible-playbook exits.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import secrets
import shlex
import shutil
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ansible_runner
from ansible_runner.exceptions import AnsibleRunnerException

from hop3 import ansiballz, auditlog, history, interrupt, paths, resources
from hop3.errors import HopError
from hop3.progress import Display, make_display

KEEP_RUNS = 30
OUTPUT_TAIL_LINES = 15
MESSAGE_LINES = 6
_EXTRAVARS_FILE = "extravars.json"
_RUN_DIR_RE = re.compile(r"^\d{8}T\d{6}Z-[\w.-]+-[0-9a-f]+$")
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_ERROR_RE = re.compile(r"^(\[ERROR\]:|ERROR!)")
_WARNING_RE = re.compile(r"^\[(WARNING|DEPRECATION WARNING)\]:")
_EXPLAINING_WARNINGS = ("inventory", "unable to parse", "host pattern")

# The audit log (roles/hop3_auditlog) records every run of these commands:
# the playbooks that change hosts end by importing audit-record.yml, which
# records "ok"; hosts that failed are recorded by the runner afterwards.
AUDITED_PLAYBOOKS = frozenset(
    {"setup", "deploy", "destroy", "config", "app-state", "pg", "redis", "backup", "restore",
     "firewall", "mariadb", "unlock"}
)  # fmt: skip
AUDITED_VERBS = frozenset(
    {"setup", "deploy", "destroy", "start", "stop", "restart", "ps:scale", "rollback",
     "config:set", "config:unset", "domains:add", "domains:remove",
     "pg:create", "pg:destroy", "pg:link", "pg:unlink",
     "redis:create", "redis:destroy", "redis:link", "redis:unlink",
     "mariadb:create", "mariadb:destroy", "mariadb:link", "mariadb:unlink",
     "backup", "restore", "backup:schedule", "backup:unschedule", "backup:init", "backup:key",
     "firewall:allow", "firewall:deny", "catalog:install", "catalog:upgrade", "unlock"}
)  # fmt: skip
# Read-only actions of those playbooks (hop3_<x>_action), e.g. backup:key without a key file.
READ_ONLY_ACTIONS = frozenset({"show", "list", "info", "key", "snapshots", "check"})
_APP_VARS = (
    "hop3_app_name", "hop3_backup_app", "hop3_postgresql_app", "hop3_redis_app", "hop3_mariadb_app"
)  # fmt: skip

UNREACHABLE_HINT = (
    "Check that the host is up and that `ssh user@host` works with your key "
    "(hop server list shows the address)."
)
HOST_KEY_HINT = (
    "The host's SSH key is not in your known_hosts, or it changed. Connect once with "
    "`ssh user@host`, check the fingerprint and accept it, then run again."
)
SUDO_HINT = (
    "The SSH user needs sudo without a password on the host: check that `sudo -n true` "
    "works as that user, or set ansible_become_password in the inventory."
)
ACL_HINT = (
    "Becoming an unprivileged user needs the `acl` package on the host (`apt-get install acl`)."
)
APT_HINT = (
    "A package could not be installed: check that its name exists on Debian 12 and that "
    "`apt-get update` works on the host (sources, network, proxy)."
)
APT_LOCK_HINT = (
    "Another apt or dpkg process holds the lock on the host (often unattended-upgrades): "
    "wait for it to finish, then run again."
)


@dataclass
class HostStats:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0


@dataclass
class HostFailure:
    host: str
    task: str
    message: str
    hint: str | None
    unreachable: bool = False
    output_tail: str = ""  # stdout/stderr tail of a failed command, if any


@dataclass
class RunResult:
    verb: str
    target: str
    status: str  # "successful" | "failed" | "unreachable" | "canceled" | "interrupted"
    rc: int
    duration: float
    started: str  # ISO 8601 UTC
    run_dir: Path
    stats: dict[str, HostStats] = field(default_factory=dict)
    failures: list[HostFailure] = field(default_factory=list)
    reports: dict[str, dict] = field(default_factory=dict)
    timings: list[tuple[str, float]] = field(default_factory=list)  # (task, seconds)
    signal: str | None = None  # SIGINT or SIGTERM when hop was interrupted

    @property
    def ok(self) -> bool:
        return self.status == "successful"

    @property
    def changed(self) -> int:
        return sum(s.changed for s in self.stats.values())

    def to_dict(self) -> dict:
        data = asdict(self)
        data["run_dir"] = str(self.run_dir)
        data["ok"] = self.ok
        data["changed"] = self.changed
        return data


# ---------------------------------------------------------------------------
# Events → stats, failures, reports


class EventCollector:
    """Folds ansible-runner events, in order, into what a RunResult needs.

    Counts are kept live from task results (for the display) and replaced by
    the authoritative ``playbook_on_stats`` numbers at the end.
    """

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.stats: dict[str, HostStats] = {}
        self.reports: dict[str, dict] = {}
        self.current_task = ""
        self.started = False  # ansible-playbook got as far as the playbook
        self.final_stats = False
        self.output: deque[str] = deque(maxlen=200)  # clean stdout lines, for early errors
        self._failures: dict[str, HostFailure] = {}  # last failure per host
        self.timings: dict[str, float] = {}  # task → longest host result, in seconds

    def handle(self, event: dict) -> None:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        self._keep_output(event.get("stdout") or "")
        if kind == "playbook_on_start":
            self.started = True
        elif kind == "playbook_on_task_start":
            self.current_task = task_label(data)
        if kind.startswith("runner_on_") and kind != "runner_on_start":
            self._time(data)
        if kind == "runner_on_ok":
            self._on_ok(data)
        elif kind == "runner_on_failed":
            self._on_failed(data)
        elif kind == "runner_on_unreachable":
            self._on_unreachable(data)
        elif kind == "runner_on_skipped":
            self._host(data).skipped += 1
        elif kind == "playbook_on_stats":
            self._on_stats(data)

    def failures(self) -> list[HostFailure]:
        """Failures of hosts that ended failed or unreachable (a rescued error is no failure)."""
        if not self.final_stats:
            return list(self._failures.values())
        result = []
        for host, stats in self.stats.items():
            if not (stats.failed or stats.unreachable):
                continue
            failure = self._failures.get(host) or HostFailure(
                host=host,
                task=self.current_task or "?",
                message="failed (no details were reported)",
                hint=generic_hint(self.run_dir),
                unreachable=bool(stats.unreachable and not stats.failed),
            )
            result.append(failure)
        return result

    def error_text(self, max_lines: int = 15) -> str:
        """The ERROR lines Ansible printed, plus inventory warnings that explain them."""
        lines = list(self.output)
        picked: list[str] = []
        in_error = False
        for line in lines:
            if _ERROR_RE.match(line):
                in_error = True
            elif _WARNING_RE.match(line):
                in_error = False
                if any(word in line.lower() for word in _EXPLAINING_WARNINGS):
                    picked.append(line)
                continue
            if in_error:
                picked.append(line)
        picked = list(dict.fromkeys(picked))  # inventory warnings repeat per plugin
        if not picked:
            picked = lines[-max_lines:]
        return "\n".join(picked[:max_lines])

    # -- event kinds

    def _host(self, data: dict) -> HostStats:
        host = data.get("host") or "?"
        return self.stats.setdefault(host, HostStats())

    def _time(self, data: dict) -> None:
        """Per-task seconds from the event's duration (or its start and end times)."""
        seconds = data.get("duration")
        if not isinstance(seconds, int | float):
            try:
                start = datetime.fromisoformat(str(data["start"]))
                seconds = (datetime.fromisoformat(str(data["end"])) - start).total_seconds()
            except (KeyError, ValueError):
                return
        label = task_label(data) or self.current_task or "?"
        self.timings[label] = max(self.timings.get(label, 0.0), float(seconds))

    def _on_ok(self, data: dict) -> None:
        stats = self._host(data)
        stats.ok += 1
        res = data.get("res") or {}
        if res.get("changed"):
            stats.changed += 1
        report = (res.get("ansible_facts") or {}).get("hop3_report")
        if isinstance(report, dict):
            self.reports[data.get("host") or "?"] = report

    def _on_failed(self, data: dict) -> None:
        if data.get("ignore_errors"):
            self._host(data).ok += 1
            return
        self._host(data).failed += 1
        self._record_failure(data, unreachable=False)

    def _on_unreachable(self, data: dict) -> None:
        self._host(data).unreachable += 1
        self._record_failure(data, unreachable=True)

    def _on_stats(self, data: dict) -> None:
        self.final_stats = True
        fields = {
            "ok": "ok",
            "changed": "changed",
            "failed": "failures",
            "unreachable": "dark",
            "skipped": "skipped",
            "rescued": "rescued",
        }
        hosts: dict[str, None] = dict.fromkeys(self.stats)
        for key in (*fields.values(), "processed"):
            hosts.update(dict.fromkeys(data.get(key) or {}))
        self.stats = {
            host: HostStats(
                **{attr: int((data.get(key) or {}).get(host, 0)) for attr, key in fields.items()}
            )
            for host in hosts
        }

    def _record_failure(self, data: dict, *, unreachable: bool) -> None:
        host = data.get("host") or "?"
        res = data.get("res") or {}
        message = failure_message(res)
        self._failures.pop(host, None)  # keep hosts in the order of their last failure
        self._failures[host] = HostFailure(
            host=host,
            task=task_label(data) or self.current_task or "?",
            message=message,
            hint=failure_hint(res, message, unreachable, data, self.run_dir),
            unreachable=unreachable,
            output_tail=output_tail(res),
        )

    def _keep_output(self, stdout: str) -> None:
        for line in clean_text(stdout).splitlines():
            if line.strip():
                self.output.append(line.rstrip())


def task_label(data: dict) -> str:
    task = str(data.get("task") or data.get("name") or "")
    role = data.get("role")
    return f"{role} : {task}" if role and task else task


def clean_text(text: str) -> str:
    """Drop colour codes and control characters (they are not ours to send to a terminal)."""
    text = _ANSI_RE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return _CONTROL_RE.sub("", text)


def last_lines(text: str, n: int) -> str:
    lines = [line.rstrip() for line in clean_text(text).strip("\n").splitlines()]
    return "\n".join(lines[-n:])


def _first_failed_item(res: dict) -> dict | None:
    for item in res.get("results") or []:
        if isinstance(item, dict) and (item.get("failed") or item.get("unreachable")):
            return item
    return None


def failure_message(res: dict) -> str:
    item = _first_failed_item(res)
    if item is not None:
        label = item.get("_ansible_item_label", item.get("item"))
        message = failure_message(item)
        return f"{message} (item: {label})" if label not in (None, "") else message
    msg = str(res.get("msg") or "").strip()
    if not msg or msg.startswith("MODULE FAILURE"):
        # A module that crashed: its stderr ends with the exception, which is the news.
        for key in ("stderr", "module_stderr", "module_stdout", "censored"):
            if str(res.get(key) or "").strip():
                # A module traceback's last line is the exception; the rest goes to the tail.
                msg = last_lines(str(res[key]), 1 if key.startswith("module") else MESSAGE_LINES)
                break
    msg = msg or "failed (no message)"
    msg = re.sub(r"^Task failed: (Module failed: )?", "", msg)
    rc = res.get("rc")
    if isinstance(rc, int) and rc != 0 and msg == "non-zero return code":
        msg = f"the command exited with code {rc}"
    return last_lines(msg, MESSAGE_LINES) if "\n" in msg else clean_text(msg)


def output_tail(res: dict, n: int = OUTPUT_TAIL_LINES) -> str:
    """Last lines of a command's stdout then stderr (only command-like results have them)."""
    item = _first_failed_item(res)
    if item is not None:
        return output_tail(item, n)
    if res.get("output_tail"):  # Hop3's own modules name the output of the step that failed
        return last_lines(str(res["output_tail"]), n)
    keys = ("stdout", "stderr") if "stdout" in res or "stderr" in res else ("module_stderr",)
    parts = [str(res.get(key) or "") for key in keys]
    text = "\n".join(part.strip("\n") for part in parts if part.strip())
    return last_lines(text, n) if text else ""


def generic_hint(run_dir: Path) -> str:
    return f"Run again with -v for the full Ansible output; the run's files are in {run_dir}."


def failure_hint(res: dict, message: str, unreachable: bool, data: dict, run_dir: Path) -> str:
    texts = [message] + [str(res.get(key) or "") for key in ("msg", "stderr", "module_stderr")]
    lowered = " ".join(texts).lower()
    if unreachable:
        if any(sign in lowered for sign in ("host key verification failed", "has changed")):
            return HOST_KEY_HINT
        return UNREACHABLE_HINT
    if "failed to set permissions on the temporary files" in lowered:
        return ACL_HINT
    sudo_signs = (
        "missing sudo password",
        "incorrect sudo password",
        "a password is required",
        "privilege escalation",
        "permission denied",
        "is not in the sudoers",
    )
    if any(sign in lowered for sign in sudo_signs):
        return SUDO_HINT
    if "could not get lock" in lowered or "dpkg was interrupted" in lowered:
        return APT_LOCK_HINT
    action = str(data.get("resolved_action") or data.get("task_action") or "")
    apt_signs = ("no package matching", "failed to update apt cache", "unable to fetch", "apt-get")
    if action.split(".")[-1] in ("apt", "apt_repository", "deb822_repository") or any(
        sign in lowered for sign in apt_signs
    ):
        return APT_HINT
    return generic_hint(run_dir)


def run_status(runner_status: str, rc: int, stats: dict[str, HostStats]) -> str:
    if runner_status in ("canceled", "interrupted"):
        return runner_status
    if rc == 0 and runner_status == "successful":
        return "successful"
    if any(s.failed for s in stats.values()):
        return "failed"
    if any(s.unreachable for s in stats.values()):
        return "unreachable"
    return "failed"


# ---------------------------------------------------------------------------
# Run directories and Ansible settings


def runs_root() -> Path:
    paths.ensure(paths.state_dir())
    return paths.ensure(paths.state_dir() / "runs")


def new_run_dir(verb: str) -> Path:
    root = runs_root()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    safe_verb = re.sub(r"[^\w.-]+", "_", verb) or "run"
    while True:
        run_dir = root / f"{stamp}-{safe_verb}-{secrets.token_hex(3)}"
        try:
            run_dir.mkdir(mode=0o700)
        except FileExistsError:
            continue
        run_dir.chmod(0o700)
        return run_dir


def prune_runs(root: Path, keep: int = KEEP_RUNS) -> list[Path]:
    """Delete all but the newest ``keep`` run dirs (their names start with a UTC timestamp)."""
    runs = sorted(p for p in root.iterdir() if p.is_dir() and _RUN_DIR_RE.match(p.name))
    doomed = runs[:-keep] if keep > 0 else runs
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def run_identity(run_dir: Path) -> dict[str, str]:
    """Who runs this, for the app lock's waiters (roles/hop3_app, lock options):
    the controller's user@host and hop's pid, and the run's name. Given to a
    run about an app, so that the role does not fork a shell for them."""
    return {
        "hop3_app_lock_controller": f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()}",
        "hop3_app_lock_run": run_dir.name,
    }


def _falsy(value: str) -> bool:
    return value.strip().lower() in ("0", "false", "no", "off", "n", "f")


def ansible_env(run_dir: Path, *, color: bool, playbook: str = "") -> dict[str, str]:
    """Ansible settings, as environment variables so no ansible.cfg is needed."""
    control_dir = paths.ensure(paths.cache_dir() / "cp")
    env = {
        "ANSIBLE_ROLES_PATH": str(resources.roles_dir()),
        "ANSIBLE_PIPELINING": "True",
        # ControlPath must stay short: unix socket paths are limited to ~104 bytes.
        "ANSIBLE_SSH_ARGS": (
            f"-o ControlMaster=auto -o ControlPersist=60s -o ControlPath={control_dir}/%C"
        ),
        "ANSIBLE_FORKS": "25",
        "ANSIBLE_GATHERING": "explicit",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
        "ANSIBLE_LOCAL_TEMP": str(paths.ensure(run_dir / "tmp")),
        "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
        # ansible-runner turns host key checking off unless told otherwise; keep
        # Ansible's own default (on) unless the user chose in their environment.
        "ANSIBLE_HOST_KEY_CHECKING": os.environ.get("ANSIBLE_HOST_KEY_CHECKING", "True"),
    }
    if not color:
        env["ANSIBLE_NOCOLOR"] = "True"
    env.update(_mitogen_env(playbook))
    modules = resources.content_root() / "plugins" / "modules"
    if modules.is_dir():
        env["ANSIBLE_LIBRARY"] = str(modules)
    env.update(_ansiballz_cache_env())
    bin_dir = Path(sys.executable).parent
    if (bin_dir / "ansible-playbook").exists():
        # Use the ansible-playbook installed next to Hop3, even from an unactivated venv.
        env["PATH"] = os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")])
    return env


def _ansiballz_cache_env() -> dict[str, str]:
    """Built module payloads kept between runs (plugins/callback/hop3_ansiballz_cache.py)."""
    callbacks = resources.content_root() / "plugins" / "callback"
    if not (callbacks / "hop3_ansiballz_cache.py").is_file() or _falsy(
        os.environ.get("HOP3_ANSIBALLZ_CACHE", "1")
    ):
        return {}
    enabled = [c for c in os.environ.get("ANSIBLE_CALLBACKS_ENABLED", "").split(",") if c.strip()]
    plugin_dirs = [d for d in os.environ.get("ANSIBLE_CALLBACK_PLUGINS", "").split(os.pathsep) if d]
    return {
        "ANSIBLE_CALLBACK_PLUGINS": os.pathsep.join([*plugin_dirs, str(callbacks)]),
        "ANSIBLE_CALLBACKS_ENABLED": ",".join([*enabled, "hop3_ansiballz_cache"]),
        "HOP3_ANSIBALLZ_CACHE": str(ansiballz.cache_dir()),
    }


# Playbooks that make many module calls per host. Mitogen starts one Python
# interpreter per host and run (about 2.5 s here) and then makes each call
# cheap, so it pays from about ten calls: a full `hop setup` (about 20) is
# 2 s faster with it, a redeploy (three) 1.3 s slower (docs/performance.md).
# `hop setup` picks it for its converging play only (many_calls_strategy):
# a host with nothing to do costs it one call.
MITOGEN_PLAYBOOKS = frozenset({"restore.yml"})


def _mitogen_plugins() -> Path | None:
    if os.environ.get("HOP3_MITOGEN", "") == "0":
        return None
    try:
        import ansible_mitogen
    except ImportError:
        return None
    return Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"


def many_calls_strategy() -> str:
    """The strategy for a play with many module calls per host, passed as an
    extra var to a play that names its own: Mitogen's when it is installed."""
    return "mitogen_linear" if _mitogen_plugins() else "linear"


def _mitogen_env(playbook: str = "") -> dict[str, str]:
    """Mitogen's strategy on the plugin path, and the strategy of every play
    of the playbooks it speeds up.

    HOP3_MITOGEN=1 uses it for every playbook, HOP3_MITOGEN=0 for none.
    """
    plugins = _mitogen_plugins()
    if plugins is None:
        return {}
    env = {"ANSIBLE_STRATEGY_PLUGINS": str(plugins)}
    choice = os.environ.get("HOP3_MITOGEN", "")
    if choice == "1" or Path(playbook).name in MITOGEN_PLAYBOOKS:
        env["ANSIBLE_STRATEGY"] = "mitogen_linear"
    return env


def as_unsafe(value: Any) -> Any:
    """Mark every string as data, so Ansible never evaluates `{{ }}` found in user input.

    ansible-core templates extra vars read from a file; ``__ansible_unsafe`` is the
    JSON form of ``!unsafe`` and keeps values literal.
    """
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str):
        return {"__ansible_unsafe": value}
    if isinstance(value, dict):
        return {str(k): as_unsafe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_unsafe(v) for v in value]
    return value


def write_extravars(run_dir: Path, extravars: dict) -> Path:
    path = run_dir / _EXTRAVARS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(as_unsafe(extravars), f)
    return path


def _scrub_command_file(run_dir: Path) -> None:
    """ansible-runner saves the whole environment next to the command; drop it."""
    for command_file in (run_dir / "artifacts").glob("*/command"):
        try:
            data = json.loads(command_file.read_text(encoding="utf-8"))
            data.pop("env", None)
            command_file.write_text(json.dumps(data), encoding="utf-8")
        except (OSError, ValueError):
            command_file.unlink(missing_ok=True)


def resolve_playbook(name: str) -> Path:
    path = Path(name) if Path(name).is_absolute() else resources.playbook(name)
    if not path.is_file():
        raise HopError(
            f"Playbook '{name}' not found (looked for {path}).",
            hint="The Hop3 installation looks incomplete: reinstall hop3.",
        )
    return path


def _check_inventory(inventory: Path) -> Path:
    # ansible-runner would take a missing path for inline inventory text.
    inventory = Path(os.path.abspath(inventory))
    if not inventory.exists():
        raise HopError(
            f"Inventory not found: {inventory}.",
            hint="Check the -i/--inventory option (or $HOP3_INVENTORY).",
        )
    return inventory


# ---------------------------------------------------------------------------
# The run


def run_playbook(
    name: str,
    *,
    inventory: Path,
    limit: str,
    verb: str,
    extravars: dict | None = None,
    verbose: int = 0,
    quiet: bool = False,
    record: bool = True,
    check: bool = False,
    skip_tags: tuple[str, ...] = (),
) -> RunResult:
    """Run a playbook (a name under playbooks/, or an absolute path) on the hosts in ``limit``.

    ``skip_tags`` leaves out tasks the caller knows have nothing to do: Ansible
    drops them when it loads the playbook, where a false ``when`` would still
    cost a worker per host and task.

    A playbook that fails on hosts is a result, not an exception; HopError is
    raised only when the run could not start (missing files, an inventory or
    playbook Ansible cannot parse, a host pattern that matches nothing).
    """
    playbook = resolve_playbook(name)
    inventory = _check_inventory(inventory)
    audit = None
    # Only Hop3's own playbooks (by name) end with the audit-record play.
    if not check and not Path(name).is_absolute() and changes_state(name, verb, extravars or {}):
        audit = auditlog.audit_var(audited_app(extravars or {}), step=verb)
        extravars = {**(extravars or {}), "hop3_audit": audit}
    run_dir = new_run_dir(verb)
    prune_runs(run_dir.parent)
    if extravars and "hop3_app_name" in extravars:
        extravars = {**run_identity(run_dir), **extravars}

    color = bool(verbose) and not quiet and sys.stdout.isatty()
    collector = EventCollector(run_dir)
    display = make_display(f"hop {verb} · {playbook.name}", verbose=verbose, quiet=quiet)
    statuses: list[str] = []
    handler_errors: list[Exception] = []
    cmdline = ["--check"] if check else []
    if skip_tags:
        cmdline += ["--skip-tags", ",".join(skip_tags)]
    extravars_file = None
    started = datetime.now(UTC)
    clock = time.monotonic()
    try:
        if extravars:
            extravars_file = write_extravars(run_dir, extravars)
            cmdline += ["-e", f"@{extravars_file}"]
        envvars = ansible_env(run_dir, color=color, playbook=str(playbook))
        shim = interrupt.write_shim(
            run_dir / "bin", envvars.get("PATH", os.environ.get("PATH", ""))
        )
        if shim is not None:
            envvars["PATH"] = os.pathsep.join(
                [str(shim.parent), envvars.get("PATH", os.environ.get("PATH", ""))]
            )
        with display, interrupt.Interrupts() as interrupts:
            runner = _run_ansible(
                private_data_dir=str(run_dir),
                ident="job",
                playbook=str(playbook),
                inventory=str(inventory),
                limit=limit or None,  # "--limit ''" would match nothing
                envvars=envvars,
                cancel_callback=interrupts.cancel,
                # How often ansible-runner asks cancel_callback when Ansible prints nothing.
                settings={"pexpect_timeout": 0.5},
                cmdline=shlex.join(cmdline) if cmdline else None,
                suppress_env_files=True,
                quiet=True,
                verbosity=verbose or None,
                event_handler=_event_handler(collector, display, handler_errors),
                status_handler=lambda data, runner_config=None: statuses.append(data["status"]),
            )
    finally:
        if extravars_file is not None:
            extravars_file.unlink(missing_ok=True)
        _scrub_command_file(run_dir)
    duration = time.monotonic() - clock
    if handler_errors:
        raise handler_errors[0]
    display.recap(collector.stats)
    if verbose:
        display.timings(sorted(collector.timings.items(), key=lambda item: -item[1]))

    runner_status = str(runner.status or (statuses[-1] if statuses else "failed"))
    rc = runner.rc if isinstance(runner.rc, int) else -1
    if interrupts.signum is not None:
        runner_status = "interrupted"
    if not collector.started and runner_status not in ("canceled", "interrupted"):
        raise HopError(
            f"Ansible stopped before running the {verb} playbook:\n{collector.error_text()}",
            hint=f"The run's files are in {run_dir}.",
        )
    failures = collector.failures()
    if rc != 0 and runner_status not in ("canceled", "interrupted") and not failures:
        failures.append(_crash_failure(collector, runner_status, rc, run_dir))
    result = RunResult(
        verb=verb,
        target=limit,
        status=run_status(runner_status, rc, collector.stats),
        rc=rc,
        duration=duration,
        started=started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        run_dir=run_dir,
        stats=collector.stats,
        failures=failures,
        reports=collector.reports,
        timings=list(collector.timings.items()),
        signal=interrupts.name if interrupts.signum is not None else None,
    )
    if record:
        history.record(result)
    if result.status == "interrupted":
        error = interrupted_error(result, name, inventory, extravars or {}, run_dir)
        if audit is not None:
            record_interrupted(result, audit, inventory)
        raise error
    if audit is not None and not result.ok and result.status != "canceled":
        record_failures(result, audit, inventory)
    return result


# Playbooks of one app whose interruption may leave it half-changed.
RECOVERED_PLAYBOOKS = frozenset({"deploy", "app-state", "config", "restore"})


def interrupted_error(
    result: RunResult, playbook: str, inventory: Path, extravars: dict, run_dir: Path
) -> HopError:
    """What to say after an interrupted run: for an app, ask its hosts (and clean up)."""
    code = interrupt.exit_code(result.signal)
    app = extravars.get("hop3_app_name")
    lines = [f"{result.verb} was interrupted ({result.signal}); ansible-playbook was stopped."]
    if playbook in RECOVERED_PLAYBOOKS and isinstance(app, str) and app:
        lines += recovery_lines(app, result, inventory, run_dir)
    return HopError("\n".join(lines), hint=f"The run's files are in {run_dir}.", exit_code=code)


def recovery_lines(app: str, result: RunResult, inventory: Path, run_dir: Path) -> list[str]:
    """Run app-recover on the hosts of the interrupted run; one line per host."""
    try:
        recovered = run_playbook(
            "app-recover",
            inventory=inventory,
            limit=result.target,
            verb=f"{result.verb} (recovery)",
            extravars={"hop3_app_name": app, "hop3_app_recover_run": run_dir.name},
            quiet=True,
            record=False,
        )
    except HopError as exc:
        return [f"The state of '{app}' could not be read afterwards: {exc.message}"]
    lines = [recovery_line(app, host, report, result.started)
             for host, report in recovered.reports.items()]  # fmt: skip
    lines += [f"{f.host}: the state of '{app}' could not be read: {f.message}"
              for f in recovered.failures]  # fmt: skip
    return lines


def recovery_line(app: str, host: str, report: dict, started: str) -> str:
    """One host's truth after an interrupted run, from the app-recover report
    (``started``: when the run began, ISO 8601 UTC like the releases' times)."""
    if not report.get("exists"):
        return f"{host}: app '{app}' does not exist there (nothing serves)."
    current = report.get("current")
    removed = [r for r in report.get("removed") or [] if r != current]
    stopped = report.get("stopped") or []
    if not current:
        text = f"{host}: interrupted before the switch: no release of '{app}' serves"
    elif str(report.get("current_time") or "") >= started:
        text = f"{host}: interrupted after the switch: {current} (the new release) is live"
    else:
        text = f"{host}: interrupted before the switch: {current} still serves"
    if removed:
        text += f"; the partial release {', '.join(removed)} was removed"
    if stopped:
        text += f"; {len(stopped)} instance(s) it had started were stopped"
    return text + "."


def changes_state(playbook: str, verb: str, extravars: dict) -> bool:
    """Whether a run changes hosts, and so goes to the audit log."""
    if playbook not in AUDITED_PLAYBOOKS or verb not in AUDITED_VERBS:
        return False
    actions = [v for k, v in extravars.items() if k.startswith("hop3_") and k.endswith("_action")]
    return not any(action in READ_ONLY_ACTIONS for action in actions)


def audited_app(extravars: dict) -> str | None:
    for name in _APP_VARS:
        if isinstance(extravars.get(name), str) and extravars[name]:
            return extravars[name]
    return None


def record_failures(result: RunResult, audit: dict, inventory: Path) -> None:
    """Record "failed" in the audit log of the hosts where the run failed.

    Those hosts left the run before its final play (audit-record.yml), so it
    runs once more for them alone: only failed runs pay for this. Unreachable
    hosts cannot be written to.
    """
    errors = {
        f.host: auditlog.first_line(f"{f.task}: {f.message}") or "failed"
        for f in result.failures
        if not f.unreachable and f.host in result.stats
    }
    if errors:
        record_afterwards(result, audit, inventory, "failed", errors)


def record_interrupted(result: RunResult, audit: dict, inventory: Path) -> None:
    """Record "interrupted" in the audit log of the run's hosts: the signal
    stopped the run before its final play (audit-record.yml)."""
    hosts = [h for h, s in result.stats.items() if not s.unreachable] or result.target.split(",")
    record_afterwards(result, audit, inventory, "interrupted",
                      dict.fromkeys(hosts, f"interrupted by {result.signal}"))  # fmt: skip


def record_afterwards(
    result: RunResult, audit: dict, inventory: Path, outcome: str, errors: dict[str, str]
) -> None:
    """Run audit-record once more for the hosts in ``errors`` (host → reason),
    which left the run before its final play; only such runs pay for this."""
    try:
        recorded = run_playbook(
            "audit-record",
            inventory=inventory,
            limit=",".join(errors),
            verb=f"{result.verb} (audit)",
            extravars={
                "hop3_audit": audit,
                "hop3_auditlog_result": outcome,
                "hop3_auditlog_errors": errors,
            },
            quiet=True,
            record=False,
        )
    except HopError as exc:
        recorded = None
        detail = exc.message
    if recorded is None or not recorded.ok:
        if recorded is not None:
            detail = "; ".join(f"{f.host}: {f.message}" for f in recorded.failures)
        print(f"Warning: the {outcome} run could not be written to the audit log ({detail}).",
              file=sys.stderr)  # fmt: skip


def _run_ansible(**kwargs: Any) -> Any:
    try:
        return ansible_runner.run(**kwargs)
    except AnsibleRunnerException as exc:
        raise HopError(
            f"ansible-runner could not start the playbook: {exc}",
            hint=f"The run's files are in {kwargs['private_data_dir']}.",
        ) from exc


def _event_handler(
    collector: EventCollector, display: Display, errors: list[Exception]
) -> Callable[[dict], bool]:
    def handle(event: dict) -> bool:
        # An exception here would escape from inside ansible-runner's read loop and
        # could leave ansible-playbook running: keep it until the run is over.
        try:
            collector.handle(event)
            if event.get("event") == "playbook_on_task_start":
                display.task_started(collector.current_task)
            display.output(event.get("stdout") or "")
            display.update(collector.stats)
        except Exception as exc:
            errors.append(exc)
        return True  # let ansible-runner keep the event under artifacts/

    return handle


def _crash_failure(collector: EventCollector, status: str, rc: int, run_dir: Path) -> HostFailure:
    """Ansible ended in error without blaming a host (a crash, a timeout, a bad include)."""
    text = collector.error_text() or f"ansible-playbook ended with status {status} (rc={rc})"
    return HostFailure(
        host="(ansible)",
        task=collector.current_task or "?",
        message=text,
        hint=generic_hint(run_dir),
    )


# ---------------------------------------------------------------------------
# Summary for humans


def format_failure_summary(result: RunResult) -> str:
    if result.status == "canceled":
        return f"{result.verb} was canceled; the run's files are in {result.run_dir}."
    if result.ok:
        return ""
    hosts = len(result.stats) or len(result.failures)
    lines = [f"{result.verb} failed on {len(result.failures)} of {hosts} host(s):"]
    for failure in result.failures:
        what = "unreachable" if failure.unreachable else "failed"
        lines.append(f"✗ {failure.host} {what} at task '{failure.task}'")
        lines.extend(f"    {line}" for line in failure.message.splitlines())
        if failure.output_tail and failure.output_tail.strip() != failure.message.strip():
            lines.append("    output (last lines):")
            lines.extend(f"    │ {line}" for line in failure.output_tail.splitlines())
        if failure.hint:
            lines.append(f"    hint: {failure.hint}")
    return "\n".join(lines)
