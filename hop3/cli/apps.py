"""App lifecycle commands: deploy, apps, ps, ps:scale, start, stop, restart,
releases, rollback, destroy."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from hop3.errors import HopError

from .appcommon import app_reports, echo_lock_waits, run_app_playbook
from .options import RunOptions, run_options
from .output import finish, raise_on_failure

PROCESS_COUNT = "PROCESS=N"


@click.command()
@click.argument("path", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--app", "app_name", help="App name (default: [metadata] id, else the folder name).")
@click.option("--ref", help="Deploy this git ref (branch, tag, commit) instead of the work tree.")
# git push (hop3-shell) deploys an exported revision and names it with this.
@click.option("--rev", "rev_label", hidden=True)
@run_options
def deploy(
    path: Path, app_name: str | None, ref: str | None, rev_label: str | None, opts: RunOptions
) -> None:
    """Build PATH and run it, replacing the running release without downtime."""
    if rev_label is not None and not re.fullmatch(r"git:[0-9a-f]{7,40}", rev_label):
        raise HopError(f"--rev {rev_label!r} is not git:<commit>.", "Leave --rev out.")
    spec, result = run_deploy(path, app_name, opts, ref=ref, rev_label=rev_label)
    if opts.json:
        click.echo(json.dumps({"app": spec.name, **result.to_dict()}, indent=2))
    elif result.ok:
        echo_lock_waits(spec.name, result.reports)
        echo_deployed(spec.name, result.reports)
    raise_on_failure(result, opts.json)


def run_deploy(path: Path, app_name: str | None, opts: RunOptions, *, ref: str | None = None,
               rev_label: str | None = None, limit: str | None = None,
               verb: str = "deploy"):  # fmt: skip
    """Deploy the app in ``path`` on the target's hosts (or ``limit``); (spec, result)."""
    from hop3.appspec import load_app, resolve_addons
    from hop3.runner import run_playbook
    from hop3.source import pack
    from hop3.targets import resolve_target

    if not path.is_dir():
        raise HopError(f"{path} is not a directory.", "Pass the folder of the app to deploy.")
    spec = load_app(path, app_name)
    addons = resolve_addons(spec.name, spec.addons)
    target = resolve_target(opts.target, opts.inventory)
    packed = pack(path, ref)
    extravars = {
        "hop3_app_name": spec.name,
        "hop3_app_spec": spec.to_vars(),
        "hop3_app_source": str(packed.archive),
        "hop3_app_source_digest": packed.digest,
        "hop3_app_source_rev": rev_label or packed.rev,
        "hop3_app_addons": addons,
        "hop3_app_source_inline": _inline(packed.archive),
    }
    if limit is None:
        target, done = _skip_unchanged(target, spec.name, extravars)
        if target is None:
            return spec, done
    result = run_playbook(
        "deploy",
        inventory=target.inventory,
        limit=limit or target.limit,
        verb=verb,
        extravars=extravars,
        verbose=opts.verbose,
        quiet=opts.json,
        skip_tags=deploy_skip_tags(extravars, target.hosts if limit is None else None),
    )
    return spec, result


def deploy_skip_tags(extravars: dict, hosts: list[str] | None) -> tuple[str, ...]:
    """The steps of playbooks/deploy.yml that this deploy has no use for.

    No addons: no addon step. Every host to deploy has only a new source
    (``hosts``, known when hop3/deployed.py read them all): no vhost to write
    and no record task, since the build's call records the deploy itself.
    """
    skip = [] if extravars.get("hop3_app_addons") else ["hop3_deploy_addons"]
    code_only = set(extravars.get("hop3_app_proxy_unchanged_hosts") or ())
    if hosts and set(hosts) <= code_only:
        skip += ["hop3_deploy_vhost", "hop3_deploy_record"]
    return tuple(skip)


INLINE_SOURCE_MAX = 256 * 1024


def _inline(archive: Path) -> str:
    """A small source archive as base64: it rides in the build's first call (no upload)."""
    import base64

    if archive.stat().st_size > INLINE_SOURCE_MAX:
        return ""
    return base64.b64encode(archive.read_bytes()).decode("ascii")


