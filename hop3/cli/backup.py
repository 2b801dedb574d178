"""Backups with restic: backup, backups, restore, backup:schedule,
backup:unschedule, backup:check, backup:key.

A snapshot holds everything to bring an app back on any host: dumps of its
linked databases, its Redis keys, its shared/ files, its config and the
source and spec of its running release. Repositories are encrypted with the
platform's key, made on the host by the first backup and shown once.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from pathlib import Path

import click

from hop3.errors import HopError

from .options import RunOptions, run_options
from .output import finish, raise_on_failure
from .services import forget_run

KEEP_UNITS = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
CALENDAR_WORDS = ("hourly", "daily", "weekly", "monthly")
SNAPSHOT_RE = re.compile(r"^(latest|[0-9a-f]{8,64})$")
KEY_WARNING = (
    "This is the platform's backup key. Store it somewhere safe, away from the hosts: "
    "without it no backup can be restored, and nobody can recover it for you. "
    "`hop backup:key` shows it again while a host has it."
)


def repo_options(func: Callable) -> Callable:
    """--repo HOST and --key-file FILE, passed as ``repo`` and ``key``."""

    @click.option(
        "--repo",
        "repo_host",
        metavar="HOST",
        help="Inventory host that stores the repository (over SFTP). Default: the "
        "inventory variable hop3_backup_repo_host, else the app's own host.",
    )
    @click.option(
        "--key-file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="The platform's backup key, for a host that has none yet.",
    )
    @functools.wraps(func)
    def wrapper(*args, repo_host, key_file, **kwargs):
        key = read_key_file(key_file) if key_file else ""
        return func(*args, repo=repo_host, key=key, **kwargs)

    return wrapper


def read_key_file(path: Path) -> str:
    key = path.read_text().strip()
    if len(key) < 16 or any(c.isspace() for c in key):
        raise HopError(
            f"{path} does not hold a backup key.",
            "It should hold the one line `hop backup:key` printed.",
        )
    return key


def run_backup(
    playbook: str,
    opts: RunOptions,
    repo: str | None,
    key: str = "",
    *,
    verb: str,
    quiet: bool | None = None,
    record: bool = True,
    **extra,
):
    """Run a backup playbook on the target's hosts, with the repository host."""
    from hop3.runner import run_playbook
    from hop3.targets import load_inventory, resolve_target

    target = resolve_target(opts.target, opts.inventory)
    inventory = load_inventory(target.inventory)
    if repo is None:
        repo = str(inventory.host_vars(target.hosts[0]).get("hop3_backup_repo_host") or "")
    if repo:
        if repo not in inventory.hosts():
            raise HopError(
                f"The repository host {repo!r} is not in the inventory.",
                f"Use one of: {', '.join(inventory.hosts())}.",
            )
        if repo in target.hosts:
            raise HopError(
                f"{repo} cannot store its own backups remotely.",
                "Pick another --repo host, or leave --repo out for a local repository.",
            )
    extravars = {
        "hop3_backup_hosts": ",".join(target.hosts),
        "hop3_backup_repo_host": repo,
        **({"hop3_backup_key": key} if key else {}),
        **extra,
    }
    return run_playbook(
        playbook,
        inventory=target.inventory,
        limit=",".join([*target.hosts, repo] if repo else target.hosts),
        verb=verb,
        extravars=extravars,
        verbose=opts.verbose,
        quiet=opts.json if quiet is None else quiet,
        record=record,
    )


def app_hosts(result, repo: str | None) -> dict:
    """Reports of the app hosts (the repository host reports nothing)."""
    return {h: r for h, r in sorted(result.reports.items()) if h != repo}


def show_new_key(result, opts: RunOptions, repo: str | None) -> None:
    """Print the key the first time a host made one, with the warning."""
    made = [h for h, r in result.reports.items() if r.get("key_created")]
    if not made or opts.json:
        return
    keys = read_keys(RunOptions(made[0], opts.inventory, 0, False), repo)
    click.echo("")
    click.secho(f"New backup key (made on {made[0]}): {keys[made[0]]}", bold=True)
    click.secho(KEY_WARNING, fg="yellow")


def read_keys(opts: RunOptions, repo: str | None) -> dict[str, str]:
    result = run_backup(
        "backup", opts, repo, verb="backup:key", quiet=True, record=False, hop3_backup_action="key"
    )
    forget_run(result)
    raise_on_failure(result, False)
    return {h: r["key"] for h, r in result.reports.items() if r.get("key")}


def validate_app(app: str) -> str:
    from hop3.appspec import validate_app_name

    return validate_app_name(app)


