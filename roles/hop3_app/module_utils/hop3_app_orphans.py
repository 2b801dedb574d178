"""What a dead run of an app leaves half-done, and its removal: instances
that state.json does not record, releases built but never switched to,
release directories state.json does not know (and build commands still
working in them). Only ever called by the holder of the app's lock
(module_utils/hop3_app_lock.py): the recovery after an interrupted run, and
a run that took over a stale lock."""

import os
import re
import shutil
import signal

from ansible.module_utils.hop3_app_host import (
    AppPaths,
    load_state,
    release_ports,
    save_state,
    systemctl,
)

_UNIT_RE = re.compile(r"^hop3-(?P<app>.+)-(?P<process>[^-@]+)@(?P<instance>.+)\.service$")


def app_units(app):
    """The instance units (hop3-APP-PROCESS@ID.service) systemd knows for the app."""
    proc = systemctl("list-units", "--all", "--plain", "--no-legend", "--type=service",
                     "hop3-%s-*@*.service" % app, check=False)  # fmt: skip
    units = []
    for line in proc.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        match = _UNIT_RE.match(name)
        if match and match.group("app") == app:
            units.append((name, match.group("process"), match.group("instance")))
    return units


def kill_processes_in(folder):
    """SIGKILL the processes working in ``folder`` (a build command of a dead run)."""
    folder = os.path.realpath(folder)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink("/proc/%s/cwd" % entry)
        except OSError:
            continue
        if cwd == folder or cwd.startswith(folder + "/"):
            try:
                os.kill(int(entry), signal.SIGKILL)
            except OSError:
                pass


def clean_orphans(paths, state):
    """Stop instances state.json does not record, drop releases never switched
    to, remove release directories it does not know. Return what was removed."""
    recorded = {(process, i["id"]) for process, group in (state.get("instances") or {}).items()
                for i in group}  # fmt: skip
    stopped = []
    for unit, process, instance in app_units(paths.app):
        if (process, instance) not in recorded:
            systemctl("disable", "--now", unit, check=False)
            systemctl("reset-failed", unit, check=False)
            stopped.append(unit)
            number = instance.rsplit("-", 1)[-1]
            if process == "web" and number.isdigit():
                release_ports(paths.app, [int(number)])
    in_use = {i["release"] for group in (state.get("instances") or {}).values() for i in group}
    removed = []
    for release in list(state.get("releases") or []):
        if release.get("status") == "built" and release["id"] != state.get("current") and \
                release["id"] not in in_use:  # fmt: skip
            state["releases"].remove(release)
            removed.append(release["id"])
    known = {r["id"] for r in state.get("releases") or []}
    if os.path.isdir(paths.releases):
        for name in sorted(os.listdir(paths.releases)):
            if name not in known:
                kill_processes_in(paths.release(name))
                shutil.rmtree(paths.release(name), ignore_errors=True)
                if name not in removed:
                    removed.append(name)
    return stopped, removed


def clean_app(app):
    """clean_orphans for ``app`` if it exists; return what was removed."""
    paths = AppPaths(app)
    if not os.path.exists(paths.state):
        return {"stopped": [], "removed": []}
    state = load_state(paths)
    stopped, removed = clean_orphans(paths, state)
    if removed:
        save_state(paths, state)
    return {"stopped": stopped, "removed": removed}
