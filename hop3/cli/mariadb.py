"""MariaDB databases for apps: mariadb:create, mariadb:list, mariadb:info,
mariadb:link, mariadb:unlink, mariadb:destroy.

Each database has a user of the same name whose password is generated on the
host and kept there; `mariadb:link` hands its credentials to an app as
DATABASE_URL and MARIADB_HOST/PORT/DATABASE/USER/PASSWORD (what an
``[[addons]] type = "mariadb"`` gives on deploy). Secrets are shown only with
`mariadb:info --show-secrets`.
"""

from __future__ import annotations

import re

from hop3.errors import HopError

from . import services
from .pg import human_size

DB_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
RESERVED_DB_NAMES = frozenset({"mysql", "information_schema", "performance_schema", "sys"})


def validate_db_name(name: str) -> str:
    """Return ``name`` if it can name a database (and its user), else raise ``HopError``."""
    if not DB_NAME_RE.fullmatch(name):
        raise HopError(
            f"'{name}' is not a valid database name.",
            "Use 1 to 63 lowercase letters, digits and underscores, starting with a letter "
            "(e.g. wiki_db).",
        )
    if name in RESERVED_DB_NAMES:
        raise HopError(
            f"'{name}' is reserved by MariaDB.",
            f"Pick another name (reserved: {', '.join(sorted(RESERVED_DB_NAMES))}).",
        )
    return name


MARIADB = services.Service(
    prefix="mariadb", kind="MariaDB database", plural="databases", playbook="mariadb",
    var_prefix="hop3_mariadb_", env="DATABASE_URL and MARIADB_*",
    linked="DATABASE_URL, MARIADB_HOST, MARIADB_PORT, MARIADB_DATABASE, MARIADB_USER, "
    "MARIADB_PASSWORD", validate=validate_db_name,
)  # fmt: skip


def _list_row(host: str, db: dict) -> str:
    links = ", ".join(db.get("links", [])) or "-"
    size = human_size(int(db.get("size", 0)))
    return f"{host:<16} {db['name']:<24} {size:>10} {db.get('connections', 0):>5}  {links}"


def _info_details(name: str, report: dict) -> list[tuple[str, object]]:
    return [
        ("Size", human_size(int(report.get("size", 0)))),
        ("Connections", report.get("connections", 0)),
    ]


mariadb_create = services.create_command(
    MARIADB, "Create MariaDB database NAME with its own user (installs MariaDB on first use).",
    label="MariaDB database",
)  # fmt: skip
mariadb_list = services.list_command(
    MARIADB, "List the MariaDB databases on the target's hosts.", key="databases",
    empty="No MariaDB databases. Create one with `hop mariadb:create NAME`.",
    header=f"{'HOST':<16} {'NAME':<24} {'SIZE':>10} {'CONN':>5}  LINKED APPS", row=_list_row,
)  # fmt: skip
mariadb_info = services.info_command(
    MARIADB, "Show MariaDB database NAME: size, linked apps, connections.",
    secrets_help="Also print the connection URL (password).", details=_info_details,
)  # fmt: skip
mariadb_link, mariadb_unlink = services.link_commands(MARIADB)
mariadb_destroy = services.destroy_command(
    MARIADB, "Drop MariaDB database NAME, its user and its credentials. Its data is lost.",
    confirm="Drop MariaDB database {name} and all its data?",
)  # fmt: skip

COMMANDS = [
    mariadb_create, mariadb_list, mariadb_info, mariadb_link, mariadb_unlink, mariadb_destroy,
]  # fmt: skip
