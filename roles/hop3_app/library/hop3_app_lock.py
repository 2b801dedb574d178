#!/usr/bin/python3
"""A Hop3 app's lock: take it before a run's first change (when no module of
the role makes that change), show or remove it (`hop unlock`), or recover the
app after an interrupted run."""

DOCUMENTATION = r"""
module: hop3_app_lock
short_description: Take, show, remove a Hop3 app's lock; recover after an interrupted run
description:
  - C(take) takes the app's lock (module_utils/hop3_app_lock.py) as
    C(lock.operation), waiting up to C(lock.wait) seconds for another run to
    release it, and returns its token in C(lock). A later module of the run
    releases it. Never reports a change (the lock is not part of the host's state).
  - C(show) returns the lock's holder (without its token), or none.
  - C(remove) removes the lock whoever holds it (`hop unlock`) and returns the
    holder it removed; changed when there was one.
  - C(recover) runs after an interrupted run (C(run), its name): it takes the
    lock (also from that run when no process of it renews it any more), stops
    the instances that state.json does not record, removes the releases that
    were built but never switched to and the release directories that
    state.json does not know, releases the lock and reports which release
    serves.
options:
  app: {description: App name., type: str, required: true}
  action:
    description: What to do.
    type: str
    choices: [take, show, remove, recover]
    default: take
  run:
    description: "C(recover): the interrupted run whose lock may be taken over."
    type: str
    default: ""
  lock:
    description: "As the other hop3_app modules' C(lock) option (C(take), C(recover))."
    type: dict
author: Hop3
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hop3_app_host import AppPaths, load_state, save_state
from ansible.module_utils.hop3_app_lock import (
    LOCK_OPTION,
    AppLock,
    LockBusy,
    LockLost,
    ModuleLock,
)
from ansible.module_utils.hop3_app_orphans import clean_orphans

def public(record):
    """A lock record without its token (whoever reads it must not be able to use it)."""
    if not record:
        return None
    return {k: v for k, v in record.items() if k != "token"}


def recover(module, paths):
    options = dict(module.params["lock"] or {}, operation="recovery")
    lock = AppLock(paths.app)
    try:
        grant = lock.acquire(options["operation"], options.get("wait", 120),
                             options.get("timeout", 45), options.get("controller", ""),
                             options.get("run", ""), steal_run=module.params["run"])  # fmt: skip
    except LockBusy as err:
        module.fail_json(msg=str(err), lock_busy=True)
    try:
        if not os.path.exists(paths.state):
            return {"changed": False, "exists": False, "stopped": [], "removed": []}
        state = load_state(paths)
        stopped, removed = clean_orphans(paths, state)
        if removed:
            save_state(paths, state)
        current = state.get("current")
        current_release = next((r for r in state["releases"] if r["id"] == current), {})
        return {
            "changed": bool(stopped or removed),
            "exists": True,
            "current": current,
            "current_time": current_release.get("time"),
            "stopped": stopped,
            "removed": removed,
            "releases": [r["id"] for r in state["releases"]],
            "instances": {
                p: [i["id"] for i in g] for p, g in (state.get("instances") or {}).items()
            },
            "took_over": public(grant["took_over"]),
        }
    finally:
        lock.release(grant["token"])


def main():
    module = AnsibleModule(
        argument_spec={
            "app": {"type": "str", "required": True},
            "action": {"type": "str", "default": "take",
                       "choices": ["take", "show", "remove", "recover"]},
            "run": {"type": "str", "default": ""},
            "lock": LOCK_OPTION,
        },
        supports_check_mode=False,
    )  # fmt: skip
    paths = AppPaths(module.params["app"])
    action = module.params["action"]
    if action == "show":
        module.exit_json(changed=False, holder=public(AppLock(paths.app).holder()))
    if action == "remove":
        removed = AppLock(paths.app).remove()
        module.exit_json(changed=removed is not None, holder=public(removed))
    if action == "recover":
        module.exit_json(**recover(module, paths))
    if not module.params["lock"]:
        module.fail_json(msg="action=take needs the lock option.")
    lock = ModuleLock(paths.app, module.params["lock"], avoid=module.no_log_values)
    try:
        lock.take()
    except (LockBusy, LockLost) as err:
        module.fail_json(msg=str(err), lock_busy=True)
    lock.finish(ok=True)
    module.exit_json(changed=False, lock=lock.report)


if __name__ == "__main__":
    main()
