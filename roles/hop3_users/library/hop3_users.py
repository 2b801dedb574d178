#!/usr/bin/python3
"""Hop3's users on one host: who may do what through `ssh hop3@host` and git push."""

DOCUMENTATION = r"""
module: hop3_users
short_description: Add, change, remove and list Hop3 users and their SSH keys
description:
  - Keeps the registry O(users_file) (JSON, root, 0600) and renders from it
    O(authorized_keys), the key file sshd reads for the C(hop3) user. Every
    key gets C(restrict) (no forwarding, no pty) and the forced command
    O(shell) C(--key <fingerprint>), so the shell learns who came in from the
    key itself. Both files are replaced atomically, under a lock; a removed
    user's keys are gone from O(authorized_keys) when the module returns.
  - A key fingerprint belongs to one user only. Bad input fails before any
    file is touched.
options:
  action: {description: What to do., type: str, choices: [add, set, remove, list], default: list}
  name: {description: The user (add, set, remove)., type: str}
  role: {description: admin, deployer or viewer (add; set when given)., type: str}
  apps: {description: The apps a deployer or viewer may act on (["*"] for all)., type: list, elements: str}
  keys: {description: Public keys in OpenSSH format (add; set replaces them when given)., type: list, elements: str}
  users_file: {description: The registry., type: path, default: /etc/hop3/users.json}
  authorized_keys: {description: The key file of the hop3 user., type: path, default: /etc/hop3/ssh/authorized_keys}
  shell: {description: The forced command., type: path, default: /opt/hop3/bin/hop3-shell}
author: Hop3
"""

import base64
import binascii
import fcntl
import hashlib
import json
import os
import re
import struct
import tempfile
from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule

ROLES = ("admin", "deployer", "viewer")
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}\Z")
APP_RE = re.compile(r"^([a-z][a-z0-9-]{0,29}|\*)\Z")
KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)


class Invalid(Exception):
    pass


def parse_key(text):
    """(type, base64 blob, SHA256 fingerprint) of one OpenSSH public key line."""
    fields = text.strip().split()
    if len(fields) < 2 or fields[0] not in KEY_TYPES:
        shown = (text.strip()[:40] + "...") if len(text.strip()) > 40 else text.strip()
        raise Invalid(
            "%r is not an SSH public key: expected a line like 'ssh-ed25519 AAAA... comment' "
            "(the .pub file, without options); key types: %s" % (shown, ", ".join(KEY_TYPES))
        )
    kind, blob = fields[0], fields[1]
    try:
        raw = base64.b64decode(blob, validate=True)
        (length,) = struct.unpack(">I", raw[:4])
        embedded = raw[4 : 4 + length].decode()
    except (binascii.Error, struct.error, UnicodeDecodeError):
        raise Invalid(
            "The %s key's data is not valid base64 key data: copy the whole .pub line." % kind
        )
    if embedded != kind:
        raise Invalid(
            "The key says %s but its data holds a %s key: copy the whole .pub line."
            % (kind, embedded)
        )
    fingerprint = "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")
    return kind, blob, fingerprint


