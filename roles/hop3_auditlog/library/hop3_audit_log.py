#!/usr/bin/python3
"""Read entries of Hop3's audit log, with its rotated files (read-only)."""

DOCUMENTATION = r"""
module: hop3_audit_log
short_description: Read entries of Hop3's audit log
description:
  - Reads /var/log/hop3/audit.jsonl and its rotations (audit.jsonl.1,
    audit.jsonl.2.gz, ...), oldest first. Never changes anything.
options:
  app: {description: Only the entries of this app., type: str}
  since: {description: Only entries at or after this ISO 8601 time., type: str}
  limit: {description: At most this many entries (the newest); 0 for all., type: int, default: 0}
  log_dir: {description: Directory of the log., type: path, default: /var/log/hop3}
author: Hop3
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hop3_auditlog import parse_since, read_entries


def main():
    module = AnsibleModule(
        argument_spec={
            "app": {"type": "str"},
            "since": {"type": "str"},
            "limit": {"type": "int", "default": 0},
            "log_dir": {"type": "path", "default": "/var/log/hop3"},
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        since = parse_since(params["since"]) if params["since"] else None
        entries = read_entries(params["log_dir"], app=params["app"] or None, since=since,
                               limit=params["limit"] or None)  # fmt: skip
    except (OSError, ValueError) as exc:
        module.fail_json(msg="Could not read the audit log: %s" % exc)
    module.exit_json(changed=False, entries=entries)


if __name__ == "__main__":
    main()
