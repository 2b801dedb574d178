#!/usr/bin/python3
"""Create, destroy, link and report Hop3's Redis instances (ACL users)."""

import hashlib
import json
import os
import re
import secrets
import subprocess

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: hop3_redis_instance
short_description: Manage one Redis ACL user of Hop3, restricted to the keys NAME:*
description:
  - C(present) creates the ACL user NAME with a password generated on the
    host, restricted to keys and channels C(NAME:*) and to commands
    C(+@all -@admin -@dangerous), then C(ACL SAVE)s; the password and URL are
    kept in I(services_dir)/NAME.json (mode 0600, root).
  - C(absent) deletes the keys NAME:*, the user and the JSON file.
  - C(link) and C(unlink) record an app in the JSON file's C(links) list.
  - C(info) and C(list) report instances; the URL only with O(show_secrets).
  - Commands go to redis-cli on stdin as the admin user, whose password is
    passed in the REDISCLI_AUTH environment variable, never in argv.
options:
  name: {description: Instance and user name, C(^[a-z][a-z0-9_]{0,62}$)., type: str}
  state:
    description: What to do.
    type: str
    default: present
    choices: [present, absent, link, unlink, info, list]
  app: {description: App to link or unlink, C(^[a-z][a-z0-9-]{0,29}$)., type: str}
  show_secrets: {description: Return the connection URL., type: bool, default: false}
  services_dir:
    description: Where the JSON files are.
    type: path
    default: /srv/hop3/services/redis
  admin_user: {description: ACL user of Hop3 itself., type: str, default: hop3admin}
  admin_password_file:
    description: File with its password.
    type: path
    default: /etc/redis/hop3-admin.pass
  host: {description: Host of the URL., type: str, default: 127.0.0.1}
  port: {description: Port of the server and the URL., type: int, default: 6379}
