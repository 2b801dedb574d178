"""Entry point: the `hop` command group and friendly error handling."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.markup import escape

from hop3 import __version__
from hop3.errors import HopError

from . import (
    apps,
    audit,
    auditlog,
    backup,
    catalog,
    certs,
    config,
    firewall,
    logs,
    mariadb,
    pg,
    platform,
    redis,
    remote_mode,
    sandbox,
    sbom,
    server,
    unlock,
    users,
)


def _remote_placeholder(ctx, param, value):
    # main() sends --remote calls over SSH before click runs; this only documents it.
    if value:
        raise click.UsageError("--remote must come first: hop --remote hop3@HOST COMMAND ...")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hop")
@click.option(
    "--remote",
    metavar="USER@HOST",
    expose_value=False,
    callback=_remote_placeholder,
    help="Run the command on HOST through its hop3 user (ssh hop3@HOST COMMAND), "
    "e.g. without an inventory. Default, with no inventory: the git remote 'hop3'.",
)
def cli() -> None:
    """Hop3: deploy and run apps on servers you own, driven by Ansible."""


cli.add_command(server.server)
cli.add_command(sandbox.sandbox)
for command in [
    *platform.COMMANDS,
    *apps.COMMANDS,
    *config.COMMANDS,
    *logs.COMMANDS,
    *sbom.COMMANDS,
    *pg.COMMANDS,
    *redis.COMMANDS,
    *mariadb.COMMANDS,
    *backup.COMMANDS,
    *firewall.COMMANDS,
    *audit.COMMANDS,
    *auditlog.COMMANDS,
    *certs.COMMANDS,
    *users.COMMANDS,
    *catalog.COMMANDS,
    *unlock.COMMANDS,
]:
    cli.add_command(command)


def main() -> None:
    try:
        remote = remote_mode.remote_for(sys.argv[1:])
        if remote:
            sys.exit(remote_mode.forward(*remote))
        # Without standalone mode, click returns the code of an Exit (e.g. a
        # failed run with --json) instead of exiting with it.
        code = cli.main(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except HopError as err:
        console = Console(stderr=True, highlight=False, soft_wrap=True)
        # Messages quote user input (e.g. "[bulid]"): never read them as markup.
        text = f"[bold red]Error:[/] {escape(err.message)}"
        if err.hint:
            text += ("\n" if "\n" in err.message else " ") + escape(err.hint)
        console.print(text)
        sys.exit(err.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