@click.command()
@click.argument("app")
@repo_options
@run_options
def backup(app: str, repo: str | None, key: str, opts: RunOptions) -> None:
    """Snapshot APP: its databases, Redis keys, files, config and source (encrypted)."""
    validate_app(app)
    result = run_backup(
        "backup", opts, repo, key, verb="backup", hop3_backup_app=app, hop3_backup_action="backup"
    )
    if opts.json:
        click.echo(json.dumps({"app": app, **result.to_dict()}, indent=2))
    elif result.ok:
        for host, report in app_hosts(result, repo).items():
            extra = ", ".join(
                f"{len(report.get(k) or [])} {label}"
                for k, label in (("databases", "database(s)"), ("redis", "Redis instance(s)"))
            )
            click.echo(
                f"Backed up {app} on {host}: snapshot {report['snapshot']} "
                f"({report['files']} files, {extra}) in {report['repository']}"
            )
        show_new_key(result, opts, repo)
    raise_on_failure(result, opts.json)


@click.command()
@click.argument("app", required=False)
@click.option("--from", "source_host", metavar="HOST", help="Only snapshots taken on HOST.")
@repo_options
@run_options
def backups(
    app: str | None, source_host: str | None, repo: str | None, key: str, opts: RunOptions
) -> None:
    """List the snapshots of APP (or of every app) in the repository."""
    if app:
        validate_app(app)
    result = run_backup(
        "backup",
        opts,
        repo,
        key,
        verb="backups",
        quiet=True,
        record=False,
        hop3_backup_app=app or "",
        hop3_backup_from=source_host or "",
        hop3_backup_action="snapshots",
    )
    raise_on_failure(result, opts.json)
    reports = app_hosts(result, repo)
    if opts.json:
        click.echo(json.dumps(reports, indent=2))
        return
    seen: set[str] = set()
    rows = []
    for report in reports.values():
        for snap in report.get("snapshots", []):
            if snap["id"] not in seen:  # hosts sharing a repository list the same snapshots
                seen.add(snap["id"])
                rows.append((report["repository"], snap))
    if not rows:
        click.echo(f"No backups{' of ' + app if app else ''} yet. Make one with `hop backup APP`.")
        return
    click.echo(f"{'SNAPSHOT':<10} {'TIME (UTC)':<20} {'APP':<20} {'HOST':<16} REPOSITORY")
    for repository, snap in sorted(rows, key=lambda r: r[1]["time"]):
        click.echo(
            f"{snap['id']:<10} {snap['time'].replace('T', ' ')[:19]:<20} "
            f"{snap['app']:<20} {snap['host']:<16} {repository}"
        )


@click.command()
@click.argument("app")
@click.argument("snapshot", default="latest")
@click.option(
    "--from",
    "source_host",
    metavar="HOST",
    help="Restore the latest snapshot taken on HOST (default: the target host).",
)
@repo_options
@run_options
def restore(
    app: str, snapshot: str, source_host: str | None, repo: str | None, key: str, opts: RunOptions
) -> None:
    """Restore APP from SNAPSHOT (default: latest) onto the target host and redeploy it.

    Databases, Redis keys, files and config come back; the app is rebuilt from
    the backed-up source. Onto a new host, this is the disaster-recovery path:
    run `hop setup` there first and pass the platform's key with --key-file.
    """
    from hop3.targets import resolve_target

    validate_app(app)
    if not SNAPSHOT_RE.fullmatch(snapshot):
        raise HopError(
            f"{snapshot!r} is not a snapshot id.",
            f"Use `latest` or an id from `hop backups {app}`.",
        )
    target = resolve_target(opts.target, opts.inventory)
    if len(target.hosts) != 1:
        raise HopError(
            f"restore puts {app} on one host, but the target has {len(target.hosts)}.",
            f"Pick one with -t ({', '.join(target.hosts)}).",
        )
    result = run_backup(
        "restore",
        opts,
        repo,
        key,
        verb="restore",
        hop3_backup_app=app,
        hop3_backup_snapshot=snapshot,
        hop3_backup_from=source_host or "",
        hop3_deploy_hosts=target.hosts[0],
    )
    if opts.json:
        click.echo(json.dumps({"app": app, **result.to_dict()}, indent=2))
    elif result.ok:
        for host, report in app_hosts(result, repo).items():
            click.echo(
                f"Restored {app} on {host} from snapshot {report['snapshot']} "
                f"({report['from']}, {report['time']}): release {report['release']}, "
                f"{len(report['databases'])} database(s), {len(report['redis'])} "
                f"Redis instance(s), {report['files']} files."
            )
            click.echo(f"  curl -H 'Host: {report['domains'][0]}' http://{report['address']}/")
    raise_on_failure(result, opts.json)


