#!/usr/bin/python3
"""Create, destroy, link and report Hop3's PostgreSQL databases."""

import json
import os
import re
import secrets
import subprocess

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: hop3_pg_database
short_description: Manage one PostgreSQL database of Hop3, with a login role of the same name
description:
  - C(present) creates the database NAME owned by a login role NAME, whose
    password is generated on the host (32+ characters from the secrets
    module) and stored with its connection URL in
    I(services_dir)/NAME.json (mode 0600, root). PUBLIC loses CONNECT on the
    database, so no other role can connect to it.
  - C(absent) drops the database (closing its connections), its role and the
    JSON file.
  - C(link) and C(unlink) record an app in the JSON file's C(links) list.
  - C(info) reports the size, links and connections of NAME; C(list) does it
    for every database of Hop3 on the host.
  - SQL runs through C(runuser -u postgres -- psql) with the statements on
    stdin (never on a command line); names are validated and quoted.
  - The connection URL is returned only with O(show_secrets).
options:
  name: {description: Database and role name, C(^[a-z][a-z0-9_]{0,62}$)., type: str}
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
    default: /srv/hop3/services/postgres
  host: {description: Host of the URL., type: str, default: 127.0.0.1}
  port: {description: Port of the server and the URL., type: int, default: 5432}
author: Hop3
"""

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
APP_RE = re.compile(r"^[a-z][a-z0-9-]{0,29}$")
RESERVED = {"postgres", "template0", "template1", "public"}
PSQL = ["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-A", "-t",
        "-v", "ON_ERROR_STOP=1", "-d", "postgres"]  # fmt: skip


def ident(name):
    """A validated name as a quoted SQL identifier."""
    if not NAME_RE.fullmatch(name):
        raise ValueError("invalid name")
    return '"' + name.replace('"', '""') + '"'


def literal(value):
    """A string as a SQL literal (standard_conforming_strings is on)."""
    return "'" + value.replace("'", "''") + "'"


class Pg:
    def __init__(self, module):
        self.module = module
        self.port = module.params["port"]

    def run(self, sql):
        """Run statements (fed on stdin, never in argv); rows as lists of fields."""
        argv = [*PSQL, "-p", str(self.port), "-F", "\t"]
        proc = subprocess.run(argv, input=sql, capture_output=True, text=True, cwd="/")
        if proc.returncode != 0:
            self.module.fail_json(msg=f"psql failed: {proc.stderr.strip()}")
        return [line.split("\t") for line in proc.stdout.splitlines() if line]

    def one(self, sql):
        rows = self.run(sql)
        return rows[0][0] if rows else None

    def role_exists(self, name):
        return self.one(f"SELECT 1 FROM pg_roles WHERE rolname = {literal(name)};") == "1"

    def db_exists(self, name):
        return self.one(f"SELECT 1 FROM pg_database WHERE datname = {literal(name)};") == "1"


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
    return f"postgresql://{name}:{password}@{p['host']}:{p['port']}/{name}"


def public_can_connect(pg, name):
    acl = pg.one(
        f"SELECT coalesce(datacl::text, 'NULL') FROM pg_database WHERE datname = {literal(name)};"
    )
    if acl in (None, "NULL"):
        return True  # the default ACL grants CONNECT and TEMP to PUBLIC
    for item in acl.strip("{}").split(","):
        grantee, _, rest = item.strip('"').partition("=")
        if grantee == "" and "c" in rest.split("/")[0]:
            return True
    return False


def ensure_present(module, pg, name):
    changed = False
    record = load_record(module, name)
    fresh = record is None
    if fresh:
        record = {"name": name, "password": secrets.token_urlsafe(32), "links": []}
        record["url"] = url_of(module, name, record["password"])
    password = record["password"]
    if not pg.role_exists(name):
        pg.run(f"CREATE ROLE {ident(name)} LOGIN PASSWORD {literal(password)};")
        changed = True
    elif fresh:
        # A role left without its file (a failed destroy): give it the new password.
        pg.run(f"ALTER ROLE {ident(name)} LOGIN PASSWORD {literal(password)};")
        changed = True
    if fresh:
        save_record(module, name, record)
        changed = True
    if not pg.db_exists(name):
        q = ident(name)
        pg.run(f"CREATE DATABASE {q} OWNER {q} ENCODING 'UTF8' TEMPLATE template0;")
        changed = True
    owner = pg.one(
        f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = {literal(name)};"
    )
    if owner != name:
        pg.run(f"ALTER DATABASE {ident(name)} OWNER TO {ident(name)};")
        changed = True
    if public_can_connect(pg, name):
        pg.run(f"REVOKE CONNECT, TEMPORARY ON DATABASE {ident(name)} FROM PUBLIC;")
        changed = True
    return changed, record


def ensure_absent(module, pg, name):
    changed = False
    if pg.db_exists(name):
        pg.run(f"DROP DATABASE {ident(name)} WITH (FORCE);")
        changed = True
    if pg.role_exists(name):
        pg.run(f"DROP ROLE {ident(name)};")
        changed = True
    path = record_path(module, name)
    if os.path.exists(path):
        os.unlink(path)
        changed = True
    return changed


def report(module, pg, name, record):
    stats = pg.run(
        "SELECT pg_database_size(datname), "
        "(SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname) "
        f"FROM pg_database d WHERE datname = {literal(name)};"
    )
    size, connections = (int(stats[0][0]), int(stats[0][1])) if stats else (0, 0)
    links = list(record.get("links", [])) if record else []
    data = {
        "name": name,
        "exists": bool(stats),
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
            "services_dir": {"type": "path", "default": "/srv/hop3/services/postgres"},
            "host": {"type": "str", "default": "127.0.0.1"},
            "port": {"type": "int", "default": 5432},
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
            "(and not postgres, template0/1 or public)."
        )
    if app is not None and not APP_RE.fullmatch(app):
        module.fail_json(msg=f"'{app}' is not a valid app name.")
    installed = os.path.exists("/usr/bin/psql") and os.path.exists("/usr/lib/postgresql")

    if state == "list":
        databases = []
        directory = p["services_dir"]
        files = os.listdir(directory) if os.path.isdir(directory) else []
        names = sorted(f[:-5] for f in files if f.endswith(".json") and NAME_RE.fullmatch(f[:-5]))
        pg = Pg(module) if installed else None
        for db in names:
            record = load_record(module, db)
            databases.append(report(module, pg, db, record) if pg else {"name": db})
        module.exit_json(changed=False, databases=databases)

    if not installed:
        if state in ("absent", "unlink"):
            module.exit_json(changed=False, name=name, links=[])
        if state == "info":
            module.exit_json(changed=False, name=name, exists=False, links=[])
        module.fail_json(msg="PostgreSQL is not installed on this host: create a database first.")
    pg = Pg(module)

    if state == "present":
        changed, record = ensure_present(module, pg, name)
        module.exit_json(changed=changed, **report(module, pg, name, record))
    if state == "absent":
        module.exit_json(changed=ensure_absent(module, pg, name), name=name)

    record = load_record(module, name)
    if state == "info":
        module.exit_json(changed=False, **report(module, pg, name, record))
    if record is None or not pg.db_exists(name):
        if state == "unlink":
            module.exit_json(changed=False, name=name, links=[])
        module.fail_json(msg=f"There is no database named '{name}' on this host.")
    links = list(record.get("links", []))
    if state == "link" and app not in links:
        links.append(app)
    elif state == "unlink" and app in links:
        links.remove(app)
    changed = links != record.get("links", [])
    if changed:
        record["links"] = links
        save_record(module, name, record)
    module.exit_json(changed=changed, **report(module, pg, name, record))


if __name__ == "__main__":
    main()
