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
author: Hop3
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hop3_app_lock import LOCK_OPTION, run_locked
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
    lock.finish(ok=True)
    module.exit_json(
        lock=lock.report,
        changed=bool(env_changed or domains_changed),
        env_changed=bool(env_changed),
        domains_changed=domains_changed,
        env_keys=sorted(new_env),
        proxy=proxy_settings(state),
    )


if __name__ == "__main__":
    main()
