"""PostgreSQL databases for apps: pg:create, pg:list, pg:info, pg:link,
pg:unlink, pg:destroy, pg:psql.

Each database has a login role of the same name whose password is generated
on the host and kept there; `pg:link` hands its URL to an app as
DATABASE_URL. Secrets are shown only with `pg:info --show-secrets`.
"""

from __future__ import annotations

import json
import re

import click

from hop3.errors import HopError

from .options import RunOptions, run_options
from .output import finish, raise_on_failure

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


def run_pg(action: str, opts: RunOptions, quiet: bool | None = None, **extra):
    """Run playbooks/pg.yml with ``action`` on the command's target; return the result."""
    from hop3.runner import run_playbook
    from hop3.targets import resolve_target

    target = resolve_target(opts.target, opts.inventory)
    return run_playbook(
        "pg",
        inventory=target.inventory,
        limit=target.limit,
        verb=f"pg:{action}",
        extravars={"hop3_pg_action": action, **extra},
        verbose=opts.verbose,
        quiet=opts.json if quiet is None else quiet,
        record=action not in ("list", "info"),
    )


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


@click.command("pg:create")
@click.argument("name")
@run_options
def pg_create(name: str, opts: RunOptions) -> None:
    """Create database NAME with its own login role (installs PostgreSQL on first use)."""
    validate_db_name(name)
    result = run_pg("create", opts, hop3_postgresql_name=name)
    message = f"Database {name} is ready." if result.changed else f"Database {name} exists."
    finish(result, opts.json, success=message + f" Use it with `hop pg:link {name} APP`.")


@click.command("pg:list")
@run_options
def pg_list(opts: RunOptions) -> None:
    """List the databases on the target's hosts."""
    result = run_pg("list", opts, quiet=True)
    raise_on_failure(result, opts.json)
    per_host = {h: r.get("databases", []) for h, r in sorted(result.reports.items())}
    if opts.json:
        click.echo(json.dumps(per_host, indent=2))
        return
    rows = [(h, db) for h, dbs in per_host.items() for db in dbs]
    if not rows:
        click.echo("No databases. Create one with `hop pg:create NAME`.")
        return
    click.echo(f"{'HOST':<16} {'NAME':<24} {'SIZE':>10} {'CONN':>5}  LINKED APPS")
    for host, db in rows:
        links = ", ".join(db.get("links", [])) or "-"
        size = human_size(int(db.get("size", 0)))
        click.echo(f"{host:<16} {db['name']:<24} {size:>10} {db.get('connections', 0):>5}  {links}")


@click.command("pg:info")
@click.argument("name")
@click.option("--show-secrets", is_flag=True, help="Also print the connection URL (password).")
@run_options
def pg_info(name: str, show_secrets: bool, opts: RunOptions) -> None:
    """Show database NAME: size, linked apps, connections."""
    validate_db_name(name)
    result = run_pg(
        "info", opts, quiet=True, hop3_postgresql_name=name,
        hop3_postgresql_show_secrets=show_secrets,
    )  # fmt: skip
    raise_on_failure(result, opts.json)
    if show_secrets:
        # The URL is in this run's events: keep no copy of it on the controller.
        import shutil

        shutil.rmtree(result.run_dir, ignore_errors=True)
    reports = {h: r for h, r in sorted(result.reports.items()) if r.get("exists")}
    if not reports:
        where = ", ".join(sorted(result.reports)) or "the target"
        raise HopError(f"There is no database named '{name}' on {where}.",
                       "`hop pg:list` lists the databases.")  # fmt: skip
    if opts.json:
        click.echo(json.dumps(reports, indent=2))
        return
    for host, report in reports.items():
        if len(reports) > 1:
            click.echo(f"==> {host} <==")
        click.echo(f"Name:        {report['name']}")
        click.echo(f"Host:        {host} ({report.get('host')}:{report.get('port')})")
        click.echo(f"Size:        {human_size(int(report.get('size', 0)))}")
        click.echo(f"Connections: {report.get('connections', 0)}")
        click.echo(f"Linked apps: {', '.join(report.get('links', [])) or '-'}")
        if "url" in report:
            click.echo(f"URL:         {report['url']}")


def _link_command(name: str, verb: str):
    linking = verb == "link"

    @click.command(
        name,
        help=(
            "Set DATABASE_URL of APP to database NAME and restart APP without downtime."
            if linking
            else "Remove DATABASE_URL from APP and restart it without downtime."
        ),
    )
    @click.argument("name")
    @click.argument("app")
    @click.option("--no-restart", is_flag=True, help="Store the change; processes see it later.")
    @run_options
    def command(name: str, app: str, no_restart: bool, opts: RunOptions) -> None:
        from hop3.appspec import validate_app_name

        validate_db_name(name)
        validate_app_name(app)
        result = run_pg(
            verb, opts, hop3_postgresql_name=name, hop3_postgresql_app=app,
            hop3_postgresql_restart=not no_restart,
        )  # fmt: skip
        done = (
            f"Linked {name} to {app} (DATABASE_URL)." if linking else f"Unlinked {name} from {app}."
        )
        finish(result, opts.json, success=done)

    return command


pg_link = _link_command("pg:link", "link")
pg_unlink = _link_command("pg:unlink", "unlink")


@click.command("pg:destroy")
@click.argument("name")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@run_options
def pg_destroy(name: str, yes: bool, opts: RunOptions) -> None:
    """Drop database NAME, its role and its credentials. Its data is lost."""
    validate_db_name(name)
    if not yes:
        click.confirm(f"Drop database {name} and all its data?", abort=True)
    result = run_pg("destroy", opts, hop3_postgresql_name=name)
    finish(result, opts.json, success=f"Destroyed database {name}.")


@click.command("pg:psql")
@click.argument("name")
@run_options
def pg_psql(name: str, opts: RunOptions) -> None:
    """Open psql on database NAME (as the postgres superuser, on one host)."""
    import os
    import subprocess

    from hop3.remote import ssh_args
    from hop3.targets import resolve_target

    validate_db_name(name)
    target = resolve_target(opts.target, opts.inventory)
    if len(target.hosts) != 1:
        raise HopError(
            f"pg:psql opens one host, but the target has {len(target.hosts)}.",
            f"Pick one with -t ({', '.join(target.hosts)}).",
        )
    remote = ["env", "-C", "/", "runuser", "-u", "postgres", "--", "psql", "--", name]
    args = ssh_args(target, target.hosts[0], remote, tty=os.isatty(0))
    raise SystemExit(subprocess.run(args, check=False).returncode)


COMMANDS = [pg_create, pg_list, pg_info, pg_link, pg_unlink, pg_destroy, pg_psql]
