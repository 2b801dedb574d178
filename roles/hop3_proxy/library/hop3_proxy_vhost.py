#!/usr/bin/python3
"""Write one app's nginx files, check the whole configuration, reload: one call."""

DOCUMENTATION = r"""
module: hop3_proxy_vhost
short_description: Publish one Hop3 vhost with nginx -t and a rollback, in one call
description:
  - Writes each file of O(files) whose content differs (root, 0644) and points
    O(link) at its target. When something changed (or O(force)), checks the
    whole configuration with O(check_command) and reloads nginx with
    O(reload_command). Nothing changed: no check, no reload, one call.
  - A configuration the check refuses, or one where a name of O(names) is
    claimed by another server block (nginx only warns about that), is never
    loaded. The files this call changed are put back as they were (created
    ones removed) and the module fails, naming nginx's own error line.
options:
  app: {description: The app (for messages)., type: str, required: true}
  files:
    description: Files to keep (path and content).
    type: list
    elements: dict
    required: true
  link:
    description: A symlink to keep (src is its target, dest the link).
    type: dict
  names: {description: The server names of this app., type: list, elements: str, default: []}
  force: {description: Check and reload even when no file changed., type: bool, default: false}
  check_command: {description: The configuration check., type: list, elements: str, default: [/usr/sbin/nginx, -t]}
  reload_command:
    description: How nginx loads the new configuration (started when it is not running).
    type: list
    elements: str
    default: [systemctl, reload-or-restart, nginx.service]
author: Hop3
"""

import os
import re
import subprocess

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hop3_proxy_tls import remove, write_file

CONFLICT = re.compile(r'conflicting server name "([^"]*)"')
ERROR_LINE = re.compile(r"^[0-9/]+ [0-9:]+ \[(emerg|alert|crit|error)\] [0-9#]+: (.*)$")


def read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def publish(files, link):
    """Write what differs; return the undo list [(kind, path, previous)]."""
    undo = []
    for item in files:
        previous = read(item["path"])
        if write_file(item["path"], item["content"], 0o644):
            undo.append(("file", item["path"], previous))
    if link:
        current = os.readlink(link["dest"]) if os.path.islink(link["dest"]) else None
        if current != link["src"]:
            previous = (
                current
                if current is not None or not os.path.lexists(link["dest"])
                else read(link["dest"])
            )
            remove(link["dest"])
            os.symlink(link["src"], link["dest"])
            undo.append(("link", link["dest"], previous))
    return undo


def roll_back(undo):
    for kind, path, previous in reversed(undo):
        remove(path)
        if previous is None:
            continue
        if kind == "link" and isinstance(previous, str):
            os.symlink(previous, path)
        else:
            write_file(path, previous, 0o644)


def refusal(check, names):
    """Why the check refused the configuration, or None when it passed."""
    output = check.stderr + check.stdout
    conflicts = sorted(set(CONFLICT.findall(output)) & set(names))
    if conflicts:
        return "Already served by another nginx server on this host: " + ", ".join(conflicts)
    if check.returncode == 0:
        return None
    errors = []
    for line in output.splitlines():
        match = ERROR_LINE.match(line)
        if match:
            errors.append("nginx: [%s] %s" % match.groups())
    return " ".join(errors) or output.strip() or "nginx -t exited %d" % check.returncode


def main():
    module = AnsibleModule(
        argument_spec={
            "app": {"type": "str", "required": True},
            "files": {"type": "list", "elements": "dict", "required": True},
            "link": {"type": "dict"},
            "names": {"type": "list", "elements": "str", "default": []},
            "force": {"type": "bool", "default": False},
            "check_command": {
                "type": "list",
                "elements": "str",
                "default": ["/usr/sbin/nginx", "-t"],
            },
            "reload_command": {
                "type": "list",
                "elements": "str",
                "default": ["systemctl", "reload-or-restart", "nginx.service"],
            },
        },
    )
    params = module.params
    undo = publish(params["files"], params["link"])
    changed = [path for _, path, _ in undo]
    if not undo and not params["force"]:
        module.exit_json(changed=False, files_changed=[], reloaded=False)
    check = subprocess.run(params["check_command"], capture_output=True, text=True)
    reason = refusal(check, params["names"])
    if reason:
        roll_back(undo)
        module.fail_json(
            msg="The new nginx configuration of app %s was refused and not loaded: its files are "
            "back as they were before this run, and nginx keeps serving every app as before. %s"
            % (params["app"], reason),
            files_changed=[],
        )
    reload = subprocess.run(params["reload_command"], capture_output=True, text=True)
    if reload.returncode != 0:
        module.fail_json(
            msg="nginx accepted the configuration of app %s but did not reload: %s"
            % (params["app"], (reload.stderr or reload.stdout).strip()),
            files_changed=changed,
        )
    module.exit_json(changed=bool(undo) or params["force"], files_changed=changed, reloaded=True)


if __name__ == "__main__":
    main()