def _skip_unchanged(target, app: str, extravars: dict):
    """(the target left to deploy, or None when every host has this exact deploy; its result).

    Hosts that report this very deploy, untouched and running, are left out of
    the playbook run (hop3/deployed.py); the fingerprints ride along so that
    the run records them, and hosts where only the source changed skip the
    vhost step. With no playbook to run, the result is made here.
    """
    import time
    from dataclasses import replace
    from datetime import UTC, datetime
    from pathlib import Path

    from hop3 import deployed, history
    from hop3.runner import HostStats, RunResult

    clock, started = time.monotonic(), datetime.now(UTC)
    plan = deployed.plan(target, app, extravars)
    extravars.update(plan.extravars())
    todo = [h for h in target.hosts if h not in plan.unchanged]
    if todo:
        return replace(target, hosts=todo, limit=",".join(todo)), None
    reports = {
        host: deployed.unchanged_report(
            app, host, str(plan.host_vars[host].get("ansible_host") or host),
            extravars["hop3_app_spec"], found,
        )
        for host, found in plan.unchanged.items()
    }  # fmt: skip
    result = RunResult(
        verb="deploy",
        target=target.limit,
        status="successful",
        rc=0,
        duration=time.monotonic() - clock,
        started=started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        run_dir=Path("(unchanged: no playbook run)"),
        stats={host: HostStats(ok=1) for host in reports},
        reports=reports,
    )
    history.record(result)
    return None, result


def echo_deployed(app: str, reports: dict) -> None:
    for host, report in sorted(reports.items()):
        verb = "is live" if report.get("built") else "is unchanged"
        url = f"http://{report['domains'][0]}/"
        click.echo(f"{app} {report['release']} {verb} on {host}: {url}")
        click.echo(f"  without DNS: curl -H 'Host: {report['domains'][0]}' "
                   f"http://{report['address']}/")  # fmt: skip


@click.command()
@click.option("--check", is_flag=True,
              help="Exit 1, naming them, when apps are not fully up (anything but running, "
                   "stopped or idle): for scripts and monitors.")  # fmt: skip
@run_options
def apps(check: bool, opts: RunOptions) -> None:
    """List the apps on the target hosts and whether they run."""
    from hop3.runner import run_playbook
    from hop3.targets import resolve_target

    target = resolve_target(opts.target, opts.inventory)
    result = run_playbook("app-info", inventory=target.inventory, limit=target.limit,
                          verb="apps", quiet=True, record=False, verbose=opts.verbose)  # fmt: skip
    if opts.json:
        click.echo(json.dumps({h: r.get("apps", []) for h, r in result.reports.items()}, indent=2))
    else:
        table = Table("host", "app", "status", "up", "release", "processes", "domains")
        for host, report in sorted(result.reports.items()):
            for app in report.get("apps", []):
                table.add_row(host, app["app"], _status(app["status"]), _up(app),
                              app["release"] or "-", _scale(app["scale"]),
                              ", ".join(app["domains"]) or "-")  # fmt: skip
        Console().print(table) if table.rows else click.echo("No apps yet.")
    raise_on_failure(result, opts.json)
    if check:
        check_apps(result.reports)


STATUS_COLOURS = {"running": "green", "idle": "green", "stopped": "yellow", "deploying": "yellow",
                  "degraded": "red", "down": "red", "failed": "red"}  # fmt: skip
STATE_COLOURS = {"running": "green", "starting": "yellow", "activating": "yellow",
                 "restarting": "yellow", "stopping": "yellow"}  # fmt: skip
# As module_utils/hop3_app_status.py SETTLED: the user's wanted state.
SETTLED = ("running", "stopped", "idle")


def _status(status: str) -> str:
    return f"[{STATUS_COLOURS.get(status, 'white')}]{status}[/]"


def _up(app: dict) -> str:
    return f"{app['instances_up']}/{app['instances_wanted']}"


def _scale(scale: dict) -> str:
    return " ".join(f"{p}={n}" for p, n in scale.items()) or "-"


def unsettled_apps(reports: dict) -> list[str]:
    """`hop apps` reports per host → one line per app that is not fully up."""
    return [
        f"{host}: {app['app']} is {app['status']} ({_up(app)} instances up)"
        for host, report in sorted(reports.items())
        for app in report.get("apps", [])
        if app["status"] not in SETTLED
    ]


def check_apps(reports: dict) -> None:
    """`hop apps --check`: exit 1 when an app is not fully up, naming each."""
    lines = unsettled_apps(reports)
    if lines:
        raise HopError(
            "Not fully up: " + "; ".join(lines) + ".",
            "`hop ps APP` shows each instance's state, `hop logs APP` why it stopped, and "
            "`hop restart APP` starts it again.",
        )


@click.command()
@click.argument("app")
@run_options
def ps(app: str, opts: RunOptions) -> None:
    """Show APP's processes: instance, release, port and live state."""
    reports = app_reports(app, opts, "ps")
    if opts.json:
        click.echo(json.dumps(reports, indent=2))
        return
    table = Table("host", "process", "instance", "release", "port", "state", "restarts")
    for host, report in sorted(reports.items()):
        click.echo(f"{app} on {host}: {report['status']}, {_up(report)} instances up, "
                   f"release {report['release'] or '-'}")  # fmt: skip
        for proc in report["processes"]:
            table.add_row(host, proc["process"], proc["instance"], proc["release"],
                          str(proc["port"] or "-"), _state_cell(proc),
                          str(proc["restarts"]))  # fmt: skip
        for job in report["cron"]:
            table.add_row(host, job["name"], job["schedule"], report["release"], "-", "timer", "-")
    Console().print(table) if table.rows else click.echo(f"{app} runs no processes.")


