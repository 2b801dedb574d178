#!/usr/bin/python3
"""Remove a Hop3 app from a host: processes, units, ports, files, user."""

DOCUMENTATION = r"""
module: hop3_app_destroy
short_description: Remove every trace of a Hop3 app from a host
description:
  - Stops and removes the app's systemd units and timers, frees its ports,
    deletes its directory, its uploads and its unix user. The vhost is
    removed by role hop3_proxy (tasks/remove.yml).
options:
  app: {description: App name., type: str, required: true}
  uploads_dir: {description: Where uploaded sources are kept., type: str, default: /srv/hop3/uploads}
  lock:
    description:
      - The app's lock (module_utils/hop3_app_lock.py), checked with the
        C(token) of an earlier task of the run (or taken with C(operation));
        released at the end with C(release).
    type: dict
author: Hop3
"""

import os
import pwd
import re
import shutil
import subprocess

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hop3_app_lock import LOCK_OPTION, run_locked
from ansible.module_utils.hop3_app_host import (
    PORTS_FILE,
    UNIT_DIR,
    AppPaths,
    ports_registry,
    systemctl,
    user_exists,
)


def main():
    module = AnsibleModule(
        argument_spec={
            "app": {"type": "str", "required": True},
            "uploads_dir": {"type": "str", "default": "/srv/hop3/uploads"},
            "lock": LOCK_OPTION,
        },
    )
    paths = AppPaths(module.params["app"])
    run_locked(module, paths.app, lambda lock: destroy(module, paths, lock))


def destroy(module, paths, lock):
    changed = False
    prefix = "hop3-%s-" % paths.app
    units = [n for n in os.listdir(UNIT_DIR) if n.startswith(prefix)]
    live = systemctl("list-units", "--all", "--no-legend", "--plain", prefix + "*",
                     check=False).stdout.split("\n")  # fmt: skip
    for name in [line.split()[0] for line in live if line.strip()]:
        systemctl("disable", "--now", name, check=False)
        changed = True
    for name in units:
        if not name.endswith("@.service"):
            systemctl("disable", "--now", name, check=False)
        os.unlink(os.path.join(UNIT_DIR, name))
        changed = True
    if changed:
        systemctl("daemon-reload")
        systemctl("reset-failed", prefix + "*", check=False)
    if os.path.exists(PORTS_FILE):
        with ports_registry() as ports:
            for port in [p for p, owner in ports.items() if owner == paths.app]:
                del ports[port]
                changed = True
    if os.path.isdir(paths.root):
        shutil.rmtree(paths.root)
        changed = True
    uploads = module.params["uploads_dir"]
    if os.path.isdir(uploads):
        for name in os.listdir(uploads):
            if re.fullmatch(re.escape(paths.app) + r"-[0-9a-f]+\.tar\.gz", name):
                os.unlink(os.path.join(uploads, name))
                changed = True
    if user_exists(paths.app) and pwd.getpwnam(paths.app).pw_dir == paths.root:
        subprocess.run(["pkill", "-KILL", "-u", paths.app], capture_output=True)
        proc = subprocess.run(["userdel", paths.app], capture_output=True, text=True)
        if proc.returncode != 0:
            lock.finish(ok=False)
            module.fail_json(msg="Removing user %s failed: %s" % (paths.app, proc.stderr))
        changed = True
    lock.finish(ok=True)
    module.exit_json(changed=changed, lock=lock.report)


if __name__ == "__main__":
    main()
