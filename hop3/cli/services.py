"""What the backing-service commands (pg:*, redis:*) have in common: running the
service's playbook, and the create, list, info, link, unlink and destroy
commands, built from a small description of the service (`Service`).

A service module describes itself once, then asks for its commands::

    PG = Service(prefix="pg", kind="database", ...)
    pg_create = create_command(PG, "Create database NAME ...", label="Database")
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import click

from hop3.errors import HopError

from .options import RunOptions, run_options
from .output import finish, raise_on_failure


@dataclass(frozen=True)
class Service:
    """A kind of backing service, as its commands name and run it."""

    prefix: str  # command prefix: "pg" gives pg:create, pg:list, ...
    kind: str  # what one is called in messages: "database", "Redis instance"
    plural: str  # what `PREFIX:list` lists, in hints: "databases", "instances"
    playbook: str  # playbooks/<playbook>.yml; its action variable is hop3_<playbook>_action
    var_prefix: str  # prefix of the role's variables: "hop3_postgresql_"
    env: str  # what link sets in the app, for help: "DATABASE_URL"
    linked: str  # shown after linking, {name} is the service: "DATABASE_URL"
    validate: Callable[[str], str]  # returns a valid name or raises HopError

    def run(self, action: str, opts: RunOptions, quiet: bool | None = None, **values):
        """Run the playbook with ``action`` on the command's target; ``values`` are the
        role's variables without their prefix (``name=...``). Return the result."""
        from hop3.runner import run_playbook
        from hop3.targets import resolve_target

        target = resolve_target(opts.target, opts.inventory)
        extravars = {f"hop3_{self.playbook}_action": action}
        extravars.update({self.var_prefix + key: value for key, value in values.items()})
        return run_playbook(
            self.playbook,
            inventory=target.inventory,
            limit=target.limit,
            verb=f"{self.prefix}:{action}",
            extravars=extravars,
            verbose=opts.verbose,
            quiet=opts.json if quiet is None else quiet,
            record=action not in ("list", "info"),
        )


def forget_run(result) -> None:
    """Delete a run's records: a secret shown on request is in its events, and no
    copy of it stays on the controller."""
    import shutil

    shutil.rmtree(result.run_dir, ignore_errors=True)


def create_command(service: Service, help: str, label: str) -> click.Command:
    """PREFIX:create NAME; ``label`` starts the success line ("Database shop is ready.")."""

    @click.command(f"{service.prefix}:create", help=help)
    @click.argument("name")
    @click.option("--show-secrets", is_flag=True, help="Also print the connection URL (password).")
    @run_options
    def command(name: str, show_secrets: bool, opts: RunOptions) -> None:
        service.validate(name)
        values = {"name": name, **({"show_secrets": True} if show_secrets else {})}
        result = service.run("create", opts, **values)
        if show_secrets:
            forget_run(result)
        state = "is ready" if result.changed else "exists"
        use = f"Use it with `hop {service.prefix}:link {name} APP`."
        finish(result, opts.json, success=f"{label} {name} {state}. {use}")
        if show_secrets and not opts.json:
            for host, report in sorted(result.reports.items()):
                click.echo(f"URL on {host}: {report.get('url', '-')}")

    return command


def list_command(
    service: Service,
    help: str,
    key: str,
    empty: str,
    header: str,
    row: Callable[[str, dict], str],
) -> click.Command:
    """PREFIX:list: the items under ``key`` in each host's report, as JSON or as a table
    of ``header`` and one ``row(host, item)`` per item (``empty`` when there is none)."""

    @click.command(f"{service.prefix}:list", help=help)
    @run_options
    def command(opts: RunOptions) -> None:
        result = service.run("list", opts, quiet=True)
        raise_on_failure(result, opts.json)
        per_host = {h: r.get(key, []) for h, r in sorted(result.reports.items())}
        if opts.json:
            click.echo(json.dumps(per_host, indent=2))
            return
        rows = [(h, item) for h, items in per_host.items() for item in items]
        if not rows:
            click.echo(empty)
            return
        click.echo(header)
        for host, item in rows:
            click.echo(row(host, item))

    return command


