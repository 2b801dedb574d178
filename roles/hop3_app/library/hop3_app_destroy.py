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
import re

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hop3_app_lock import LOCK_OPTION, run_locked
from ansible.module_utils.hop3_app_host import AppPaths, StepFailed, remove_app


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
    uploads = module.params["uploads_dir"]
    names = os.listdir(uploads) if os.path.isdir(uploads) else []
    pattern = re.escape(paths.app) + r"-[0-9a-f]+\.tar\.gz"
    mine = [os.path.join(uploads, n) for n in names if re.fullmatch(pattern, n)]
    try:
        changed = remove_app(paths, mine)
    except StepFailed as err:
        lock.finish(ok=False)
        module.fail_json(msg=err.message)
    lock.finish(ok=True)
    module.exit_json(changed=changed, lock=lock.report)


if __name__ == "__main__":
    main()