def _state_cell(proc: dict) -> str:
    state = proc["state"]
    if proc.get("retrying"):
        state += " (retrying)"
    elif proc.get("result") == "start-limit-hit":
        state += " (start limit)"
    return f"[{STATE_COLOURS.get(proc['state'], 'red')}]{state}[/]"


def _parse_counts(pairs: tuple[str, ...]) -> dict[str, int]:
    counts = {}
    for pair in pairs:
        name, sep, number = pair.partition("=")
        if not sep or not name or not number.isdigit() or int(number) > 20:
            raise HopError(
                f"'{pair}' is not a process count.",
                "Write PROCESS=N with N from 0 to 20, e.g. `hop ps:scale shop web=2 worker=1`.",
            )
        counts[name] = int(number)
    return counts


@click.command("ps:scale")
@click.argument("app")
@click.argument("counts", nargs=-1, required=True, metavar="PROCESS=N...")
@run_options
def scale(app: str, counts: tuple[str, ...], opts: RunOptions) -> None:
    """Run N instances of each PROCESS of APP (zero downtime)."""
    wanted = _parse_counts(counts)
    reports = app_reports(app, opts, "ps")
    for host, report in reports.items():
        known = {p["process"] for p in report["processes"]} | set(report["scale"])
        unknown = sorted(set(wanted) - known)
        if unknown:
            raise HopError(
                f"App '{app}' on {host} has no process {', '.join(unknown)}.",
                f"Its processes are: {', '.join(sorted(known)) or 'none'}.",
            )
    _state(app, opts, "ps:scale", "started", scale=wanted)


def _state(app, opts, verb, state, scale=None, release=None):
    _, result = run_app_playbook(
        "app-state", app, opts, verb,
        hop3_app_state=state, hop3_app_scale=scale or {}, hop3_app_release=release or "",
    )  # fmt: skip
    summary = ", ".join(
        f"{h}: {r.get('release')} {_scale(r.get('scale') or {})}"
        for h, r in sorted(result.reports.items())
    )
    finish(result, opts.json, success=f"{app} {verb}: {summary}")


def _lifecycle(name: str, state: str, help_text: str):
    @click.command(name, help=help_text)
    @click.argument("app")
    @run_options
    def command(app: str, opts: RunOptions) -> None:
        app_reports(app, opts, name)
        _state(app, opts, name, state)

    return command


start = _lifecycle("start", "started", "Start APP's processes (as scaled).")
stop = _lifecycle("stop", "stopped", "Stop all of APP's processes; its vhost answers 502.")
restart = _lifecycle("restart", "restarted", "Restart APP's processes without downtime.")


@click.command()
@click.argument("app")
@run_options
def releases(app: str, opts: RunOptions) -> None:
    """List APP's releases: id, time, source revision, status."""
    reports = app_reports(app, opts, "releases")
    if opts.json:
        click.echo(json.dumps({h: r["releases"] for h, r in reports.items()}, indent=2))
        return
    table = Table("host", "release", "time", "source", "status", "current", "serving")
    for host, report in sorted(reports.items()):
        for rel in reversed(report["releases"]):
            colour = "green" if rel["serving"] else "white"
            table.add_row(host, rel["id"], rel["time"], rel["rev"] or "-", rel["status"],
                          "yes" if rel["current"] else "-",
                          f"[{colour}]{_serving(rel)}[/]")  # fmt: skip
    Console().print(table)


def _serving(rel: dict) -> str:
    if rel["instances_wanted"]:
        return f"{rel['instances_up']}/{rel['instances_wanted']}"
    return "yes" if rel["serving"] else "-"


@click.command()
@click.argument("app")
@click.argument("release", required=False)
@run_options
def rollback(app: str, release: str | None, opts: RunOptions) -> None:
    """Switch APP back to RELEASE (default: the previous one), without downtime."""
    app_reports(app, opts, "rollback")
    _state(app, opts, "rollback", "started", release=release or "previous")


@click.command()
@click.argument("app")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@run_options
def destroy(app: str, yes: bool, opts: RunOptions) -> None:
    """Remove APP entirely: processes, units, vhost, files, user."""
    from hop3.appspec import validate_app_name

    validate_app_name(app)
    if not yes:
        click.confirm(
            f"Destroy app '{app}' and all its data on the target? This cannot be undone",
            abort=True,
        )
    _, result = run_app_playbook("destroy", app, opts, "destroy")
    finish(result, opts.json, success=f"Destroyed {app}.")


COMMANDS = [deploy, apps, ps, scale, start, stop, restart, releases, rollback, destroy]
