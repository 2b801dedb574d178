#!/usr/bin/python3
"""Create, destroy, link and report Hop3's MariaDB databases."""

import json
import os
import re
import secrets
import subprocess

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: hop3_mariadb_database
short_description: Manage one MariaDB database of Hop3, with a user of the same name
description:
  - C(present) creates the utf8mb4 database NAME and the user NAME (at
    C(localhost) for the socket and C(127.0.0.1) for TCP) with all privileges
    on it and nothing else. The password is generated on the host (the secrets
    module) and stored with the connection URL in I(services_dir)/NAME.json
    (mode 0600, root). An existing file's password is reused, so a restored
    record re-creates the user with its old credentials.
  - C(absent) drops the database, its users and the JSON file.
  - C(link) and C(unlink) record an app in the JSON file's C(links) list.
  - C(info) reports the size, links and connections of NAME; C(list) does it
    for every database of Hop3 on the host.
  - SQL runs as root through the unix socket (C(mariadb) client) with the
    statements on stdin, never on a command line; names are validated and
    quoted.
  - Secrets (url, password, env) are returned only with O(show_secrets).
options:
  name: {description: Database and user name, C(^[a-z][a-z0-9_]{0,62}$)., type: str}
  state:
    description: What to do.
    type: str
    default: present
    choices: [present, absent, link, unlink, info, list]
  app: {description: App to link or unlink, C(^[a-z][a-z0-9-]{0,29}$)., type: str}
  show_secrets: {description: Return the URL, the password and O(env)'s values., type: bool, default: false}
  env:
    description: Config variable -> record field; with O(show_secrets) the result's C(env) has their values.
    type: dict
    default: {}
  services_dir:
    description: Where the JSON files are.
    type: path
    default: /srv/hop3/services/mariadb
  host: {description: Host of the URL., type: str, default: 127.0.0.1}
  port: {description: Port of the server and the URL., type: int, default: 3306}
author: Hop3
"""

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
APP_RE = re.compile(r"^[a-z][a-z0-9-]{0,29}$")
RESERVED = {"mysql", "information_schema", "performance_schema", "sys"}
# The socket for root (peer auth), TCP from 127.0.0.1 for apps (skip-name-resolve).
USER_HOSTS = ("localhost", "127.0.0.1")
CLIENT = ["mariadb", "--no-defaults", "--socket=/run/mysqld/mysqld.sock", "-u", "root",
          "--batch", "--skip-column-names", "--raw"]  # fmt: skip
SECRET_FIELDS = ("url", "password", "env")


def ident(name):
    """A validated name as a quoted identifier."""
    if not NAME_RE.fullmatch(name):
        raise ValueError("invalid name")
    return "`" + name + "`"


def grant_ident(name):
    """The database name for GRANT, where '_' would be a wildcard."""
    return ident(name).replace("_", "\\_")


def literal(value):
    """A string as a SQL literal (backslashes escape in MariaDB's default mode)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def account(name, host):
    return f"{literal(name)}@{literal(host)}"


class MariaDB:
    def __init__(self, module):
        self.module = module

    def run(self, sql):
        """Run statements (fed on stdin, never in argv); rows as lists of fields."""
        proc = subprocess.run(CLIENT, input=sql, capture_output=True, text=True, cwd="/")
        if proc.returncode != 0:
            self.module.fail_json(msg=f"mariadb failed: {proc.stderr.strip()}")
        return [line.split("\t") for line in proc.stdout.splitlines() if line]

    def state(self, name):
        """What exists of NAME: database (charset), accounts, accounts granted on it."""
        rows = self.run(
            "SELECT 'db', DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA "
            f"WHERE SCHEMA_NAME = {literal(name)};\n"
            f"SELECT 'user', Host FROM mysql.global_priv WHERE User = {literal(name)};\n"
            "SELECT 'grant', Host FROM mysql.db "
            f"WHERE User = {literal(name)} AND Db = {literal(name.replace('_', chr(92) + '_'))} "
            "AND Select_priv = 'Y' AND Alter_priv = 'Y';\n"
        )
        found = {"db": None, "user": set(), "grant": set()}
        for kind, value in rows:
            if kind == "db":
                found["db"] = value
            else:
                found[kind].add(value)
        return found


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


def new_record(module, name):
    p = module.params
    password = secrets.token_urlsafe(32)
    return {
        "name": name,
        "database": name,
        "user": name,
        "password": password,
        "host": p["host"],
        "port": p["port"],
        "url": f"mysql://{name}:{password}@{p['host']}:{p['port']}/{name}",
        "links": [],
    }


def ensure_present(module, db, name):
    record = load_record(module, name)
    fresh = record is None
    if fresh:
        record = new_record(module, name)
    password = record["password"]
    found = db.state(name)
    sql = []
    if found["db"] is None:
        sql.append(
            f"CREATE DATABASE {ident(name)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
        )
    for host in USER_HOSTS:
        if host not in found["user"]:
            sql.append(f"CREATE USER {account(name, host)} IDENTIFIED BY {literal(password)};")
        elif fresh:
            # A user left without its file (a failed destroy): give it the new password.
            sql.append(f"ALTER USER {account(name, host)} IDENTIFIED BY {literal(password)};")
        if host not in found["grant"]:
            sql.append(f"GRANT ALL PRIVILEGES ON {grant_ident(name)}.* TO {account(name, host)};")
    if fresh:
        save_record(module, name, record)
    if sql:
        db.run("\n".join(sql) + "\n")
    return fresh or bool(sql), record


def ensure_absent(module, db, name):
    found = db.state(name)
    sql = []
    if found["db"] is not None:
        sql.append(f"DROP DATABASE {ident(name)};")
    sql += [f"DROP USER {account(name, host)};" for host in sorted(found["user"])]
    if sql:
        db.run("\n".join(sql) + "\n")
    path = record_path(module, name)
    removed = os.path.exists(path)
    if removed:
        os.unlink(path)
    return bool(sql) or removed


def report(module, db, name, record):
    stats = db.run(
        "SELECT (SELECT count(*) FROM information_schema.SCHEMATA "
        f"WHERE SCHEMA_NAME = {literal(name)}), "
        "(SELECT coalesce(sum(DATA_LENGTH + INDEX_LENGTH), 0) FROM information_schema.TABLES "
        f"WHERE TABLE_SCHEMA = {literal(name)}), "
        f"(SELECT count(*) FROM information_schema.PROCESSLIST WHERE USER = {literal(name)});"
    )
    exists, size, connections = (int(v) for v in stats[0])
    links = list(record.get("links", [])) if record else []
    data = {
        "name": name,
        "exists": bool(exists),
        "size": size,
        "connections": connections,
        "links": links,
        # Linked apps still on the host (a destroyed app leaves a stale link).
        "links_live": [a for a in links if os.path.exists(f"/srv/hop3/apps/{a}/state.json")],
        "host": module.params["host"],
        "port": module.params["port"],
    }
    if module.params["show_secrets"] and record:
        data["url"] = record["url"]
        data["password"] = record["password"]
        data["env"] = {var: str(record[field]) for var, field in module.params["env"].items()}
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
            "env": {"type": "dict", "default": {}},
            "services_dir": {"type": "path", "default": "/srv/hop3/services/mariadb"},
            "host": {"type": "str", "default": "127.0.0.1"},
            "port": {"type": "int", "default": 3306},
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
            msg=f"'{name}' is not a valid database name: use ^[a-z][a-z0-9_]{{0,62}}$ "
            "(and not mysql, information_schema, performance_schema or sys)."
        )
    if app is not None and not APP_RE.fullmatch(app):
        module.fail_json(msg=f"'{app}' is not a valid app name.")
    installed = os.path.exists("/usr/bin/mariadb") and os.path.exists("/usr/sbin/mariadbd")

    if state == "list":
        databases = []
        directory = p["services_dir"]
        files = os.listdir(directory) if os.path.isdir(directory) else []
        names = sorted(f[:-5] for f in files if f.endswith(".json") and NAME_RE.fullmatch(f[:-5]))
        db = MariaDB(module) if installed else None
        for one in names:
            record = load_record(module, one)
            databases.append(report(module, db, one, record) if db else {"name": one})
        module.exit_json(changed=False, databases=databases)

    if not installed:
        if state in ("absent", "unlink"):
            module.exit_json(changed=False, name=name, links=[])
        if state == "info":
            module.exit_json(changed=False, name=name, exists=False, links=[])
        module.fail_json(msg="MariaDB is not installed on this host: create a database first.")
    db = MariaDB(module)

    if state == "present":
        changed, record = ensure_present(module, db, name)
        module.exit_json(changed=changed, **report(module, db, name, record))
    if state == "absent":
        module.exit_json(changed=ensure_absent(module, db, name), name=name)

    record = load_record(module, name)
    if state == "info":
        module.exit_json(changed=False, **report(module, db, name, record))
    if record is None or db.state(name)["db"] is None:
        if state == "unlink":
            module.exit_json(changed=False, name=name, links=[])
        module.fail_json(msg=f"There is no MariaDB database named '{name}' on this host.")
    links = list(record.get("links", []))
    if state == "link" and app not in links:
        links.append(app)
    elif state == "unlink" and app in links:
        links.remove(app)
    changed = links != record.get("links", [])
    if changed:
        record["links"] = links
        save_record(module, name, record)
    module.exit_json(changed=changed, **report(module, db, name, record))


if __name__ == "__main__":
    main()
