"""Redis instances for apps: redis:create, redis:list, redis:info, redis:link,
redis:unlink, redis:destroy, redis:cli.

Each instance is an ACL user of the host's Redis, restricted to the keys
``NAME:*``, with a password generated on the host and kept there;
`redis:link` hands its URL to an app as REDIS_URL (and the prefix as
REDIS_KEY_PREFIX). Secrets are shown only with `redis:info --show-secrets`.
"""

from __future__ import annotations

import json
import re
import shlex

import click

from hop3.errors import HopError

from .options import RunOptions, run_options
from .output import finish, raise_on_failure

REDIS_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
RESERVED_REDIS_NAMES = frozenset({"default", "hop3admin"})
SERVICES_DIR = "/srv/hop3/services/redis"


def validate_redis_name(name: str) -> str:
    """Return ``name`` if it can name a Redis instance (and its user), else raise ``HopError``."""
    if not REDIS_NAME_RE.fullmatch(name):
        raise HopError(
            f"'{name}' is not a valid Redis instance name.",
            "Use 1 to 63 lowercase letters, digits and underscores, starting with a letter "
            "(e.g. cache1).",
        )
    if name in RESERVED_REDIS_NAMES:
        raise HopError(
            f"'{name}' is reserved.",
            f"Pick another name (reserved: {', '.join(sorted(RESERVED_REDIS_NAMES))}).",
        )
    return name


def run_redis(action: str, opts: RunOptions, quiet: bool | None = None, **extra):
    """Run playbooks/redis.yml with ``action`` on the command's target; return the result."""
    from hop3.runner import run_playbook
    from hop3.targets import resolve_target

    target = resolve_target(opts.target, opts.inventory)
    return run_playbook(
        "redis",
        inventory=target.inventory,
        limit=target.limit,
        verb=f"redis:{action}",
        extravars={"hop3_redis_action": action, **extra},
        verbose=opts.verbose,
        quiet=opts.json if quiet is None else quiet,
        record=action not in ("list", "info"),
    )


@click.command("redis:create")
@click.argument("name")
@run_options
def redis_create(name: str, opts: RunOptions) -> None:
    """Create Redis instance NAME: a user limited to keys NAME:* (installs Redis on first use)."""
    validate_redis_name(name)
    result = run_redis("create", opts, hop3_redis_name=name)
    message = f"Redis {name} is ready." if result.changed else f"Redis {name} exists."
    finish(result, opts.json, success=message + f" Use it with `hop redis:link {name} APP`.")


@click.command("redis:list")
@run_options
def redis_list(opts: RunOptions) -> None:
    """List the Redis instances on the target's hosts."""
    result = run_redis("list", opts, quiet=True)
    raise_on_failure(result, opts.json)
    per_host = {h: r.get("instances", []) for h, r in sorted(result.reports.items())}
    if opts.json:
        click.echo(json.dumps(per_host, indent=2))
        return
    rows = [(h, i) for h, items in per_host.items() for i in items]
    if not rows:
        click.echo("No Redis instances. Create one with `hop redis:create NAME`.")
        return
    click.echo(f"{'HOST':<16} {'NAME':<24} {'PREFIX':<25}  LINKED APPS")
    for host, item in rows:
        links = ", ".join(item.get("links", [])) or "-"
        prefix = item.get("key_prefix", item["name"] + ":")
        click.echo(f"{host:<16} {item['name']:<24} {prefix:<25}  {links}")


