"""`hop audit`: a security report of each host, with the fix for each finding."""

from __future__ import annotations

import json

import click

from hop3.errors import HopError

from .options import RunOptions, run_options
from .output import raise_on_failure

COLOURS = {"pass": "green", "warn": "yellow", "fail": "red"}


@click.command()
@run_options
def audit(opts: RunOptions) -> None:
    """Check each host's security: firewall, SSH, upgrades, certificates, WAF, secrets.

    Every check reads the host and changes nothing. Exits 1 when a check
    fails (warnings alone exit 0), so it can gate a pipeline.
    """
    from hop3.runner import run_playbook
    from hop3.targets import resolve_target

    target = resolve_target(opts.target, opts.inventory)
    result = run_playbook("audit", inventory=target.inventory, limit=target.limit, verb="audit",
                          quiet=True, record=False, verbose=opts.verbose)  # fmt: skip
    raise_on_failure(result, opts.json)
    reports = dict(sorted(result.reports.items()))
    failed = sum(r["counts"]["fail"] for r in reports.values())
    if opts.json:
        click.echo(json.dumps(reports, indent=2))
    else:
        render(reports)
    if failed:
        if opts.json:
            raise click.exceptions.Exit(1)
        raise HopError(
            f"{failed} check(s) failed.", "Apply the fixes listed above, then audit again."
        )


def render(reports: dict) -> None:
    """One line per check (status, title, what was found), its fix below it;
    plain lines read as well in a terminal as in a CI log."""
    for host, report in reports.items():
        click.secho(host, bold=True)
        for item in report["checks"]:
            status = click.style(f"{item['status']:<4}", fg=COLOURS[item["status"]], bold=True)
            click.echo(f"  {status}  {item['title']}: {item['found']}")
            if item["fix"]:
                click.echo(f"        fix: {item['fix']}")
        counts = report["counts"]
        click.echo(f"{host}: {counts['pass']} pass, {counts['warn']} warn, {counts['fail']} fail")


COMMANDS = [audit]
