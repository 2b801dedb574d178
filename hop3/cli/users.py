"""Hop3 users: who may run what through `ssh hop3@HOST` and `git push`.

`hop users:add|set|remove|list` run playbooks/users.yml (role hop3_users) on
the target's hosts: the registry /etc/hop3/users.json and the hop3 user's
authorized_keys change together. What each role may do is enforced on the
host by hop3-shell (hop3/access.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

from hop3.errors import HopError

from .options import RunOptions, run_options
from .output import finish, raise_on_failure

ROLES = ("admin", "deployer", "viewer")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_APP_RE = re.compile(r"^([a-z][a-z0-9-]{0,29}|\*)$")
_KEY_RE = re.compile(r"^(ssh-|ecdsa-|sk-)\S+ \S+")


def check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise HopError(
            f"'{name}' is not a valid user name.",
            "Use 1 to 32 lowercase letters, digits, '-' or '_', starting with a letter.",
        )
    return name


def parse_apps(text: str | None) -> list[str] | None:
    if text is None:
        return None
    apps = [a.strip() for a in text.split(",") if a.strip()]
    bad = [a for a in apps if not _APP_RE.match(a)]
    if bad:
        raise HopError(
            f"Not an app name: {', '.join(repr(a) for a in bad)}.",
            "Give app names separated by commas (e.g. --apps shop,blog), or * for every app.",
        )
    return apps


def read_keys(values: tuple[str, ...]) -> list[str] | None:
    """Public key lines from files (or literal 'ssh-ed25519 AAAA...' lines)."""
    if not values:
        return None
    keys = []
    for value in values:
        if _KEY_RE.match(value.strip()):
            keys.append(value.strip())
            continue
        path = Path(value).expanduser()
        try:
            text = path.read_text()
        except OSError as err:
            raise HopError(
                f"Cannot read the public key file {value}: {err.strerror}.",
                "Pass the user's .pub file, e.g. --key ~/ana.pub.",
            ) from None
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if "PRIVATE KEY" in text:
            raise HopError(
                f"{value} is a private key.", "Pass the public key: the .pub file next to it."
            )
        keys.extend(lines)
    return keys


def check_role(role: str | None, apps: list[str] | None) -> None:
    """A new deployer must be given its apps; viewers and admins see every app."""
    if role == "deployer" and apps is None:
        raise HopError(
            "A deployer needs the apps it may deploy.",
            "Add --apps shop,blog (or --apps '*' for every app).",
        )


def _run(action: str, opts: RunOptions, **values):
    from hop3.runner import run_playbook
    from hop3.targets import resolve_target

    target = resolve_target(opts.target, opts.inventory)
    extravars = {"hop3_users_action": action}
    extravars.update({f"hop3_users_{k}": v for k, v in values.items() if v is not None})
    return run_playbook(
        "users",
        inventory=target.inventory,
        limit=target.limit,
        verb="users" if action == "list" else f"users:{action}",
        extravars=extravars,
        verbose=opts.verbose,
        quiet=opts.json or action == "list",
        record=action != "list",
    )


@click.command("users:add")
@click.argument("name")
@click.option("--key", "keys", multiple=True, required=True, metavar="PUBKEY_FILE",
              help="The user's SSH public key (.pub file; repeat for more keys).")  # fmt: skip
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the user may do.")
@click.option("--apps", help="Apps the user may act on, comma-separated (* for all).")
@run_options
def users_add(name: str, keys: tuple[str, ...], role: str, apps: str | None, opts: RunOptions):
    """Add user NAME, who then reaches the hosts as hop3@HOST with its key.

    admin: everything. deployer: git push, deploy, config, scale, restart,
    rollback and run, on its apps. viewer: apps, status, releases, logs and
    config without values (on its apps, or all apps without --apps).
    """
    check_name(name)
    app_list = parse_apps(apps)
    check_role(role, app_list)
    if app_list is None:
        app_list = ["*"]
    result = _run("add", opts, name=name, role=role, apps=app_list, keys=read_keys(keys))
    finish(
        result, opts.json, success=f"Added {role} {name}: ssh hop3@HOST, git push hop3@HOST:APP."
    )


@click.command("users:set")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), help="The new role.")
@click.option("--apps", help="The new app list, comma-separated (* for all).")
@click.option("--key", "keys", multiple=True, metavar="PUBKEY_FILE",
              help="Replace the user's keys with these (repeat for more).")  # fmt: skip
@run_options
def users_set(name: str, role: str | None, apps: str | None, keys: tuple[str, ...], opts):
    """Change user NAME's role, apps or keys (what is not given stays)."""
    check_name(name)
    if role is None and apps is None and not keys:
        raise HopError("Nothing to change.", "Give --role, --apps or --key.")
    result = _run("set", opts, name=name, role=role, apps=parse_apps(apps), keys=read_keys(keys))
    finish(result, opts.json, success=f"Updated user {name}.")


@click.command("users:remove")
@click.argument("name")
@run_options
def users_remove(name: str, opts: RunOptions):
    """Remove user NAME: its keys stop working at once."""
    check_name(name)
    result = _run("remove", opts, name=name)
    finish(result, opts.json, success=f"Removed user {name}; its keys no longer open a session.")


@click.command("users:list")
@run_options
def users_list(opts: RunOptions):
    """List the users of each host: role, apps and key fingerprints."""
    result = _run("list", opts)
    raise_on_failure(result, opts.json)
    reports = {host: report["users"] for host, report in sorted(result.reports.items())}
    if opts.json:
        click.echo(json.dumps(reports, indent=2))
        return
    for index, (host, users) in enumerate(reports.items()):
        if index:
            click.echo()
        click.echo(f"{host}: {len(users)} user(s)")
        if users:
            click.echo(f"  {'NAME':<16}{'ROLE':<10}{'APPS':<24}KEYS")
        for user in users:
            apps = ",".join(user["apps"]) or "-"
            click.echo(f"  {user['name']:<16}{user['role']:<10}{apps:<24}{' '.join(user['keys'])}")


COMMANDS = [users_add, users_set, users_remove, users_list]
