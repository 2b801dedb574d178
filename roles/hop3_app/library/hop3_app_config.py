#!/usr/bin/python3
"""Change a Hop3 app's config variables and extra domains."""

DOCUMENTATION = r"""
module: hop3_app_config
short_description: Set and unset a Hop3 app's config and domains
description:
  - Config lives in the app's env file (JSON, mode 0600, owned by the app's
    user). Values are stored exactly as given.
  - Domains added or removed here are kept in the app's state.json and
    combined with the domains of its spec.
options:
  app: {description: App name., type: str, required: true}
  set: {description: Variables to set., type: dict, default: {}}
  unset: {description: Variables to remove., type: list, elements: str, default: []}
  domains_add: {description: Domains to add., type: list, elements: str, default: []}
  domains_remove: {description: Domains to remove., type: list, elements: str, default: []}
  lock:
    description:
      - The app's lock (module_utils/hop3_app_lock.py), taken before any change
        with C(operation); released at the end with C(release).
    type: dict
  restart:
    description:
      - When the config changed, restart the app's processes with it in this
        same call, as module hop3_app_processes does (a zero-downtime swap
        with health checks; key C(keep_releases)). If the new instances fail,
        the old ones keep running and the config is put back as it was. The
        result's C(running) is that module's result.
    type: dict
  finish:
    description:
      - When nothing follows this call on the host, append the audit entry
        (C(audit)) after a successful change (module_utils/hop3_app_finish.py).
    type: dict
author: Hop3
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hop3_app_finish import FINISH_OPTION, finish_run
from ansible.module_utils.hop3_app_lock import LOCK_OPTION, run_locked
from ansible.module_utils.hop3_app_swap import run_swap
from ansible.module_utils.hop3_app_host import (
    AppPaths,
    load_env,
    load_state,
    proxy_settings,
    save_env,
    save_state,
)


def main():
    module = AnsibleModule(
        argument_spec={
            "app": {"type": "str", "required": True},
            "set": {"type": "dict", "default": {}, "no_log": True},
            "unset": {"type": "list", "elements": "str", "default": []},
            "domains_add": {"type": "list", "elements": "str", "default": []},
            "domains_remove": {"type": "list", "elements": "str", "default": []},
            "lock": LOCK_OPTION,
            "restart": {"type": "dict"},
            "finish": FINISH_OPTION,
        },
    )
    paths = AppPaths(module.params["app"])
    run_locked(module, paths.app, lambda lock: configure(module, paths, lock))


def configure(module, paths, lock):
    if not os.path.exists(paths.state):
        lock.finish(ok=False)
        module.fail_json(msg="There is no app named '%s' on this host." % paths.app)
    env = load_env(paths)
    new_env = dict(env)
    new_env.update({k: "" if v is None else str(v) for k, v in module.params["set"].items()})
    for key in module.params["unset"]:
        new_env.pop(key, None)
    env_changed = new_env != env and save_env(paths, new_env)

    state = load_state(paths)
    extra, removed = list(state["domains_extra"]), list(state["domains_removed"])
    for domain in module.params["domains_add"]:
        if domain in removed:
            removed.remove(domain)
        if domain not in extra:
            extra.append(domain)
    for domain in module.params["domains_remove"]:
        if domain in extra:
            extra.remove(domain)
        elif domain not in removed:
            removed.append(domain)
    domains_changed = (extra, removed) != (state["domains_extra"], state["domains_removed"])
    if domains_changed:
        state["domains_extra"], state["domains_removed"] = extra, removed
        save_state(paths, state)
    result = {}
    if env_changed and module.params["restart"] is not None:
        result["running"] = restart(module, paths, lock, env)
    result.update(finish_run(paths.root, module.params["finish"]))
    lock.finish(ok=True)
    module.exit_json(
        lock=lock.report,
        changed=bool(env_changed or domains_changed),
        **result,
        env_changed=bool(env_changed),
        domains_changed=domains_changed,
        env_keys=sorted(new_env),
        proxy=proxy_settings(state),
    )


def restart(module, paths, lock, old_env):
    """Swap the processes to instances that run with the new config; on a
    failure, the old instances still run, with the config put back."""
    params = {"state": "started",
              "keep_releases": int(module.params["restart"].get("keep_releases", 5))}
    ok, running = run_swap(params, paths)
    if not ok:
        save_env(paths, old_env)
        lock.finish(ok=False)
        running["msg"] += " The config was put back as it was: nothing changed."
        module.fail_json(**running)
    return running


if __name__ == "__main__":
    main()
