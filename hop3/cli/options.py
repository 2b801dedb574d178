"""Options shared by many commands, as decorators, so each command takes them
after its own name (``hop setup -t sandbox``)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click


@dataclass(frozen=True)
class RunOptions:
    """What every command that touches hosts needs to know."""

    target: str | None
    inventory: Path | None
    verbose: int
    json: bool


def run_options(func: Callable) -> Callable:
    """Add -t/--target, -i/--inventory, -v and --json; pass them as ``opts``."""

    @click.option(
        "-t",
        "--target",
        envvar="HOP3_TARGET",
        help="Host, group or 'all' to act on (default: $HOP3_TARGET, or the only host).",
    )
    @click.option(
        "-i",
        "--inventory",
        type=click.Path(path_type=Path, dir_okay=True),
        envvar="HOP3_INVENTORY",
        help="Use this Ansible inventory instead of Hop3's own.",
    )
    @click.option("-v", "--verbose", count=True, help="Show full Ansible output (-vvv for more).")
    @click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
    @functools.wraps(func)
    def wrapper(*args, target, inventory, verbose, as_json, **kwargs):
        opts = RunOptions(target=target, inventory=inventory, verbose=verbose, json=as_json)
        return func(*args, opts=opts, **kwargs)

    return wrapper


def json_option(func: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")(func)
