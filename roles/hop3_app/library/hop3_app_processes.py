#!/usr/bin/python3
"""Make an app's running processes match what is asked, without downtime."""

DOCUMENTATION = r"""
module: hop3_app_processes
short_description: Run a Hop3 app's processes with zero-downtime swaps
description:
  - Starts the instances a release needs beside the running ones, health-checks
    the web instances, forwards the app's route port to them (no nginx
    reload; a PHP app's upstream is switched by a reload), then stops the old
    instances. A failure before the old instances are
    stopped (health check, a process that exits, nginx down or refusing the
    upstream, cron timers) stops and disables the new instances, puts the
    changed files (units, upstream) back and leaves state.json as it was:
    the old ones keep serving. A failed first deploy removes the app.
  - Keeps instances that already run the wanted release with the current
    config; a second run with nothing to do reports changed=false.
options:
  app: {description: App name., type: str, required: true}
  release: {description: "Release to run: an id, C(previous), or by default the current one.", type: str}
  scale: {description: Process counts to change (others keep theirs)., type: dict}
  state:
    description: started (the default), stopped, or restarted (new instances even if unchanged).
    type: str
    choices: [started, stopped, restarted]
    default: started
  remove_failed: {description: Remove the release if it fails its health check., type: bool}
  keep_releases: {description: How many releases to keep on disk., type: int, default: 5}
  upload:
    description: The release's uploaded source, removed with the app when its first deploy fails.
    type: path
  lock:
    description:
      - The app's lock (module_utils/hop3_app_lock.py), taken before any change
        with C(operation), or checked with the C(token) of an earlier task of
        the run; released at the end with C(release).
    type: dict
  finish:
    description:
      - When nothing follows this call on the host, append the audit entry
        (C(audit)) after a successful change (module_utils/hop3_app_finish.py).
    type: dict
author: Hop3
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hop3_app_finish import FINISH_OPTION, finish_run
from ansible.module_utils.hop3_app_host import AppPaths
from ansible.module_utils.hop3_app_lock import LOCK_OPTION, run_locked
from ansible.module_utils.hop3_app_swap import run_swap


def main():
    module = AnsibleModule(
        argument_spec={
            "app": {"type": "str", "required": True},
            "release": {"type": "str"},
            "scale": {"type": "dict"},
            "state": {"type": "str", "default": "started",
                      "choices": ["started", "stopped", "restarted"]},
            "remove_failed": {"type": "bool", "default": False},
            "keep_releases": {"type": "int", "default": 5},
            "upload": {"type": "path"},
            "lock": LOCK_OPTION,
            "finish": FINISH_OPTION,
        },
    )  # fmt: skip
    paths = AppPaths(module.params["app"])
    run_locked(module, paths.app, lambda lock: reconcile(module, paths, lock))


def reconcile(module, paths, lock):
    ok, result = run_swap(module.params, paths)
    if ok:
        result.update(finish_run(paths.root, module.params["finish"]))
    lock.finish(ok=ok)
    if not ok:
        module.fail_json(**result)
    module.exit_json(lock=lock.report, **result)


if __name__ == "__main__":
    main()
