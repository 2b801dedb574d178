"""`hop server`: the servers Hop3 manages (its own Ansible inventory)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .options import json_option


@click.group()
def server() -> None:
    """Register, list and remove your servers (Hop3's Ansible inventory)."""


@server.command()
@click.argument("name")
@click.argument("address", metavar="[USER@]HOST[:PORT]")
@click.option(
    "-g",
    "--group",
    "groups",
    multiple=True,
    help="Put the server in this group (repeatable), e.g. --group web.",
)
@click.option("--force", is_flag=True, help="Replace a server already registered as NAME.")
def add(name: str, address: str, groups: tuple[str, ...], force: bool) -> None:
    """Register a server as NAME, reached over SSH at [USER@]HOST[:PORT].

    USER defaults to root; another user gets `become` (sudo). An IPv6 address
    with a port is written [2001:db8::1]:2222. Example:

        hop server add web-1 deploy@203.0.113.10:2222 --group web
    """
    from hop3 import targets

    existed = name in targets.load_inventory(targets.hop_inventory_path()).host_map
    changed = targets.add_server(name, address, groups, force=force)
    entry = next(s for s in targets.list_servers() if s["name"] == name)
    where = f" in {', '.join(entry['groups'])}" if entry["groups"] else ""
    if not changed:
        click.echo(f"Server {name} is already registered as {entry['address']}{where}.")
    else:
        verb = "Replaced" if existed else "Added"
        click.echo(f"{verb} server {name} ({entry['address']}){where}.")


@server.command("list")
@click.option(
    "-i",
    "--inventory",
    type=click.Path(path_type=Path, dir_okay=True),
    envvar="HOP3_INVENTORY",
    help="List the hosts of this Ansible inventory instead of Hop3's own.",
)
@json_option
def list_(inventory: Path | None, as_json: bool) -> None:
    """List servers: name, address (user@host:port) and groups."""
    from hop3.targets import list_servers

    rows = list_servers(inventory)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(
            "No servers configured. Add one with `hop server add NAME user@host` "
            "or boot local test hosts with `hop sandbox up`."
        )
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "address", "groups")
    for row in rows:
        table.add_row(row["name"], row["address"], ", ".join(row["groups"]) or "-")
    Console(highlight=False).print(table)


@server.command()
@click.argument("name")
def remove(name: str) -> None:
    """Forget server NAME (from every group; groups left empty go too).

    Nothing is changed on the server itself.
    """
    from hop3.targets import remove_server

    remove_server(name)
    click.echo(f"Removed server {name}.")
