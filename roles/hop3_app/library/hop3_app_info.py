#!/usr/bin/python3
"""Report Hop3 apps on a host (read-only): state, processes, releases, config."""

DOCUMENTATION = r"""
module: hop3_app_info
short_description: Report Hop3 apps on a host
description:
  - Without C(app), a summary of every app. With C(app), its processes (with
    their live systemd state), releases, domains and, if C(config) is true,
    its config values. Never changes anything.
options:
  app: {description: One app to describe in detail., type: str}
  config: {description: Include config values., type: bool, default: false}
author: Hop3
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hop3_app_host import (
    APPS_ROOT,
    AppPaths,
    load_env,
    load_state,
    proxy_settings,
    systemctl,
)
from ansible.module_utils import hop3_app_routes as routes
from ansible.module_utils.hop3_app_lock import AppLock
from ansible.module_utils.hop3_app_recover import recover_unit
from ansible.module_utils.hop3_app_status import (
    UNIT_PROPERTIES,
    app_status,
    instance_state,
    listening_ports,
    parse_show,
)

LOCK_TIMEOUT = 1800  # as hop3_app_lock_timeout's default: older records are stale


def read_listening():
    tables = []
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as handle:
                tables.append(handle.read())
        except OSError:
            pass
    return listening_ports(*tables)


def wanted_instances(app, state, listening):
    """The instances state.json wants, each with its live state. A web
    instance the app's route port does not reach (the kernel lost the rule:
    module_utils/hop3_app_routes.py) serves no request: it is "unrouted"."""
    instances = [
        (process, instance, "hop3-%s-%s@%s.service" % (app, process, instance["id"]))
        for process, group in sorted(state.get("instances", {}).items()) for instance in group
    ]  # fmt: skip
    units = {}
    if instances:
        names = [name for _, _, unit in instances for name in (unit, recover_unit(unit))]
        shown = systemctl("show", "-p", ",".join(UNIT_PROPERTIES), *names, check=False)
        units = parse_show(shown.stdout)
    routed = routes.loaded_ports(app) if state.get("route_port") else None
    found = []
    for process, instance, unit in instances:
        props = units.get(unit, {})
        port = instance["number"] if process == "web" else None
        live = instance_state(props, port, listening)
        if live == "running" and port is not None and routed is not None and port not in routed:
            live = "unrouted"
        found.append({
            "process": process,
            "instance": instance["id"],
            "release": instance["release"],
            "port": port,
            "unit": unit,
            "state": live,
            "result": props.get("Result") or None,
            "restarts": int(props.get("NRestarts") or 0),
            # Waiting to start it again after its crash loop (hop3-recover@).
            "retrying": units.get(recover_unit(unit), {}).get("ActiveState") == "activating",
        })  # fmt: skip
    return found


def busy_with(app):
    """The operation that holds the app's lock now (never its token), or None."""
    record = AppLock(app).holder()
    if record is None or AppLock.is_stale(record, time.time(), LOCK_TIMEOUT):
        return None
    return record.get("operation")


def release_row(release, state, report):
    """A release: whether it is the current one, and how many of its wanted
    instances run (a static site's current release serves when the app runs)."""
    row = {k: release.get(k) for k in ("id", "time", "rev", "digest", "status")}
    mine = [p for p in report["processes"] if p["release"] == release["id"]]
    row["current"] = release["id"] == state.get("current")
    row["instances_wanted"] = len(mine)
    row["instances_up"] = sum(1 for p in mine if p["state"] == "running")
    row["serving"] = row["instances_up"] > 0 or (
        row["current"] and not mine and report["status"] == "running")  # fmt: skip
    return row


def summary(app, listening, instances=None):
    paths = AppPaths(app)
    state = load_state(paths)
    proxy = proxy_settings(state)
    if instances is None:
        instances = wanted_instances(app, state, listening)
    states = [i["state"] for i in instances]
    busy = busy_with(app)
    status = app_status(stopped=state.get("stopped"), current=state.get("current"),
                        wanted=len(instances), states=states,
                        static=bool(proxy["static_root"]), busy=busy)  # fmt: skip
    return {
        "app": app,
        "status": status,
        "release": state.get("current"),
        "serving": sorted({i["release"] for i in instances if i["state"] == "running"}),
        "scale": state.get("scale", {}),
        "instances_up": states.count("running"),
        "instances_wanted": len(instances),
        "instances_failed": states.count("failed"),
        "busy": busy,
        "domains": proxy["domains"],
    }


def detail(app, with_config):
    paths = AppPaths(app)
    state = load_state(paths)
    processes = wanted_instances(app, state, read_listening())
    report = summary(app, None, processes)
    report["processes"] = processes
    report["releases"] = [release_row(r, state, report) for r in state.get("releases", [])]
    report["cron"] = [
        {"name": j["name"], "schedule": j["schedule"], "command": j["command"]}
        for r in state.get("releases", []) if r["id"] == state.get("current")
        for j in r["spec"].get("cron", [])
    ]  # fmt: skip
    current = [r for r in state.get("releases", []) if r["id"] == state.get("current")]
    spec = current[0].get("spec", {}) if current else {}
    report["version"] = spec.get("version")
    report["catalog"] = spec.get("catalog")
    report["declared_domains"] = spec.get("domains", [])
    if with_config:
        report["config"] = load_env(paths)
    return report


def main():
    module = AnsibleModule(
        argument_spec={
            "app": {"type": "str"},
            "config": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    app = module.params["app"]
    if app:
        if not os.path.exists(AppPaths(app).state):
            module.exit_json(changed=False, report={"app": app, "exists": False})
        report = detail(app, module.params["config"])
        report["exists"] = True
        module.exit_json(changed=False, report=report)
    apps = sorted(os.listdir(APPS_ROOT)) if os.path.isdir(APPS_ROOT) else []
    apps = [a for a in apps if os.path.exists(AppPaths(a).state)]
    listening = read_listening()
    module.exit_json(changed=False, report={"apps": [summary(a, listening) for a in apps]})


if __name__ == "__main__":
    main()
