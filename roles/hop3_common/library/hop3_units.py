#!/usr/bin/python3
"""Enable and start (or restart, reload) systemd units in one module call; when a
unit fails, return its status and last journal lines with the error."""

import subprocess
import time

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: hop3_units
short_description: Enable and start systemd units; explain a unit that fails
description:
  - Reads the state of every unit of O(units) with one C(systemctl show), then
    enables the disabled ones (O(enabled)) and starts the inactive ones
    (O(state)=started), or restarts or reloads them all. A unit whose start
    conditions do not hold (C(systemd-timesyncd) in a container) is left as
    systemd decides and does not count as a change.
  - When a unit fails to start, fails with its C(systemctl status) and its last
    O(journal_lines) journal lines (in C(output_tail), which C(hop) prints),
    so the error explains itself even when the host is gone afterwards.
options:
  units: {description: Unit names (with their suffix)., type: list, elements: str, required: true}
  state:
    description: What to do with the units.
    type: str
    default: started
    choices: [started, restarted, reloaded]
  enabled: {description: Enable the units at boot., type: bool, default: true}
  daemon_reload: {description: Run C(systemctl daemon-reload) first., type: bool, default: false}
  journal_lines: {description: Journal lines returned for a failed unit., type: int, default: 30}
  settle_seconds:
    description: >-
      How long a unit may stay C(activating) after its start job returned
      (units of Type=simple that fail right after they started) before it
      counts as started.
    type: float
    default: 0
