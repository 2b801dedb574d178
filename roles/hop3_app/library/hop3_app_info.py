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

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hop3_app_host import (
    APPS_ROOT,
    AppPaths,
    load_env,
    load_state,
    proxy_settings,
    systemctl,
)


def unit_states(app):
    out = systemctl("list-units", "--all", "--no-legend", "--plain", "hop3-%s-*" % app,
                    check=False).stdout  # fmt: skip
    states = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4:
            states[parts[0]] = parts[3]
    return states


def summary(app):
    paths = AppPaths(app)
    state = load_state(paths)
    proxy = proxy_settings(state)
    units = unit_states(app)
    running = sum(1 for name, sub in units.items() if sub == "running" and "@" in name)
    wanted = sum(len(v) for v in state.get("instances", {}).values())
    if state.get("stopped"):
        status = "stopped"
    elif wanted == 0 and not proxy["static_root"]:
        status = "idle"
    else:
        status = "running" if running >= wanted else "degraded"
    return {
        "app": app,
        "status": status,
        "release": state.get("current"),
        "scale": state.get("scale", {}),
        "instances_running": running,
        "instances_wanted": wanted,
        "domains": proxy["domains"],
    }


def detail(app, with_config):
    paths = AppPaths(app)
    state = load_state(paths)
    units = unit_states(app)
    processes = []
    for process, instances in sorted(state.get("instances", {}).items()):
        for instance in instances:
            unit = "hop3-%s-%s@%s.service" % (app, process, instance["id"])
            processes.append({
                "process": process,
                "instance": instance["id"],
                "release": instance["release"],
                "port": instance["number"] if process == "web" else None,
                "state": units.get(unit, "inactive"),
            })  # fmt: skip
    report = summary(app)
    report["processes"] = processes
    report["releases"] = [
        {k: r.get(k) for k in ("id", "time", "rev", "digest", "status")}
        for r in state.get("releases", [])
    ]
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
    module.exit_json(changed=False, report={"apps": [summary(a) for a in apps]})


if __name__ == "__main__":
    main()
