"""hop catalog upgrade: back up, deploy the new version, check, or roll back.

Host by host (a fleet upgrades one host at a time and stops at the first
failure): take a snapshot with `hop backup`'s playbook, deploy the rendered
new version (its release command runs the migrations), health-check it (the
deploy does) and smoke-check it through nginx. If any of that fails, restore
the snapshot on that host: the old code and the old data come back.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

from hop3.errors import HopError

from .appcommon import app_reports
from .backup import repo_options, run_backup
from .catalog_common import check_version, install_version, smoke_one
from .options import RunOptions, run_options
from .output import raise_on_failure


@click.command()
@click.argument("name")
@click.option(
    "--to",
    "to_version",
    metavar="VERSION",
    help="Upgrade to this version (default: the catalog entry's).",
)
@repo_options
@run_options
def upgrade(
    name: str, to_version: str | None, repo: str | None, key: str, opts: RunOptions
) -> None:
    """Upgrade the catalog app NAME; on any failure, restore its code and data."""
    from hop3.catalog import find_entry

    reports = app_reports(name, opts, "catalog:upgrade")
    catalogs = {r.get("catalog") for r in reports.values()}
    if catalogs == {None} or len(catalogs) != 1:
        raise HopError(
            f"{name} was not installed from the catalog.",
            f"Upgrade it with `hop deploy`, or see `hop releases {name}`.",
        )
    entry = find_entry(catalogs.pop())
    version = check_version(entry, to_version or entry.version)
    outcomes = []
    for host, report in sorted(reports.items()):
        if report.get("version") == version:
            outcomes.append({"host": host, "from": version, "to": version, "result": "unchanged"})
            if not opts.json:
                click.echo(f"{name} on {host} is already at {version}.")
            continue
        outcome = upgrade_host(entry, name, host, report, version, repo, key, opts)
        outcomes.append(outcome)
        if outcome["result"] != "upgraded":
            if opts.json:
                click.echo(json.dumps({"app": name, "hosts": outcomes}, indent=2))
                raise click.exceptions.Exit(1)
            raise HopError(outcome["message"], outcome["hint"])
    if opts.json:
        click.echo(json.dumps({"app": name, "hosts": outcomes}, indent=2))


def upgrade_host(entry, name, host, report, version, repo, key, opts) -> dict:
    old = report.get("version")
    host_opts = RunOptions(host, opts.inventory, opts.verbose, opts.json)
    say = (lambda text: None) if opts.json else click.echo
    notes = entry.versions.get(version)
    say(f"Upgrading {name} on {host} from {old} to {version}" + (f": {notes}" if notes else "."))
    backup = run_backup(
        "backup",
        host_opts,
        repo,
        key,
        verb="backup",
        quiet=True,
        hop3_backup_app=name,
        hop3_backup_action="backup",
    )
    raise_on_failure(backup, opts.json)
    snapshot = backup.reports[host]["snapshot"]
    say(f"  snapshot {snapshot} taken before the upgrade")
    with tempfile.TemporaryDirectory(prefix="hop3-catalog-") as tmp:
        _, result = install_version(
            entry,
            Path(tmp),
            name,
            version,
            report.get("declared_domains") or [],
            host_opts,
            verb="catalog:upgrade",
            limit=host,
        )
    if result.ok:
        smoke = smoke_one(entry, result.reports[host])
        if smoke.ok:
            say(f"  {name} {result.reports[host]['release']} serves {version}: {smoke.detail}")
            return {
                "host": host,
                "from": old,
                "to": version,
                "result": "upgraded",
                "snapshot": snapshot,
                "release": result.reports[host]["release"],
            }
        failure = f"its smoke check failed ({smoke.detail})"
    else:
        from hop3.runner import format_failure_summary

        failure = "the deploy failed:\n" + format_failure_summary(result)
    say(f"  the upgrade failed: {failure}")
    say(f"  restoring snapshot {snapshot} (code and data of {old})")
    restore = run_backup(
        "restore",
        host_opts,
        repo,
        key,
        verb="restore",
        quiet=True,
        hop3_backup_app=name,
        hop3_backup_snapshot=snapshot,
        hop3_backup_from="",
        hop3_deploy_hosts=host,
    )
    if not restore.ok:
        from hop3.runner import format_failure_summary

        return {
            "host": host,
            "from": old,
            "to": version,
            "result": "failed",
            "snapshot": snapshot,
            "message": f"Upgrading {name} on {host} to {version} failed ({failure}), and "
            f"so did restoring snapshot {snapshot}:\n" + format_failure_summary(restore),
            "hint": f"Restore it: hop restore {name} {snapshot} -t {host}.",
        }
    return {
        "host": host,
        "from": old,
        "to": version,
        "result": "rolled back",
        "snapshot": snapshot,
        "message": f"Upgrading {name} on {host} to {version} failed: {failure}. "
        f"{name} is back at {old} with its data from snapshot {snapshot}.",
        "hint": f"Read the upgrade notes (`hop catalog show {entry.name}`) and "
        f"`hop logs {name}`; the app serves its old version meanwhile.",
    }
