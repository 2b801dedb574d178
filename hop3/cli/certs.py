"""hop certs: the TLS certificates of an app, per host and per domain."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hop3.errors import HopError

from .options import RunOptions, run_options
from .output import raise_on_failure


@click.command()
@click.argument("app")
@run_options
def certs(app: str, opts: RunOptions) -> None:
    """Show APP's certificates: per host, each domain's mode, issuer and expiry."""
    from hop3.appspec import validate_app_name
    from hop3.runner import run_playbook
    from hop3.targets import resolve_target

    validate_app_name(app)
    target = resolve_target(opts.target, opts.inventory)
    # Read-only: like `hop apps`, it leaves no entry in the run history.
    result = run_playbook("certs", inventory=target.inventory, limit=target.limit, verb="certs",
                          extravars={"hop3_app_name": app}, verbose=opts.verbose, quiet=True,
                          record=False)  # fmt: skip
    raise_on_failure(result, opts.json)
    reports = {host: r for host, r in sorted(result.reports.items()) if r.get("exists")}
    if not reports:
        where = ", ".join(sorted(result.reports)) or "the target"
        raise HopError(
            f"There is no app named '{app}' on {where}.",
            "`hop apps` lists the apps; deploy one with `hop deploy PATH --app NAME`.",
        )
    if opts.json:
        click.echo(json.dumps(reports, indent=2))
        return
    table = Table()
    for column in ("host", "domain", "mode", "issuer", "expires", "days left"):
        table.add_column(column, overflow="fold")
    for host, report in reports.items():
        certificate = report.get("certificate") or {}
        domains = report.get("domains") or []
        if not domains:
            table.add_row(escape(host), "-", escape(report.get("mode") or "off"), "-", "-", "-")
        for domain in domains:
            table.add_row(escape(host), escape(domain["name"]), *_columns(domain, certificate))
    console = Console()
    if not console.is_terminal:  # a pipe or a file: whole lines, nothing folded
        console = Console(width=200)
    console.print(table)


def _columns(domain: dict, certificate: dict) -> tuple[str, str, str, str]:
    mode = domain["mode"]
    if mode == "off":
        return "off", "-", "-", "-"
    if not domain["covered"]:
        why = "not covered" if certificate else "no certificate yet"
        return escape(mode), f"[yellow]{why}[/]", "-", "-"
    days = certificate.get("days_left")
    colour = "red" if days is not None and days < 14 else "green"
    return (
        escape(mode),
        escape(domain["issuer"] or "-"),
        escape(domain["not_after"] or "-"),
        f"[{colour}]{days}[/]" if days is not None else "-",
    )


COMMANDS = [certs]
