"""PostgreSQL databases for apps: pg:create, pg:list, pg:info, pg:link,
pg:unlink, pg:destroy, pg:psql.

Each database has a login role of the same name whose password is generated
on the host and kept there; `pg:link` hands its URL to an app as
DATABASE_URL. Secrets are shown only with `pg:info --show-secrets`.
"""

from __future__ import annotations

import re

import click

from hop3.errors import HopError

from . import services
from .options import RunOptions, run_options

DB_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
RESERVED_DB_NAMES = frozenset({"postgres", "template0", "template1", "public"})


def validate_db_name(name: str) -> str:
    """Return ``name`` if it can name a database (and its role), else raise ``HopError``."""
    if not DB_NAME_RE.fullmatch(name):
        raise HopError(
            f"'{name}' is not a valid database name.",
            "Use 1 to 63 lowercase letters, digits and underscores, starting with a letter "
            "(e.g. shop_db).",
        )
    if name in RESERVED_DB_NAMES:
        raise HopError(
            f"'{name}' is reserved by PostgreSQL.",
            f"Pick another name (reserved: {', '.join(sorted(RESERVED_DB_NAMES))}).",
        )
    return name


PG = services.Service(
    prefix="pg", kind="database", plural="databases", playbook="pg",
    var_prefix="hop3_postgresql_", env="DATABASE_URL", linked="DATABASE_URL",
    validate=validate_db_name,
)  # fmt: skip


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def _list_row(host: str, db: dict) -> str:
    links = ", ".join(db.get("links", [])) or "-"
    size = human_size(int(db.get("size", 0)))
    return f"{host:<16} {db['name']:<24} {size:>10} {db.get('connections', 0):>5}  {links}"


def _info_details(name: str, report: dict) -> list[tuple[str, object]]:
    return [
        ("Size", human_size(int(report.get("size", 0)))),
        ("Connections", report.get("connections", 0)),
    ]


pg_create = services.create_command(
    PG, "Create database NAME with its own login role (installs PostgreSQL on first use).",
    label="Database",
)  # fmt: skip
pg_list = services.list_command(
    PG, "List the databases on the target's hosts.", key="databases",
    empty="No databases. Create one with `hop pg:create NAME`.",
    header=f"{'HOST':<16} {'NAME':<24} {'SIZE':>10} {'CONN':>5}  LINKED APPS", row=_list_row,
)  # fmt: skip
pg_info = services.info_command(
    PG, "Show database NAME: size, linked apps, connections.",
    secrets_help="Also print the connection URL (password).", details=_info_details,
)  # fmt: skip
pg_link, pg_unlink = services.link_commands(PG)
pg_destroy = services.destroy_command(
    PG, "Drop database NAME, its role and its credentials. Its data is lost.",
    confirm="Drop database {name} and all its data?",
)  # fmt: skip


@click.command("pg:psql")
@click.argument("name")
@run_options
def pg_psql(name: str, opts: RunOptions) -> None:
    """Open psql on database NAME (as the postgres superuser, on one host)."""
    validate_db_name(name)
    services.open_shell(
        "pg:psql", opts, ["env", "-C", "/", "runuser", "-u", "postgres", "--", "psql", "--", name]
    )


COMMANDS = [pg_create, pg_list, pg_info, pg_link, pg_unlink, pg_destroy, pg_psql]
