"""Redis instances for apps: redis:create, redis:list, redis:info, redis:link,
redis:unlink, redis:destroy, redis:cli.

Each instance is an ACL user of the host's Redis, restricted to the keys
``NAME:*``, with a password generated on the host and kept there;
`redis:link` hands its URL to an app as REDIS_URL (and the prefix as
REDIS_KEY_PREFIX). Secrets are shown only with `redis:info --show-secrets`.
"""

from __future__ import annotations

import re
import shlex

import click

from hop3.errors import HopError

from . import services
from .options import RunOptions, run_options

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


REDIS = services.Service(
    prefix="redis", kind="Redis instance", plural="instances", playbook="redis",
    var_prefix="hop3_redis_", env="REDIS_URL and REDIS_KEY_PREFIX",
    linked="REDIS_URL, REDIS_KEY_PREFIX={name}:", validate=validate_redis_name,
)  # fmt: skip


def _list_row(host: str, item: dict) -> str:
    links = ", ".join(item.get("links", [])) or "-"
    prefix = item.get("key_prefix", item["name"] + ":")
    return f"{host:<16} {item['name']:<24} {prefix:<25}  {links}"


def _info_details(name: str, report: dict) -> list[tuple[str, object]]:
    return [("Key prefix", report.get("key_prefix", name + ":"))]


redis_create = services.create_command(
    REDIS,
    "Create Redis instance NAME: a user limited to keys NAME:* (installs Redis on first use).",
    label="Redis",
)
redis_list = services.list_command(
    REDIS, "List the Redis instances on the target's hosts.", key="instances",
    empty="No Redis instances. Create one with `hop redis:create NAME`.",
    header=f"{'HOST':<16} {'NAME':<24} {'PREFIX':<25}  LINKED APPS", row=_list_row,
)  # fmt: skip
redis_info = services.info_command(
    REDIS, "Show Redis instance NAME: key prefix, linked apps.",
    secrets_help="Also print the URL (password).", details=_info_details,
)  # fmt: skip
redis_link, redis_unlink = services.link_commands(
    REDIS, note=" APP must prefix its keys with NAME:."
)
redis_destroy = services.destroy_command(
    REDIS, "Delete Redis instance NAME (its user and credentials).",
    confirm="Destroy Redis instance {name}?",
)  # fmt: skip


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
    services.open_shell("redis:cli", opts, ["env", "-C", "/", "sh", "-c", cli_script(name)])


COMMANDS = [
    redis_create, redis_list, redis_info, redis_link, redis_unlink, redis_destroy, redis_cli,
]  # fmt: skip
