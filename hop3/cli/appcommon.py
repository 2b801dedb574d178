"""Helpers shared by the app commands: running a verb's playbook for an app,
and reading app reports back."""

from __future__ import annotations

import click

from hop3.errors import HopError

from .options import RunOptions
from .output import raise_on_failure


def run_app_playbook(playbook: str, app: str, opts: RunOptions, verb: str, quiet=None,
                     skip_tags: tuple[str, ...] = (), **extra):  # fmt: skip
    """Run ``playbook`` for ``app`` on the command's target; return the result.

    ``extra`` are the playbook's variables; ``skip_tags`` its steps that the
    command knows have nothing to do (see run_playbook)."""
    from hop3.appspec import validate_app_name
    from hop3.runner import run_playbook
    from hop3.targets import resolve_target

    validate_app_name(app)
    target = resolve_target(opts.target, opts.inventory)
    result = run_playbook(
        playbook,
        inventory=target.inventory,
        limit=target.limit,
        verb=verb,
        extravars={"hop3_app_name": app, **extra},
        verbose=opts.verbose,
        quiet=opts.json if quiet is None else quiet,
        record=verb not in ("apps", "ps", "releases", "config"),
        skip_tags=skip_tags,
    )
    if not (opts.json if quiet is None else quiet):
        echo_lock_waits(app, result.reports)
    return target, result


def echo_lock_waits(app: str, reports: dict) -> None:
    """Say when a run had to wait for another operation on the app (its lock)."""
    for host, report in sorted(reports.items()):
        try:
            waited = float(report.get("lock_waited") or 0)
        except ValueError:  # masked by Ansible's no_log (a config value equal to it)
            continue
        if waited > 0:
            other = report.get("lock_waited_for") or "operation"
            click.echo(f"{host}: waited {waited:.0f} s for another {other} of {app}")


def app_reports(app: str, opts: RunOptions, verb: str, with_config: bool = False) -> dict:
    """Per host, the app's report; a clear error when no host has the app."""
    _, result = run_app_playbook(
        "app-info", app, opts, verb, quiet=True, hop3_app_with_config=with_config
    )
    raise_on_failure(result, opts.json)
    reports = {h: r for h, r in result.reports.items() if r.get("exists")}
    if not reports:
        where = ", ".join(sorted(result.reports)) or "the target"
        raise HopError(
            f"There is no app named '{app}' on {where}.",
            "`hop apps` lists the apps; deploy one with `hop deploy PATH --app NAME`.",
        )
    return reports
