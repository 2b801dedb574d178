"""Commands that talk to a host live over SSH: logs and run."""

from __future__ import annotations

import os
import subprocess

import click

from hop3.errors import HopError

from .options import RunOptions, run_options


def _single_host(opts: RunOptions, follow: bool, what: str):
    from hop3.targets import resolve_target

    target = resolve_target(opts.target, opts.inventory)
    if follow and len(target.hosts) > 1:
        raise HopError(
            f"{what} follows one host, but the target has {len(target.hosts)}.",
            f"Pick one with -t ({', '.join(target.hosts)}).",
        )
    return target


@click.command()
@click.argument("app")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("-p", "--process", help="Only this process type (web, worker, cron-1...).")
@click.option("-n", "--lines", default=100, show_default=True, help="How many past lines.")
@run_options
def logs(app: str, follow: bool, process: str | None, lines: int, opts: RunOptions) -> None:
    """Show APP's logs (journald) from its hosts."""
    from hop3.appspec import validate_app_name
    from hop3.remote import ssh_args

    validate_app_name(app)
    if process is not None and not process.replace("-", "").replace("_", "").isalnum():
        raise HopError(f"'{process}' is not a process name.", "Use e.g. -p web or -p worker.")
    target = _single_host(opts, follow, "hop logs -f")
    unit = f"hop3-{app}-{process}*" if process else f"hop3-{app}-*"
    command = ["journalctl", "--no-pager", "-o", "short-iso", "-n", str(lines), "-u", unit]
    if follow:
        command.append("-f")
    for host in target.hosts:
        if len(target.hosts) > 1:
            click.echo(f"==> {host} <==")
        args = ssh_args(target, host, command)
        if follow:
            os.execvp(args[0], args)
        subprocess.run(args, check=False)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("app")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@run_options
def run(app: str, command: tuple[str, ...], opts: RunOptions) -> None:
    """Run COMMAND in APP's current release, as its user, with its config.

    Example: hop run shop -- python manage.py createsuperuser
    """
    from hop3.appspec import validate_app_name
    from hop3.remote import ssh_args

    validate_app_name(app)
    target = _single_host(opts, True, "hop run")
    remote = ["runuser", "-u", app, "--", "/usr/bin/python3", "/usr/local/lib/hop3/hop3-launch",
              "--exec", app, "current", *command]  # fmt: skip
    args = ssh_args(target, target.hosts[0], remote, tty=os.isatty(0))
    raise SystemExit(subprocess.run(args, check=False).returncode)


COMMANDS = [logs, run]
