#!/usr/bin/python3
"""Take a Hop3 app's lock before a run's first change, when no module of the
role makes that change (hop destroy removes the vhost first)."""

DOCUMENTATION = r"""
module: hop3_app_lock
short_description: Take a Hop3 app's lock
description:
  - Takes the app's lock (module_utils/hop3_app_lock.py) as C(lock.operation),
    waiting up to C(lock.wait) seconds for another run to release it, and
    returns its token in C(lock). A later module of the run releases it.
  - Never reports a change (the lock is not part of the host's state).
options:
  app: {description: App name., type: str, required: true}
  lock: {description: "As the other hop3_app modules' C(lock) option.", type: dict, required: true}
author: Hop3
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hop3_app_lock import LOCK_OPTION, LockBusy, LockLost, ModuleLock


def main():
    module = AnsibleModule(
        argument_spec={"app": {"type": "str", "required": True},
                       "lock": dict(LOCK_OPTION, required=True)},
    )  # fmt: skip
    lock = ModuleLock(module.params["app"], module.params["lock"], avoid=module.no_log_values)
    try:
        lock.take()
    except (LockBusy, LockLost) as err:
        module.fail_json(msg=str(err), lock_busy=True)
    lock.finish(ok=True)
    module.exit_json(changed=False, lock=lock.report)


if __name__ == "__main__":
    main()