author: Hop3
"""

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
APP_RE = re.compile(r"^[a-z][a-z0-9-]{0,29}$")
RESERVED = {"default", "hop3admin"}
ERRORS = ("ERR", "NOPERM", "WRONGPASS", "NOAUTH", "WRONGTYPE")


def rules(name, password):
    """The ACL rules of user NAME (validated) with PASSWORD."""
    if not NAME_RE.fullmatch(name):
        raise ValueError("invalid name")
    return (f"reset on >{password} ~{name}:* resetchannels &{name}:* "
            "+@all -@admin -@dangerous")  # fmt: skip


def wanted_tokens(name, password):
    digest = hashlib.sha256(password.encode()).hexdigest()
    # Redis folds -@admin into -@dangerous (every admin command is dangerous).
    return {"on", "#" + digest, f"~{name}:*", f"&{name}:*", "+@all", "-@dangerous"}


class Redis:
    def __init__(self, module):
        self.module = module
        p = module.params
        try:
            with open(p["admin_password_file"]) as f:
                password = f.read().strip()
        except OSError as e:
            module.fail_json(msg=f"cannot read the Redis admin password: {e}")
        self.env = dict(os.environ, REDISCLI_AUTH=password)
        self.argv = ["redis-cli", "--no-auth-warning", "-h", "127.0.0.1", "-p", str(p["port"]),
                     "--user", p["admin_user"]]  # fmt: skip

    def run(self, *commands):
        """Run commands (fed on stdin, never in argv); the output lines."""
        proc = subprocess.run(self.argv, input="\n".join(commands) + "\n", env=self.env,
                              capture_output=True, text=True, cwd="/")  # fmt: skip
        lines = proc.stdout.splitlines()
        bad = [line for line in lines if line.startswith(ERRORS)]
        if proc.returncode != 0 or bad:
            # Never echo the commands: they can hold a password.
            self.module.fail_json(msg="redis-cli failed: " + (proc.stderr.strip() or bad[0]))
        return lines

    def acl_line(self, name):
        for line in self.run("ACL LIST"):
            tokens = line.split()
            if len(tokens) > 1 and tokens[0] == "user" and tokens[1] == name:
                return tokens
        return None


def record_path(module, name):
    return os.path.join(module.params["services_dir"], name + ".json")


def load_record(module, name):
    try:
        with open(record_path(module, name)) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def save_record(module, name, record):
    directory = module.params["services_dir"]
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    path = record_path(module, name)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(record, f, indent=2, sort_keys=True)
        f.write("\n")
    os.chown(tmp, 0, 0)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def url_of(module, name, password):
    p = module.params
    return f"redis://{name}:{password}@{p['host']}:{p['port']}/0"


def ensure_present(module, redis, name):
    changed = False
    record = load_record(module, name)
    if record is None:
        record = {"name": name, "password": secrets.token_urlsafe(32), "links": []}
        record["url"] = url_of(module, name, record["password"])
        record["key_prefix"] = name + ":"
        save_record(module, name, record)
        changed = True
    tokens = redis.acl_line(name)
    ok = tokens is not None and wanted_tokens(name, record["password"]) <= set(tokens)
    if ok:
        # Exactly one key pattern, one channel pattern and one password.
        ok = sum(t[0] in "~&#" or t.startswith("%") for t in tokens) == 3
    if not ok:
        redis.run(f"ACL SETUSER {name} {rules(name, record['password'])}", "ACL SAVE")
        changed = True
    return changed, record


# Deletes the keys matching ARGV[1] in batches; returns how many it deleted.
DELETE_KEYS = (
    "EVAL \"local c, n = '0', 0 repeat local r = redis.call('SCAN', c, 'MATCH', ARGV[1], "
    "'COUNT', 1000) c = r[1] for _, k in ipairs(r[2]) do redis.call('UNLINK', k) n = n + 1 "
    "end until c == '0' return n\" 0 %s:*"
)


def ensure_absent(module, redis, name):
    changed = False
    if redis is not None:
        # The instance's data goes with it, as a dropped database's does.
        deleted = redis.run(DELETE_KEYS % name)
        changed = bool(deleted) and deleted[-1].strip() not in ("0", "(integer) 0")
    if redis is not None and redis.acl_line(name) is not None:
        redis.run(f"ACL DELUSER {name}", "ACL SAVE")
        changed = True
    path = record_path(module, name)
    if os.path.exists(path):
        os.unlink(path)
        changed = True
    return changed


def report(module, redis, name, record):
    links = list(record.get("links", [])) if record else []
    data = {
        "name": name,
        "exists": bool(record) and redis is not None and redis.acl_line(name) is not None,
        "links": links,
        "links_live": [a for a in links if os.path.exists(f"/srv/hop3/apps/{a}/state.json")],
        "key_prefix": name + ":",
        "host": module.params["host"],
        "port": module.params["port"],
    }
    if module.params["show_secrets"] and record:
        data["url"] = record["url"]
    return data


def main():
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str"},
            "state": {
                "type": "str",
                "default": "present",
                "choices": ["present", "absent", "link", "unlink", "info", "list"],
            },
            "app": {"type": "str"},
            "show_secrets": {"type": "bool", "default": False},
            "services_dir": {"type": "path", "default": "/srv/hop3/services/redis"},
            "admin_user": {"type": "str", "default": "hop3admin"},
            "admin_password_file": {"type": "path", "default": "/etc/redis/hop3-admin.pass"},
            "host": {"type": "str", "default": "127.0.0.1"},
            "port": {"type": "int", "default": 6379},
        },
        required_if=[
            ("state", "present", ["name"]),
            ("state", "absent", ["name"]),
            ("state", "info", ["name"]),
            ("state", "link", ["name", "app"]),
            ("state", "unlink", ["name", "app"]),
        ],
        supports_check_mode=False,
    )
    p = module.params
    state, name, app = p["state"], p["name"], p["app"]
    if name is not None and (not NAME_RE.fullmatch(name) or name in RESERVED):
        module.fail_json(
            msg=f"'{name}' is not a valid Redis instance name: use ^[a-z][a-z0-9_]{{0,62}}$ "
            "(and not default or hop3admin)."
        )
    if app is not None and not APP_RE.fullmatch(app):
        module.fail_json(msg=f"'{app}' is not a valid app name.")
    installed = os.path.exists("/usr/bin/redis-cli") and os.path.exists(p["admin_password_file"])
    redis = Redis(module) if installed else None

    if state == "list":
        directory = p["services_dir"]
        files = os.listdir(directory) if os.path.isdir(directory) else []
        names = sorted(f[:-5] for f in files if f.endswith(".json") and NAME_RE.fullmatch(f[:-5]))
        instances = [report(module, redis, n, load_record(module, n)) for n in names]
        module.exit_json(changed=False, instances=instances)

    if state == "absent":
        module.exit_json(changed=ensure_absent(module, redis, name), name=name)
    if redis is None:
        if state == "unlink":
            module.exit_json(changed=False, name=name, links=[])
        if state == "info":
            module.exit_json(changed=False, name=name, exists=False, links=[])
        module.fail_json(msg="Redis is not installed on this host: create an instance first.")
    if state == "present":
        changed, record = ensure_present(module, redis, name)
        module.exit_json(changed=changed, **report(module, redis, name, record))

    record = load_record(module, name)
    if state == "info":
        module.exit_json(changed=False, **report(module, redis, name, record))
    if record is None:
        if state == "unlink":
            module.exit_json(changed=False, name=name, links=[])
        module.fail_json(msg=f"There is no Redis instance named '{name}' on this host.")
    links = list(record.get("links", []))
    if state == "link" and app not in links:
        links.append(app)
    elif state == "unlink" and app in links:
        links.remove(app)
    changed = links != record.get("links", [])
    if changed:
        record["links"] = links
        save_record(module, name, record)
    module.exit_json(changed=changed, **report(module, redis, name, record))


if __name__ == "__main__":
    main()
