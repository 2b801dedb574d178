"""Commands that act on whole hosts: `hop setup`, `hop status`, `hop history`."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from .options import RunOptions, json_option, run_options
from .output import finish, raise_on_failure


@click.command()
@click.option(
    "--full",
    is_flag=True,
    help="Run every step, even on hosts that are as their last setup left them.",
)
@run_options
def setup(opts: RunOptions, full: bool) -> None:
    """Converge hosts into Hop3 servers (safe to run again).

    Installs base packages and nginx (404 for unknown hosts), lays out
    /srv/hop3, turns on unattended security upgrades, hardens SSH (keys only),
    bounds journald, enables time sync, turns on the firewall (inbound: SSH,
    80 and 443 only) and fail2ban for SSH, installs this Hop3 in /opt/hop3
    (offline, from a wheelhouse built here) and the `hop3` SSH user. Hosts of
    a group run in parallel.

    A host on which nothing changed since its last setup (the same Hop3 and
    variables; every file, package, unit and firewall rule that setup manages
    as it left them) is checked in one step and left out; --full runs every
    step anyway.
    """
    from hop3 import wheelhouse
    from hop3.runner import many_calls_strategy, run_playbook
    from hop3.targets import resolve_target

    target = resolve_target(opts.target, opts.inventory)
    archive, sha256 = wheelhouse.ensure_wheelhouse()
    extravars = wheelhouse.setup_extravars(archive, sha256)
    extravars["hop3_setup_strategy"] = many_calls_strategy()
    if full:
        extravars["hop3_setup_state_full"] = True
    result = run_playbook(
        "setup",
        inventory=target.inventory,
        limit=target.limit,
        verb="setup",
        extravars=extravars,
        verbose=opts.verbose,
        quiet=opts.json,
    )
    summary = [f"Set up {len(result.stats)} host(s); {result.changed} change(s)."]
    summary += setup_steps_summary(result.reports, opts.verbose)
    finish(result, opts.json, success="\n".join(summary))


def setup_steps_summary(reports: dict, verbose: int) -> list[str]:
    """Which hosts were left out (nothing changed) and, with -v, why the others were not."""
    unchanged = sorted(h for h, r in reports.items() if r.get("setup") == "unchanged")
    lines = []
    if unchanged:
        lines.append(
            f"Unchanged since their last setup, checked in one step: {', '.join(unchanged)} "
            "(hop setup --full runs every step)."
        )
    if verbose:
        for host in sorted(h for h, r in reports.items() if r.get("setup") == "converging"):
            lines.append(f"{host}: every step ran: {reports[host].get('reason', '?')}.")
    return lines


@click.command()
@run_options
def status(opts: RunOptions) -> None:
    """Report OS, uptime, disk, memory, Hop3 version and services per host."""
    from hop3.runner import run_playbook
    from hop3.targets import resolve_target

    target = resolve_target(opts.target, opts.inventory)
    result = run_playbook(
        "status",
        inventory=target.inventory,
        limit=target.limit,
        verb="status",
        verbose=opts.verbose,
        quiet=True,
        record=False,
    )
    if opts.json:
        click.echo(json.dumps({"hosts": result.reports, **result.to_dict()}, indent=2))
    else:
        _print_status(result)
    raise_on_failure(result, opts.json)


def _print_status(result) -> None:
    """One block per host: a headline, then aligned key/value lines (fits any width)."""
    console = Console(highlight=False)
    for host in sorted(set(result.stats) | set(result.reports)):
        report = result.reports.get(host)
        if report is None:
            console.print(f"[bold]{host}[/]  [red]unreachable or failed[/] (see below)")
            continue
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim")
        grid.add_column()
        grid.add_row("os", f"{report.get('os', '?')}, kernel {report.get('kernel', '?')}")
        grid.add_row("uptime", _duration(report.get("uptime_s")))
        grid.add_row("load", " ".join(str(x) for x in report.get("load", [])))
        grid.add_row(
            "memory",
            f"{report.get('memory_available_mb', '?')} of "
            f"{report.get('memory_total_mb', '?')} MB available",
        )
        grid.add_row(
            "disk /",
            f"{report.get('disk_free_gb', '?')} of {report.get('disk_total_gb', '?')} GB free",
        )
        grid.add_row("hop3", report.get("hop3_version") or "[yellow]not set up (run hop setup)[/]")
        for name, state in report.get("services", {}).items():
            colour = {"active": "green", "failed": "red"}.get(state, "yellow")
            grid.add_row(name, f"[{colour}]{state}[/]")
        console.print(f"[bold]{host}[/]")
        console.print(grid)


def _duration(seconds) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days}d {hours}h" if days else f"{hours}h {rest // 60}m"


@click.command()
@click.option("-n", "--limit", default=20, show_default=True, help="How many runs to show.")
@json_option
def history(limit: int, as_json: bool) -> None:
    """List past runs: when, what, on which target, result, changes."""
    from hop3 import history as runs

    entries = runs.load(limit)
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    if not entries:
        click.echo("No runs yet.")
        return
    table = Table("id", "time", "verb", "target", "result", "changed", "duration")
    for entry in entries:
        colour = "green" if entry["result"] == "successful" else "red"
        table.add_row(
            str(entry["id"]),
            entry["time"],
            entry["verb"],
            entry["target"],
            f"[{colour}]{entry['result']}[/]",
            str(entry["changed"]),
            f"{entry['duration']} s",
        )
    Console().print(table)


COMMANDS = [setup, status, history]