author: Hop3
"""

TRANSIENT = ("activating", "deactivating", "reloading")
PROPERTIES = (
    "Id",
    "LoadState",
    "ActiveState",
    "SubState",
    "UnitFileState",
    "ConditionResult",
    "ConditionTimestampMonotonic",
)


def systemctl(*args):
    return subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)


def parse_show(text):
    """`systemctl show` output of several units: one dict per unit, in order."""
    units, current = [], {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                units.append(current)
                current = {}
            continue
        key, _, value = line.partition("=")
        current[key] = value
    if current:
        units.append(current)
    return units


def show(units):
    for _ in range(2):  # a busy PID 1 may not answer a call in time: ask once more
        proc = systemctl("show", "--property=" + ",".join(PROPERTIES), "--", *units)
        states = parse_show(proc.stdout)
        if proc.returncode == 0 and len(states) == len(units):
            return dict(zip(units, states, strict=True))
    raise UnitError(f"systemctl show failed: {proc.stderr.strip() or 'no output'}")


def daemon_reload():
    for _ in range(2):
        proc = systemctl("daemon-reload")
        if proc.returncode == 0:
            return
    raise UnitError(f"systemctl daemon-reload failed: {proc.stderr.strip() or 'no output'}")


def enable(unit):
    """Enable UNIT. A failed call is judged by the unit file's state (the call
    may time out while PID 1 does the job) and made once more."""
    for _ in range(2):
        proc = systemctl("enable", "--", unit)
        if proc.returncode == 0 or not needs_enable(show([unit])[unit]):
            return
    raise UnitError(f"cannot enable {unit}: {proc.stderr.strip()}", unit)


class UnitError(RuntimeError):
    def __init__(self, msg, unit=None, output=""):
        super().__init__(msg)
        self.unit, self.output = unit, output


def needs_enable(state):
    return state.get("UnitFileState") in ("disabled", "masked-runtime", "linked")


def skipped_by_condition(state):
    """systemd checked the unit's conditions and they did not hold. A unit never
    started also says ConditionResult=no, but has no condition timestamp."""
    checked = state.get("ConditionTimestampMonotonic", "0") not in ("", "0")
    return checked and state.get("ConditionResult") == "no"


def diagnosis(unit, lines):
    """The unit's status and its last journal lines, as a user would ask for them."""
    status = systemctl("status", "--no-pager", "--full", "--lines=0", "--", unit)
    journal = subprocess.run(
        ["journalctl", "--no-pager", "--output=short-precise", f"--lines={lines}", "--unit", unit],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return status.stdout.strip(), journal.stdout.strip() or journal.stderr.strip()


def summary_of(status):
    """The "Active:" line of `systemctl status`, and the lines of failed processes."""
    keep = [line.strip() for line in status.splitlines()
            if line.strip().startswith(("Active:", "Process:", "Main PID:"))
            and ("Active:" in line or "status=0/SUCCESS" not in line)]  # fmt: skip
    return "; ".join(keep)


def fail_unit(unit, verb, said, lines):
    status, journal = diagnosis(unit, lines)
    summary = summary_of(status)
    msg = f"{unit} failed to {verb}" + (f": {said.rstrip('.')}" if said else "") + "."
    if summary:
        msg += f" {summary}."
    raise UnitError(msg, unit, f"$ systemctl status {unit}\n{status}\n"
                               f"$ journalctl -u {unit} -n {lines}\n{journal}")  # fmt: skip


def settled(unit, seconds):
    """The unit's ActiveState and Result once it has left the transient states
    (activating, deactivating, reloading) and no job of it is queued, or when
    the time is up. A unit whose start job waits in the queue is "inactive"."""
    deadline = time.monotonic() + seconds
    while True:
        proc = systemctl("show", "--property=ActiveState,Result,Job", "--", unit)
        props = dict(line.partition("=")[::2] for line in proc.stdout.splitlines())
        state = props.get("ActiveState", "")
        busy = proc.returncode != 0 or state in TRANSIENT or props.get("Job", "") != ""
        if not busy or time.monotonic() >= deadline:
            return state, props.get("Result", "")
        time.sleep(0.5)


def act(unit, verb, state, params):
    """Start, restart or reload one unit; raise UnitError (with its journal) on failure.

    systemctl can fail without the unit failing: on a busy host its D-Bus call
    to PID 1 times out (25 s) while the job goes on. So a failed call is judged
    by the unit's own state once it settles, and a unit that did not fail gets
    the call once more."""
    if verb == "reload":
        proc = systemctl(verb, "--", unit)
        if proc.returncode != 0:
            fail_unit(unit, verb, proc.stderr.strip(), params["journal_lines"])
        return True
    said = ""
    for _ in range(2):
        proc = systemctl(verb, "--", unit)
        after, result = settled(unit, params["settle_seconds"] if proc.returncode == 0 else 90)
        if after == "active":
            return True
        if after in ("inactive", "") and skipped_by_condition(show([unit])[unit]):
            return not skipped_by_condition(state)
        said = proc.stderr.strip().splitlines()[0] if proc.stderr.strip() else f"it is {after}"
        if result not in ("", "success"):
            break  # the unit itself failed: another try would only repeat it
    fail_unit(unit, verb, said, params["journal_lines"])
    return True


def converge(params, check_mode):
    units = params["units"]
    if params["daemon_reload"] and not check_mode:
        daemon_reload()
    states = show(units)
    enabled, acted = [], []
    for unit in units:
        state = states[unit]
        if state.get("LoadState") != "loaded":
            fail_unit(unit, "load", f"its unit file is {state.get('LoadState')}",
                      params["journal_lines"])  # fmt: skip
        if params["enabled"] and needs_enable(state):
            enabled.append(unit)
            if not check_mode:
                enable(unit)
        verb = {"started": "start", "restarted": "restart", "reloaded": "reload"}[params["state"]]
        active = state.get("ActiveState") == "active"
        if verb == "start" and (active or skipped_by_condition(state)):
            continue
        if check_mode or act(unit, verb, state, params):
            acted.append(unit)
    return enabled, acted


def main():
    module = AnsibleModule(
        argument_spec={
            "units": {"type": "list", "elements": "str", "required": True},
            "state": {
                "type": "str",
                "default": "started",
                "choices": ["started", "restarted", "reloaded"],
            },
            "enabled": {"type": "bool", "default": True},
            "daemon_reload": {"type": "bool", "default": False},
            "journal_lines": {"type": "int", "default": 30},
            "settle_seconds": {"type": "float", "default": 0},
        },
        supports_check_mode=True,
    )
    try:
        enabled, acted = converge(module.params, module.check_mode)
    except UnitError as err:
        module.fail_json(msg=str(err), unit=err.unit, output_tail=err.output)
    module.exit_json(changed=bool(enabled or acted), enabled=enabled, acted=acted)


if __name__ == "__main__":
    main()
