"""Shared rendering of playbook results for commands that run one."""

from __future__ import annotations

import json

import click

from hop3.errors import HopError


def finish(result, as_json: bool, success: str | None = None) -> None:
    """Print the outcome of a run and fail the command when the run failed.

    The live display has already shown progress and the recap; this adds the
    JSON form or the success line, then the exit code.
    """
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    elif result.ok and success:
        click.echo(success)
    raise_on_failure(result, as_json)


def raise_on_failure(result, as_json: bool) -> None:
    """Exit non-zero for a failed run, with the short summary unless --json."""
    if result.ok:
        return
    if as_json:
        raise click.exceptions.Exit(1)
    from hop3.runner import format_failure_summary

    raise HopError(format_failure_summary(result))
