"""hop unlock: remove an app's lock that its holder no longer needs (an admin's tool).

A lock whose holder died is taken over automatically once its lease runs out
(hop3_app_lock_timeout, 45 s); `hop unlock` is for the case that cannot wait,
or a holder that is alive but stuck. Removing it is recorded in the audit log.
"""

from __future__ import annotations

import json
import time

import click

from .appcommon import run_app_playbook
from .options import RunOptions, run_options
from .output import raise_on_failure


def describe_holder(host: str, holder: dict | None, now: float | None = None) -> str:
    """One line about a lock record (without its token), for humans."""
    if not holder:
        return f"{host}: not locked"
    now = time.time() if now is None else now
    since = float(holder.get("since") or now)
    renewed = float(holder.get("renewed") or since)
    who = holder.get("controller") or "an unknown controller"
    run = f", run {holder['run']}" if holder.get("run") else ""
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(since))
    return (
        f"{host}: held by a {holder.get('operation') or 'operation'} started at {started} "
        f"({now - since:.0f} s ago) by {who}{run}; last renewed {max(0.0, now - renewed):.0f} s ago"
    )


@click.command()
@click.argument("app")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@run_options
def unlock(app: str, yes: bool, opts: RunOptions) -> None:
    """Show who holds APP's lock and remove it (admin).

    Only for a holder that is gone or stuck: the operation that holds the lock
    loses it and stops at its next step. A dead holder's lock is taken over
    automatically 45 s after it stopped renewing it.
    """
    _, shown = run_app_playbook(
        "unlock", app, opts, "unlock:show", quiet=True, hop3_app_lock_admin_action="show"
    )
    raise_on_failure(shown, opts.json)
    held = {host: r.get("holder") for host, r in sorted(shown.reports.items()) if r.get("holder")}
    if not held:
        if opts.json:
            click.echo(json.dumps({"app": app, "removed": {}}, indent=2))
        else:
            click.echo(f"App '{app}' is not locked on {', '.join(sorted(shown.reports))}.")
        return
    if not opts.json:
        for host, holder in held.items():
            click.echo(describe_holder(host, holder))
    if not yes:
        click.confirm(f"Remove the lock of '{app}'? Its holder, if alive, stops", abort=True)
    _, removed = run_app_playbook(
        "unlock", app, opts, "unlock", hop3_app_lock_admin_action="remove"
    )
    raise_on_failure(removed, opts.json)
    gone = {h: r.get("holder") for h, r in sorted(removed.reports.items()) if r.get("removed")}
    if opts.json:
        click.echo(json.dumps({"app": app, "removed": gone}, indent=2))
        return
    for host in held:
        state = "removed" if host in gone else "already released"
        click.echo(f"{host}: lock of {app} {state}.")


COMMANDS = [unlock]