def info_command(
    service: Service,
    help: str,
    secrets_help: str,
    details: Callable[[str, dict], list[tuple[str, object]]],
) -> click.Command:
    """PREFIX:info NAME [--show-secrets]: each host's report; ``details(name, report)``
    gives the (label, value) lines between Host and Linked apps."""

    @click.command(f"{service.prefix}:info", help=help)
    @click.argument("name")
    @click.option("--show-secrets", is_flag=True, help=secrets_help)
    @run_options
    def command(name: str, show_secrets: bool, opts: RunOptions) -> None:
        service.validate(name)
        result = service.run("info", opts, quiet=True, name=name, show_secrets=show_secrets)
        raise_on_failure(result, opts.json)
        if show_secrets:
            forget_run(result)
        reports = {h: r for h, r in sorted(result.reports.items()) if r.get("exists")}
        if not reports:
            where = ", ".join(sorted(result.reports)) or "the target"
            raise HopError(f"There is no {service.kind} named '{name}' on {where}.",
                           f"`hop {service.prefix}:list` lists the {service.plural}.")  # fmt: skip
        if opts.json:
            click.echo(json.dumps(reports, indent=2))
            return
        for host, report in reports.items():
            if len(reports) > 1:
                click.echo(f"==> {host} <==")
            lines = [
                ("Name", report["name"]),
                ("Host", f"{host} ({report.get('host')}:{report.get('port')})"),
                *details(name, report),
                ("Linked apps", ", ".join(report.get("links", [])) or "-"),
            ]
            if "url" in report:
                lines.append(("URL", report["url"]))
            for label, value in lines:
                click.echo(f"{label + ':':<13}{value}")

    return command


def link_commands(service: Service, note: str = "") -> tuple[click.Command, click.Command]:
    """PREFIX:link NAME APP and PREFIX:unlink NAME APP; ``note`` ends link's help."""
    link_help = (
        f"Set {service.env} of APP to {service.kind} NAME and restart APP without downtime.{note}"
    )
    unlink_help = f"Remove {service.env} from APP and restart it without downtime."
    return _link_command(service, "link", link_help), _link_command(service, "unlink", unlink_help)


def _link_command(service: Service, verb: str, help: str) -> click.Command:
    @click.command(f"{service.prefix}:{verb}", help=help)
    @click.argument("name")
    @click.argument("app")
    @click.option("--no-restart", is_flag=True, help="Store the change; processes see it later.")
    @run_options
    def command(name: str, app: str, no_restart: bool, opts: RunOptions) -> None:
        from hop3.appspec import validate_app_name

        service.validate(name)
        validate_app_name(app)
        result = service.run(verb, opts, name=name, app=app, restart=not no_restart)
        if verb == "link":
            done = f"Linked {name} to {app} ({service.linked.format(name=name)})."
        else:
            done = f"Unlinked {name} from {app}."
        finish(result, opts.json, success=done)

    return command


def destroy_command(service: Service, help: str, confirm: str) -> click.Command:
    """PREFIX:destroy NAME [--yes]; ``confirm`` is the question, {name} the service."""

    @click.command(f"{service.prefix}:destroy", help=help)
    @click.argument("name")
    @click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
    @run_options
    def command(name: str, yes: bool, opts: RunOptions) -> None:
        service.validate(name)
        if not yes:
            click.confirm(confirm.format(name=name), abort=True)
        result = service.run("destroy", opts, name=name)
        finish(result, opts.json, success=f"Destroyed {service.kind} {name}.")

    return command


def open_shell(command: str, opts: RunOptions, remote: list[str]) -> None:
    """Run ``remote`` over SSH on the target's only host, with a TTY when we have one,
    and exit with its code (``command`` names the command in the error)."""
    import os
    import subprocess

    from hop3.remote import ssh_args
    from hop3.targets import resolve_target

    target = resolve_target(opts.target, opts.inventory)
    if len(target.hosts) != 1:
        raise HopError(
            f"{command} opens one host, but the target has {len(target.hosts)}.",
            f"Pick one with -t ({', '.join(target.hosts)}).",
        )
    args = ssh_args(target, target.hosts[0], remote, tty=os.isatty(0))
    raise SystemExit(subprocess.run(args, check=False).returncode)