def on_calendar(when: str) -> str:
    """daily/hourly/weekly/monthly, or a 5-field cron expression, as OnCalendar."""
    from hop3.appspec.cron import CronError, to_on_calendar

    if when in CALENDAR_WORDS:
        return when
    try:
        return to_on_calendar(when)
    except CronError as exc:
        raise HopError(
            f"{when!r} is not a schedule: {exc}.",
            "Use daily, hourly, weekly, monthly or a cron expression such as "
            "'30 2 * * *' (quote it).",
        ) from exc


def keep_options(func: Callable) -> Callable:
    for unit in reversed(KEEP_UNITS):
        what = "snapshots" if unit == "last" else f"{unit} snapshots (the last of each period)"
        func = click.option(
            f"--keep-{unit}",
            type=click.IntRange(1, 10000),
            metavar="N",
            help=f"Keep the newest N {what}.",
        )(func)
    return func


@click.command("backup:schedule")
@click.argument("app")
@click.argument("when")
@keep_options
@repo_options
@run_options
def backup_schedule(
    app: str, when: str, repo: str | None, key: str, opts: RunOptions, **keep_flags
) -> None:
    """Back up APP on a schedule (daily, hourly, weekly, monthly or 'CRON'), with retention.

    After each scheduled backup, `restic forget --prune` drops the snapshots of
    APP that no --keep-* option keeps. Without --keep-*, every snapshot stays.
    """
    validate_app(app)
    calendar = on_calendar(when)
    keep = {unit: keep_flags[f"keep_{unit}"] for unit in KEEP_UNITS if keep_flags[f"keep_{unit}"]}
    result = run_backup(
        "backup",
        opts,
        repo,
        key,
        verb="backup:schedule",
        hop3_backup_app=app,
        hop3_backup_on_calendar=calendar,
        hop3_backup_keep=keep,
        hop3_backup_action="schedule",
    )
    kept = ", ".join(f"{n} {unit}" for unit, n in keep.items()) or "every snapshot"
    finish(result, opts.json, success=f"{app} is backed up {when} ({calendar}); keeping {kept}.")
    if result.ok:
        show_new_key(result, opts, repo)


@click.command("backup:unschedule")
@click.argument("app")
@run_options
def backup_unschedule(app: str, opts: RunOptions) -> None:
    """Stop the scheduled backups of APP (its snapshots stay)."""
    validate_app(app)
    result = run_backup(
        "backup",
        opts,
        "",
        verb="backup:unschedule",
        hop3_backup_app=app,
        hop3_backup_action="unschedule",
    )
    finish(result, opts.json, success=f"{app} has no backup schedule now; its snapshots stay.")


@click.command("backup:init")
@click.option(
    "--new",
    is_flag=True,
    help="Start a new, empty repository where the one these hosts used is missing.",
)
@repo_options
@run_options
def backup_init(new: bool, repo: str | None, key: str, opts: RunOptions) -> None:
    """Open the repository, creating it (and the platform's key) if there is none yet.

    `hop backup` does this by itself the first time. A repository the hosts
    have used before is never re-created silently when it goes missing:
    --new says that starting again, without the old snapshots, is intended.
    """
    result = run_backup(
        "backup",
        opts,
        repo,
        key,
        verb="backup:init",
        hop3_backup_new=new,
        hop3_backup_action="init",
    )
    repos = sorted({r.get("repository", "?") for r in app_hosts(result, repo).values()})
    finish(result, opts.json, success=f"The repository {', '.join(repos)} is ready.")
    if result.ok:
        show_new_key(result, opts, repo)


@click.command("backup:check")
@repo_options
@run_options
def backup_check(repo: str | None, key: str, opts: RunOptions) -> None:
    """Check the repository's integrity (restic check)."""
    result = run_backup(
        "backup", opts, repo, key, verb="backup:check", record=False, hop3_backup_action="check"
    )
    repos = sorted({r.get("repository", "?") for r in app_hosts(result, repo).values()})
    finish(result, opts.json, success=f"No errors in {', '.join(repos)}.")


@click.command("backup:key")
@repo_options
@run_options
def backup_key(repo: str | None, key: str, opts: RunOptions) -> None:
    """Show the platform's backup key, or install it on a host with --key-file."""
    if key:
        result = run_backup(
            "backup", opts, repo, key, verb="backup:key", hop3_backup_action="set_key"
        )
        finish(result, opts.json, success="The backup key is installed.")
        return
    keys = read_keys(opts, repo)
    if opts.json:
        click.echo(json.dumps(keys, indent=2))
        return
    for host, value in sorted(keys.items()):
        click.echo(f"{host}: {value}")
    click.secho(KEY_WARNING, fg="yellow", err=True)


COMMANDS = [
    backup,
    backups,
    restore,
    backup_schedule,
    backup_unschedule,
    backup_init,
    backup_check,
    backup_key,
]