@click.command("redis:info")
@click.argument("name")
@click.option("--show-secrets", is_flag=True, help="Also print the URL (password).")
@run_options
def redis_info(name: str, show_secrets: bool, opts: RunOptions) -> None:
    """Show Redis instance NAME: key prefix, linked apps."""
    validate_redis_name(name)
    result = run_redis(
        "info", opts, quiet=True, hop3_redis_name=name, hop3_redis_show_secrets=show_secrets
    )
    raise_on_failure(result, opts.json)
    if show_secrets:
        # The URL is in this run's events: keep no copy of it on the controller.
        import shutil

        shutil.rmtree(result.run_dir, ignore_errors=True)
    reports = {h: r for h, r in sorted(result.reports.items()) if r.get("exists")}
    if not reports:
        where = ", ".join(sorted(result.reports)) or "the target"
        raise HopError(f"There is no Redis instance named '{name}' on {where}.",
                       "`hop redis:list` lists the instances.")  # fmt: skip
    if opts.json:
        click.echo(json.dumps(reports, indent=2))
        return
    for host, report in reports.items():
        if len(reports) > 1:
            click.echo(f"==> {host} <==")
        click.echo(f"Name:        {report['name']}")
        click.echo(f"Host:        {host} ({report.get('host')}:{report.get('port')})")
        click.echo(f"Key prefix:  {report.get('key_prefix', name + ':')}")
        click.echo(f"Linked apps: {', '.join(report.get('links', [])) or '-'}")
        if "url" in report:
            click.echo(f"URL:         {report['url']}")


def _link_command(name: str, verb: str):
    linking = verb == "link"

    @click.command(
        name,
        help=(
            "Set REDIS_URL and REDIS_KEY_PREFIX of APP to Redis instance NAME and restart APP "
            "without downtime. APP must prefix its keys with NAME:."
            if linking
            else "Remove REDIS_URL and REDIS_KEY_PREFIX from APP and restart it without downtime."
        ),
    )
    @click.argument("name")
    @click.argument("app")
    @click.option("--no-restart", is_flag=True, help="Store the change; processes see it later.")
    @run_options
    def command(name: str, app: str, no_restart: bool, opts: RunOptions) -> None:
        from hop3.appspec import validate_app_name

        validate_redis_name(name)
        validate_app_name(app)
        result = run_redis(
            verb, opts, hop3_redis_name=name, hop3_redis_app=app,
            hop3_redis_restart=not no_restart,
        )  # fmt: skip
        done = (
            f"Linked {name} to {app} (REDIS_URL, REDIS_KEY_PREFIX={name}:)."
            if linking
            else f"Unlinked {name} from {app}."
        )
        finish(result, opts.json, success=done)

    return command


redis_link = _link_command("redis:link", "link")
redis_unlink = _link_command("redis:unlink", "unlink")


@click.command("redis:destroy")
@click.argument("name")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@run_options
def redis_destroy(name: str, yes: bool, opts: RunOptions) -> None:
    """Delete Redis instance NAME (its user and credentials)."""
    validate_redis_name(name)
    if not yes:
        click.confirm(f"Destroy Redis instance {name}?", abort=True)
    result = run_redis("destroy", opts, hop3_redis_name=name)
    finish(result, opts.json, success=f"Destroyed Redis instance {name}.")


def cli_script(name: str) -> str:
    """A shell script that runs redis-cli as user NAME; the password goes through
    REDISCLI_AUTH (read from the host's JSON file), never through argv."""
    validate_redis_name(name)
    path = f"{SERVICES_DIR}/{name}.json"
    reader = "import json,sys; print(json.load(open(sys.argv[1]))['password'])"
    return (
        f"REDISCLI_AUTH=$(python3 -c {shlex.quote(reader)} {shlex.quote(path)}) || exit 1; "
        f"export REDISCLI_AUTH; exec redis-cli --no-auth-warning --user {name}"
    )


@click.command("redis:cli")
@click.argument("name")
@run_options
def redis_cli(name: str, opts: RunOptions) -> None:
    """Open redis-cli as the user of instance NAME (on one host)."""
    import os
    import subprocess

    from hop3.remote import ssh_args
    from hop3.targets import resolve_target

    script = cli_script(name)
    target = resolve_target(opts.target, opts.inventory)
    if len(target.hosts) != 1:
        raise HopError(
            f"redis:cli opens one host, but the target has {len(target.hosts)}.",
            f"Pick one with -t ({', '.join(target.hosts)}).",
        )
    remote = ["env", "-C", "/", "sh", "-c", script]
    args = ssh_args(target, target.hosts[0], remote, tty=os.isatty(0))
    raise SystemExit(subprocess.run(args, check=False).returncode)


COMMANDS = [
    redis_create, redis_list, redis_info, redis_link, redis_unlink, redis_destroy, redis_cli,
]  # fmt: skip
