#!/usr/bin/python
# Copyright: Hop3 contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Read-only host report for `hop status`, gathered in one module call."""

# Ansible modules put their documentation before the imports.
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hop3_host_report
short_description: Report OS, uptime, load, memory, disk, Hop3 version and services
description:
  - Reads /etc/os-release, /proc, statvfs(2), /etc/hop3/platform.json and
    C(systemctl show) in a single invocation. Changes nothing; needs no root.
  - Uptime is the host's, or inside a container the time since its init
    process started (a container shares the kernel's /proc/uptime).
options:
  services:
    description:
      - systemd units to report. The report names them without a C(.service)
        suffix.
      - Each gets one of V(active), V(inactive), V(failed), V(activating),
        V(deactivating), V(reloading), V(not-installed), or V(unknown) when
          systemctl cannot tell.
    type: list
    elements: str
    default: []
  platform_file:
    description: JSON file that C(hop setup) writes, holding C({"version": ...}).
    type: path
    default: /etc/hop3/platform.json
  data_dir:
    description: Hop3's data directory; its disk is reported when it is not the root file system's.
    type: path
    default: /srv
author:
  - Hop3 contributors
"""

EXAMPLES = r"""
- name: Report on the host
  hop3_host_report:
    services: [nginx, ssh]
  register: hop3_status_result
"""

RETURN = r"""
report:
  description: The host report.
  returned: always
  type: dict
  sample:
    os: Debian GNU/Linux 12 (bookworm)
    kernel: 6.1.0-18-amd64
    uptime_s: 3600
    load: [0.05, 0.1, 0.02]
    memory_total_mb: 3914
    memory_available_mb: 3100
    disk_total_gb: 39.2
    disk_free_gb: 30.1
    srv_disk_total_gb: null
    srv_disk_free_gb: null
    hop3_version: 0.1.0
    services: {nginx: active, ssh: active}
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule

_GB = 1024**3


def _os_name() -> str | None:
    try:
        with open("/etc/os-release", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.strip().partition("=")
                if key == "PRETTY_NAME":
                    return value.strip().strip("\"'")
    except OSError:
        pass
    return None


def _in_container() -> bool:
    return os.path.exists("/run/systemd/container") or os.path.exists("/.dockerenv")


def _uptime_s() -> int | None:
    try:
        with open("/proc/uptime", encoding="ascii") as handle:
            uptime = float(handle.read().split()[0])
        if _in_container():
            # Field 22 of /proc/1/stat: start time of PID 1 after boot, in clock ticks.
            with open("/proc/1/stat", encoding="ascii") as handle:
                fields = handle.read().rpartition(")")[2].split()
            uptime -= int(fields[19]) / os.sysconf("SC_CLK_TCK")
        return max(0, int(uptime))
    except (OSError, ValueError, IndexError):
        return None


def _memory_mb() -> tuple[int | None, int | None]:
    values = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                key, _, rest = line.partition(":")
                values[key] = int(rest.split()[0])  # kB
    except (OSError, ValueError, IndexError):
        return None, None
    total = values.get("MemTotal")
    available = values.get("MemAvailable")
    return (
        total // 1024 if total is not None else None,
        available // 1024 if available is not None else None,
    )


def _disk_gb(path: str) -> tuple[float, float]:
    stats = os.statvfs(path)
    return (
        round(stats.f_blocks * stats.f_frsize / _GB, 1),
        round(stats.f_bavail * stats.f_frsize / _GB, 1),
    )


def _separate_disk(path: str) -> bool:
    try:
        return os.stat(path).st_dev != os.stat("/").st_dev
    except OSError:
        return False


def _hop3_version(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            version = json.load(handle).get("version")
    except (OSError, ValueError, AttributeError):
        return None
    return str(version) if version is not None else None


def _services(module: AnsibleModule, names: list[str]) -> dict[str, str]:
    if not names:
        return {}
    units = [name if "." in name else f"{name}.service" for name in names]
    systemctl = module.get_bin_path("systemctl")
    states = {}
    if systemctl:
        rc, out, _err = module.run_command(
            [systemctl, "show", "--property=Id,LoadState,ActiveState", "--", *units]
        )
        if rc == 0:
            # One block per unit, in the order asked, separated by blank lines.
            blocks = [b for b in out.strip().split("\n\n") if b.strip()]
            for unit, block in zip(units, blocks, strict=False):
                props = dict(line.partition("=")[::2] for line in block.splitlines())
                states[unit] = props
    report = {}
    for name, unit in zip(names, units, strict=True):
        props = states.get(unit, {})
        if props.get("LoadState") != "loaded":
            state = "not-installed" if props else "unknown"
        else:
            state = props.get("ActiveState") or "unknown"
        report[name.removesuffix(".service")] = state
    return report


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "services": {"type": "list", "elements": "str", "default": []},
            "platform_file": {"type": "path", "default": "/etc/hop3/platform.json"},
            "data_dir": {"type": "path", "default": "/srv"},
        },
        supports_check_mode=True,
    )
    params = module.params
    memory_total, memory_available = _memory_mb()
    disk_total, disk_free = _disk_gb("/")
    srv_total = srv_free = None
    if _separate_disk(params["data_dir"]):
        srv_total, srv_free = _disk_gb(params["data_dir"])
    report = {
        "os": _os_name(),
        "kernel": os.uname().release,
        "uptime_s": _uptime_s(),
        "load": [round(x, 2) for x in os.getloadavg()],
        "memory_total_mb": memory_total,
        "memory_available_mb": memory_available,
        "disk_total_gb": disk_total,
        "disk_free_gb": disk_free,
        "srv_disk_total_gb": srv_total,
        "srv_disk_free_gb": srv_free,
        "hop3_version": _hop3_version(params["platform_file"]),
        "services": _services(module, params["services"]),
    }
    module.exit_json(changed=False, report=report)


if __name__ == "__main__":
    main()
