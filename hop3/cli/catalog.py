"""The app catalog: hop catalog list|show|lint|install|upgrade.

Install renders an entry into an app directory and deploys it like any app,
then sends its smoke check through nginx. Uninstall is `hop destroy NAME`.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from hop3.errors import HopError

from .appcommon import echo_lock_waits
from .apps import echo_deployed
from .catalog_common import check_version, install_version, refuse_other_app, smoke_all
from .catalog_upgrade import upgrade
from .options import RunOptions, json_option, run_options
from .output import raise_on_failure


@click.group()
def catalog() -> None:
    """Install F/OSS apps from Hop3's catalog with one command."""


@catalog.command("list")
@json_option
def list_entries(as_json: bool) -> None:
    """List the apps of the catalog."""
    from hop3.catalog import entry_paths, load_entry

    entries = [load_entry(path) for path in entry_paths().values()]
    if as_json:
        rows = [
            {
                "name": e.name,
                "title": e.title,
                "version": e.version,
                "runtime": e.runtime,
                "services": e.services,
                "source": e.source.kind,
                "description": e.description,
            }
            for e in entries
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(box=None, header_style="bold")
    for column in ("APP", "VERSION", "RUNTIME", "SERVICES", "DESCRIPTION"):
        table.add_column(column)
    for e in entries:
        table.add_row(e.name, e.version, e.runtime, ",".join(e.services) or "-", e.description)
    Console(highlight=False, soft_wrap=True).print(table)


@catalog.command()
@click.argument("app")
@json_option
def show(app: str, as_json: bool) -> None:
    """Show what installing APP gives: source, services, data, checks, versions."""
    from hop3.catalog import find_entry

    e = find_entry(app)
    if as_json:
        data = {
            "name": e.name,
            "title": e.title,
            "description": e.description,
            "upstream": e.upstream,
            "license": e.license,
            "version": e.version,
            "runtime": e.runtime,
            "source": e.source.__dict__,
            "services": e.services,
            "processes": e.processes,
            "data": e.data_paths,
            "smoke": {"path": e.smoke_path, "contains": e.smoke_contains},
            "versions": e.versions,
            "upgrade_notes": e.upgrade_notes,
        }
        click.echo(json.dumps(data, indent=2))
        return
    source = e.source.package or ", ".join(e.source.debian) or "files in the entry"
    click.echo(f"{e.title} ({e.name}) {e.version}: {e.description}")
    click.echo(f"  upstream:  {e.upstream}  licence: {e.license}")
    click.echo(f"  source:    {e.source.kind} {source}  runtime: {e.runtime}")
    click.echo(f"  services:  {', '.join(e.services) or 'none'}")
    click.echo(f"  processes: {', '.join(e.processes)}")
    click.echo(f"  data:      {', '.join(e.data_paths) or 'none'} (under shared/, backed up)")
    click.echo(f"  smoke:     GET {e.smoke_path} shows {e.smoke_contains!r}")
    click.echo("  versions:")
    for version, notes in e.versions.items():
        click.echo(f"    {version}: {notes}")
    if e.upgrade_notes:
        click.echo(f"  upgrades:  {e.upgrade_notes}")
    if e.install_notes:
        click.echo(f"  after install: {e.install_notes}")


@catalog.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path, dir_okay=False))
def lint(paths: tuple[Path, ...]) -> None:
    """Check catalog entries (default: all) against the schema."""
    from hop3.catalog import entry_paths, lint_entry

    files = list(paths) or list(entry_paths().values())
    failed = 0
    for path in files:
        try:
            entry = lint_entry(path)
        except HopError as exc:
            failed += 1
            click.secho(f"FAIL {path}", fg="red")
            click.echo("  " + exc.message.replace("\n", "\n  "))
        else:
            click.echo(f"ok   {path} ({entry.name} {entry.version})")
    if failed:
        raise HopError(
            f"{failed} of {len(files)} catalog entries have problems.", "Fix them as listed above."
        )
    click.echo(f"{len(files)} entries are valid.")


@catalog.command()
@click.argument("app")
@click.option("--name", help="Name of the installed app (default: the catalog name).")
@click.option("--domain", "domains", multiple=True, help="A domain to serve it on (repeatable).")
@click.option("--version", "version", help="Install this version (default: the entry's).")
@run_options
def install(
    app: str, name: str | None, domains: tuple[str, ...], version: str | None, opts: RunOptions
) -> None:
    """Install APP from the catalog on the target hosts, then smoke-check it."""
    from hop3.appspec import validate_app_name, validate_domain
    from hop3.catalog import find_entry

    entry = find_entry(app)
    name = validate_app_name(name or entry.name)
    domain_list = [validate_domain(d) for d in domains]
    version = check_version(entry, version or entry.version)
    refuse_other_app(name, entry.name, opts)
    with tempfile.TemporaryDirectory(prefix="hop3-catalog-") as tmp:
        _, result = install_version(
            entry, Path(tmp), name, version, domain_list, opts, verb="catalog:install"
        )
    if opts.json:
        click.echo(json.dumps({"app": name, "version": version, **result.to_dict()}, indent=2))
    raise_on_failure(result, opts.json)
    if not opts.json:
        echo_lock_waits(name, result.reports)
        echo_deployed(name, result.reports)
    smoke_all(entry, name, result.reports, opts)
    if not opts.json:
        click.echo(f"{entry.title} {version} is installed as {name}.")
        if entry.install_notes:
            click.echo(entry.install_notes.replace("{app}", name))


catalog.add_command(upgrade)

COMMANDS = [catalog]
