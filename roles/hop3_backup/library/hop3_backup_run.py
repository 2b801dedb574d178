#!/usr/bin/python3
"""Run one command of hop3-backup (the host-side backup tool) and return its JSON."""

import json
import subprocess

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: hop3_backup_run
short_description: Run a command of Hop3's host-side backup tool
description:
  - Runs C(/usr/local/lib/hop3/hop3-backup ARGS...), the one implementation
    of Hop3's backups (also run by the backup timers), and returns the JSON
    document it prints as the module's result.
  - A failure becomes the module's message (one line naming the problem and
    its fix), not a traceback.
options:
  args: {description: Arguments of hop3-backup., type: list, elements: str, required: true}
  stdin: {description: Text fed on stdin (a key); never logged., type: str}
  changes:
    description: Whether a success changes the host, when the tool does not say itself.
    type: bool
    default: true
  tool: {description: Path of hop3-backup., type: path, default: /usr/local/lib/hop3/hop3-backup}
author: Hop3
"""


def main():
    module = AnsibleModule(
        argument_spec={
            "args": {"type": "list", "elements": "str", "required": True},
            "stdin": {"type": "str", "no_log": True},
            "changes": {"type": "bool", "default": True},
            "tool": {"type": "path", "default": "/usr/local/lib/hop3/hop3-backup"},
        },
    )
    p = module.params
    proc = subprocess.run([p["tool"], *p["args"]], input=p["stdin"] or "", capture_output=True,
                          text=True, cwd="/")  # fmt: skip
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        message = lines[-1] if lines else "hop3-backup exited %d" % proc.returncode
        module.fail_json(msg=message.removeprefix("hop3-backup: "), rc=proc.returncode)
    result = json.loads(proc.stdout)
    changed = result.pop("changed", None)
    if changed is None:
        changed = bool(result.get("key_created") or result.get("repo_created")) or p["changes"]
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
