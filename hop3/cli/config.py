"""Config and domain commands: config, config:get, config:set, config:unset,
domains:add, domains:remove. Values are stored and passed exactly as given."""

from __future__ import annotations

import json

import click

from hop3.errors import HopError

from .appcommon import app_reports, run_app_playbook
from .options import RunOptions, run_options
from .output import finish

MASK = "********"


@click.command()
@click.argument("app")
@click.option("--shell", "shell_format", is_flag=True, help="Print KEY='value' lines.")
@click.option("--masked", is_flag=True, help="Show the names only, every value as ********.")
@run_options
def config(app: str, shell_format: bool, masked: bool, opts: RunOptions) -> None:
    """Show APP's config variables."""
    import shlex

    reports = app_reports(app, opts, "config", with_config=True)
    values = _one_view(reports, "config")
    if masked:
        values = dict.fromkeys(values, MASK)
    if opts.json:
        click.echo(json.dumps(values, indent=2))
        return
    for key, value in sorted(values.items()):
        click.echo(f"{key}={shlex.quote(value)}" if shell_format else f"{key}: {value}")


@click.command("config:get")
@click.argument("app")
@click.argument("key")
@run_options
def config_get(app: str, key: str, opts: RunOptions) -> None:
    """Print the value of KEY in APP's config, exactly."""
    values = _one_view(app_reports(app, opts, "config", with_config=True), "config")
    if key not in values:
        raise HopError(f"App '{app}' has no config variable {key}.",
                       f"Its variables: {', '.join(sorted(values)) or 'none'}.")  # fmt: skip
    click.echo(json.dumps(values[key]) if opts.json else values[key], nl=opts.json)


def _one_view(reports: dict, key: str):
    """The hosts' values of ``key``; they must agree (an app is the same everywhere)."""
    views = {json.dumps(r[key], sort_keys=True) for r in reports.values()}
    if len(views) > 1:
        raise HopError(
            f"The hosts disagree about this app's {key}: {', '.join(sorted(reports))}.",
            "Pick one host with -t, or set the values again on all of them.",
        )
    return next(iter(reports.values()))[key]


def _parse_assignments(pairs: tuple[str, ...]) -> dict[str, str]:
    from hop3.appspec import validate_env_key

    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise HopError(f"'{pair}' is not an assignment.",
                           "Write KEY=value, e.g. `hop config:set shop DEBUG=0`.")  # fmt: skip
        validate_env_key(key)
        values[key] = value
    return values


# A config change without domain changes has no vhost to write
# (playbooks/config.yml): its step is left out rather than skipped.
NO_DOMAIN_STEP = ("hop3_config_domains",)


@click.command("config:set")
@click.argument("app")
@click.argument("assignments", nargs=-1, required=True, metavar="KEY=VALUE...")
@click.option("--no-restart", is_flag=True, help="Store the values; processes see them later.")
@run_options
def config_set(app: str, assignments: tuple[str, ...], no_restart: bool, opts: RunOptions):
    """Set config variables of APP and restart it without downtime."""
    values = _parse_assignments(assignments)
    _, result = run_app_playbook(
        "config", app, opts, "config:set", skip_tags=NO_DOMAIN_STEP,
        hop3_app_env_set=values, hop3_app_restart=not no_restart,
    )  # fmt: skip
    finish(result, opts.json, success=f"Set {', '.join(values)} on {app}.")


@click.command("config:unset")
@click.argument("app")
@click.argument("keys", nargs=-1, required=True)
@click.option("--no-restart", is_flag=True, help="Store the change; processes see it later.")
@run_options
def config_unset(app: str, keys: tuple[str, ...], no_restart: bool, opts: RunOptions):
    """Remove config variables of APP and restart it without downtime."""
    from hop3.appspec import validate_env_key

    for key in keys:
        validate_env_key(key)
    _, result = run_app_playbook(
        "config", app, opts, "config:unset", skip_tags=NO_DOMAIN_STEP,
        hop3_app_env_unset=list(keys), hop3_app_restart=not no_restart,
    )  # fmt: skip
    finish(result, opts.json, success=f"Unset {', '.join(keys)} on {app}.")


def _domains_command(name: str, verb: str):
    @click.command(name, help=f"{verb.capitalize()} DOMAIN to/from APP's vhost.")
    @click.argument("app")
    @click.argument("domain")
    @run_options
    def command(app: str, domain: str, opts: RunOptions) -> None:
        from hop3.appspec import validate_domain

        domain = validate_domain(domain)
        app_reports(app, opts, name)
        key = "hop3_app_domains_add" if verb == "add" else "hop3_app_domains_remove"
        _, result = run_app_playbook("config", app, opts, name, **{key: [domain]})
        finish(result, opts.json, success=f"{'Added' if verb == 'add' else 'Removed'} {domain}.")

    return command


domains_add = _domains_command("domains:add", "add")
domains_remove = _domains_command("domains:remove", "remove")

COMMANDS = [config, config_get, config_set, config_unset, domains_add, domains_remove]
