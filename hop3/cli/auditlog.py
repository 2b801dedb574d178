"""`hop audit:log`: who changed what, read from the audit log of each host
(/var/log/hop3/audit.jsonl and its rotations)."""

from __future__ import annotations

import json
import shlex
import sys

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hop3.errors import HopError

from .options import RunOptions, run_options
from .output import raise_on_failure

RESULT_COLOURS = {"ok": "green", "failed": "red", "denied": "yellow", "interrupted": "yellow"}


def since_time(text: str | None) -> str:
    """--since as an ISO 8601 UTC time ("" without it); a clear error when it is none."""
    if not text:
        return ""
    from hop3 import auditlog

    try:
        return auditlog.format_time(auditlog.parse_since(text))
    except ValueError as exc:
        raise HopError(
            f"--since {text!r} is not a time or a duration.",
            "Write a duration back from now (30m, 2h, 3d, 1w), a date (2026-11-01, midnight "
            "UTC) or an ISO 8601 time (2026-11-01T14:00Z).",
        ) from exc


@click.command("audit:log")
@click.argument("app", required=False)
@click.option("--since", help="Only entries since then: 30m, 2h, 3d, 1w, 2026-11-01, or ISO 8601.")
@click.option("-n", "--last", default=200, show_default=True, type=click.IntRange(0),
              help="At most this many entries per host, the newest (0: all).")  # fmt: skip
@run_options
def audit_log(app: str | None, since: str | None, last: int, opts: RunOptions) -> None:
    """Show the audit log: every state-changing action on the hosts, who did it and how
    it ended (from the controller, over SSH or by git push). Secret values are masked."""
    from hop3.runner import run_playbook
    from hop3.targets import resolve_target

    if app:
        from hop3.appspec import validate_app_name

        validate_app_name(app)
    since_iso = since_time(since)
    target = resolve_target(opts.target, opts.inventory)
    result = run_playbook(
        "auditlog",
        inventory=target.inventory,
        limit=target.limit,
        verb="audit:log",
        extravars={
            "hop3_auditlog_app": app or "",
            "hop3_auditlog_since": since_iso,
            "hop3_auditlog_limit": last,
        },
        verbose=opts.verbose,
        quiet=True,
        record=False,
    )
    entries = merged_entries(result.reports)
    if opts.json:
        click.echo(json.dumps(entries, indent=2))
    else:
        render(entries)
    raise_on_failure(result, opts.json)


def merged_entries(reports: dict) -> list[dict]:
    """The entries of every host, oldest first."""
    entries = [entry for report in reports.values() for entry in report.get("entries", [])]
    return sorted(entries, key=lambda e: (str(e.get("time", "")), str(e.get("host", ""))))


def command_text(entry: dict) -> str:
    """The command as typed, and the step when it is not the command's own verb."""
    command = [str(a) for a in entry.get("command") or []]
    text = shlex.join(command)
    step = entry.get("step")
    words = [a for a in command[1:3] if not a.startswith("-")]
    if step and step not in (*words[:1], ":".join(words[:2])):
        text += f"  [{step}]"
    return text


def render(entries: list[dict]) -> None:
    if not entries:
        click.echo("No entries.")
        return
    table = Table("time", "host", "user", "via", "command", "app", "result", "release")
    for entry in entries:
        result = str(entry.get("result", "?"))
        if entry.get("error"):
            result += f": {entry['error']}"
        colour = RESULT_COLOURS.get(str(entry.get("result")), "white")
        # The log holds what users typed: it is shown as text, never as markup.
        table.add_row(
            *(escape(str(entry.get(k) or "-")) for k in ("time", "host", "user", "via")),
            escape(command_text(entry)),
            escape(str(entry.get("app") or "-")),
            f"[{colour}]{escape(result)}[/]",
            escape(str(entry.get("release") or "-")),
        )
    # Piped output (grep, a file) gets whole lines rather than the default 80 columns.
    Console(width=None if sys.stdout.isatty() else 250).print(table)


COMMANDS = [audit_log]