def load(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return {"version": 1, "users": {}}
    except ValueError as err:
        raise Invalid("%s is not valid JSON (%s): fix or remove it by hand." % (path, err))


def write_atomic(path, text, mode):
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".hop3-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def render_authorized_keys(users, shell):
    lines = ["# Written by Hop3 (hop users:*) from /etc/hop3/users.json: edits here are lost."]
    for name in sorted(users):
        for key in users[name]["keys"]:
            lines.append(
                'restrict,command="%s --key %s" %s %s hop3:%s'
                % (shell, key["fingerprint"], key["type"], key["key"], name)
            )
    return "\n".join(lines) + "\n"


def public_view(users):
    """The registry without key bodies: what `hop users:list` shows."""
    return [
        {
            "name": name,
            "role": users[name]["role"],
            "apps": users[name]["apps"],
            "keys": [key["fingerprint"] for key in users[name]["keys"]],
            "created": users[name].get("created"),
            "updated": users[name].get("updated"),
        }
        for name in sorted(users)
    ]


def check_inputs(params, users):
    action, name = params["action"], params["name"]
    if action == "list":
        return None
    if not name or not NAME_RE.match(name):
        raise Invalid(
            "User name %r is not valid: use 1 to 32 lowercase letters, digits, '-' or '_', "
            "starting with a letter." % (name or "")
        )
    if action == "add" and name in users:
        raise Invalid("User %s already exists: change it with `hop users:set %s`." % (name, name))
    if action in ("set", "remove") and name not in users:
        raise Invalid("There is no user named %s: see `hop users:list`." % name)
    if params["role"] is not None and params["role"] not in ROLES:
        raise Invalid("Role %r is not one of: %s." % (params["role"], ", ".join(ROLES)))
    if action == "add" and params["role"] is None:
        raise Invalid("A new user needs a role: --role admin, deployer or viewer.")
    for app in params["apps"] or []:
        if not APP_RE.match(app):
            raise Invalid("%r is not an app name (or * for all apps)." % app)
    if action == "add" and not params["keys"]:
        raise Invalid("A new user needs a public key: --key FILE.pub.")
    keys = None
    if params["keys"] is not None and action != "remove":
        keys, seen = [], {}
        for text in params["keys"]:
            kind, blob, fingerprint = parse_key(text)
            if fingerprint in seen:
                continue
            owner = next(
                (other for other, user in users.items() if other != name
                 and any(k["fingerprint"] == fingerprint for k in user["keys"])),
                None,
            )  # fmt: skip
            if owner:
                raise Invalid(
                    "Key %s already belongs to user %s: a key identifies one user only. "
                    "Use another key, or remove it from %s first." % (fingerprint, owner, owner)
                )
            seen[fingerprint] = True
            keys.append({"type": kind, "key": blob, "fingerprint": fingerprint})
        if not keys:
            raise Invalid("A user needs at least one public key.")
    return keys


def apply(params, registry, keys):
    users = registry["users"]
    action, name = params["action"], params["name"]
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if action == "remove":
        del users[name]
        return True
    if action == "add":
        users[name] = {"role": params["role"], "apps": [], "keys": [], "created": now}
    user = dict(users[name])
    if params["role"] is not None:
        user["role"] = params["role"]
    if params["apps"] is not None:
        user["apps"] = sorted(set(params["apps"]))
    if keys is not None:
        user["keys"] = keys
    before = {k: v for k, v in users[name].items() if k != "updated"}
    after = {k: v for k, v in user.items() if k != "updated"}
    if action == "add" or before != after:
        user["updated"] = now
        users[name] = user
        return True
    return False


def main():
    module = AnsibleModule(
        argument_spec={
            "action": {
                "type": "str",
                "choices": ["add", "set", "remove", "list"],
                "default": "list",
            },
            "name": {"type": "str"},
            "role": {"type": "str"},
            "apps": {"type": "list", "elements": "str"},
            "keys": {"type": "list", "elements": "str", "no_log": False},
            "users_file": {"type": "path", "default": "/etc/hop3/users.json"},
            "authorized_keys": {"type": "path", "default": "/etc/hop3/ssh/authorized_keys"},
            "shell": {"type": "path", "default": "/opt/hop3/bin/hop3-shell"},
        },
        supports_check_mode=True,
    )
    params = module.params
    os.makedirs(os.path.dirname(params["users_file"]), mode=0o755, exist_ok=True)
    with open(params["users_file"] + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            registry = load(params["users_file"])
            keys = check_inputs(params, registry["users"])
        except Invalid as err:
            module.fail_json(msg=str(err))
        changed = params["action"] != "list" and apply(params, registry, keys)
        keys_text = render_authorized_keys(registry["users"], params["shell"])
        keys_changed = read(params["authorized_keys"]) != keys_text
        if (changed or keys_changed) and not module.check_mode:
            if changed:
                write_atomic(params["users_file"], json.dumps(registry, indent=2) + "\n", 0o600)
            if keys_changed:
                write_atomic(params["authorized_keys"], keys_text, 0o644)
    module.exit_json(changed=changed or keys_changed, users=public_view(registry["users"]))


if __name__ == "__main__":
    main()
