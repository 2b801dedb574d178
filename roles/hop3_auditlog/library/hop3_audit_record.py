#!/usr/bin/python3
"""Append one entry to Hop3's audit log (/var/log/hop3/audit.jsonl)."""

DOCUMENTATION = r"""
module: hop3_audit_record
short_description: Append one entry to Hop3's audit log
description:
  - Appends one JSON line to the audit log (one write, under a lock, fsync'd).
  - The identity comes from O(audit); a missing C(key) or C(source) is taken
    from the SSH session the module runs in ($SSH_USER_AUTH, which sshd sets
    with ExposeAuthInfo, and $SSH_CONNECTION or $SSH_CLIENT), else null.
  - The release is the app's current release, read from its state.json.
  - Always reports changed=false, so that a run that changed nothing else
    still reports no change (an entry is a record, not a configuration).
options:
  audit:
    description: Who did what, as user, key, source, via (cli, ssh or git), command (a list) and app.
    type: dict
    required: true
  result:
    description: ok, failed, denied or interrupted (hop was stopped by a signal).
    type: str
    default: ok
    choices: [ok, failed, denied, interrupted]
  error: {description: Why it failed (only the first line is kept)., type: str}
  log_dir: {description: Directory of the log., type: path, default: /var/log/hop3}
  apps_root: {description: Directory of the apps' state., type: path, default: /srv/hop3/apps}
author: Hop3
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hop3_auditlog import record_run


def main():
    module = AnsibleModule(
        argument_spec={
            "audit": {"type": "dict", "required": True},
            "result": {
                "type": "str",
                "default": "ok",
                "choices": ["ok", "failed", "denied", "interrupted"],
            },
            "error": {"type": "str"},
            "log_dir": {"type": "path", "default": "/var/log/hop3"},
            "apps_root": {"type": "path", "default": "/srv/hop3/apps"},
        },
        supports_check_mode=True,
    )
    if not isinstance(module.params["audit"].get("command") or [], list):
        module.fail_json(msg="audit.command must be a list of strings, not %r"
                         % (module.params["audit"].get("command"),))
    if module.check_mode:
        module.exit_json(changed=False, skipped_write=True)
    try:
        entry = record_run(
            module.params["audit"],
            result=module.params["result"],
            error=module.params["error"],
            log_dir=module.params["log_dir"],
            apps_root=module.params["apps_root"],
        )
    except (OSError, ValueError) as exc:
        module.fail_json(msg="Could not write the audit log: %s" % exc)
    module.exit_json(changed=False, entry=entry)


if __name__ == "__main__":
    main()
