"""`hop sandbox`: local Debian 12 test hosts (systemd-nspawn)."""

from __future__ import annotations

import json
import os

import click
from rich.console import Console
from rich.table import Table

from .options import json_option


@click.group()
def sandbox() -> None:
    """Local Debian 12 test hosts: a playground and the test bed (needs root)."""


@sandbox.command()
@click.option("-n", "--count", default=1, show_default=True, help="How many hosts to run.")
@click.option("--fresh", is_flag=True, help="Wipe every host's disk and boot it clean.")
@click.option(
    "--image",
    "image_kind",
    type=click.Choice(["bare", "converged"]),
    default="bare",
    show_default=True,
    help="What new hosts boot from: bare Debian 12, or the same with `hop setup` "
    "already applied (built once and cached; hosts that run keep their image).",
)
@json_option
def up(count: int, fresh: bool, image_kind: str, as_json: bool) -> None:
    """Boot sandbox-1..N (idempotent) and register them as target 'sandbox'."""
    from hop3 import sandbox as sb

    echo = (lambda _msg: None) if as_json else click.echo
    hosts = sb.up(count, fresh=fresh, echo=echo, image_kind=image_kind)
    if as_json:
        click.echo(json.dumps([{"name": h.name, "address": h.address} for h in hosts]))
        return
    for host in hosts:
        click.echo(f"{host.name}  {host.address}  running")
    click.echo("Registered as target 'sandbox'; try `hop setup -t sandbox`.")


@sandbox.command()
@click.argument("hosts", nargs=-1, metavar="[HOST]...")
def down(hosts: tuple[str, ...]) -> None:
    """Stop every sandbox host (or only each HOST) and remove its network and inventory
    entries. Without HOST, also remove the bridge."""
    from hop3 import sandbox as sb

    stopped = sb.down(hosts)
    if hosts:
        click.echo(f"Removed {', '.join(stopped)}.")
    else:
        click.echo(f"Removed {len(stopped)} sandbox host(s)." if stopped else "No sandbox hosts.")


@sandbox.command()
@click.argument("hosts", nargs=-1, metavar="[HOST]...")
@json_option
def reboot(hosts: tuple[str, ...], as_json: bool) -> None:
    """Reboot every sandbox host (or each HOST), keeping its disk, and wait until
    SSH answers again."""
    from hop3 import sandbox as sb

    rebooted = sb.reboot(*hosts)
    if as_json:
        click.echo(json.dumps([{"name": h.name, "address": h.address} for h in rebooted]))
        return
    for host in rebooted:
        click.echo(f"{host.name}  {host.address}  rebooted")


@sandbox.command()
@json_option
def status(as_json: bool) -> None:
    """List sandbox hosts and whether they run and answer SSH."""
    from hop3 import sandbox as sb

    rows = sb.status()
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("No sandbox hosts. Boot some with `hop sandbox up -n 1`.")
        return
    table = Table("host", "address", "state", "ssh", "uptime")
    for row in rows:
        state = "[green]running[/]" if row["running"] else "[red]stopped[/]"
        ssh = "yes" if row["ssh"] else "no"
        uptime = f"{row['uptime_s']} s" if row["uptime_s"] is not None else "-"
        table.add_row(row["name"], row["address"], state, ssh, uptime)
    Console().print(table)


@sandbox.command(context_settings={"ignore_unknown_options": True})
@click.argument("host")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh(host: str, command: tuple[str, ...]) -> None:
    """Open a root shell on HOST (or run COMMAND there)."""
    from hop3.sandbox.hosts import find, ssh_command

    args = ssh_command(find(host), *command)
    if not command:
        args.insert(1, "-t")
    os.execvp(args[0], args)
