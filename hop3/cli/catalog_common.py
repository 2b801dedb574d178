"""Steps shared by hop catalog install and upgrade."""

from __future__ import annotations

from pathlib import Path

import click

from hop3.errors import HopError

from .apps import run_deploy
from .options import RunOptions
from .output import raise_on_failure


def check_version(entry, version: str) -> str:
    from hop3.catalog.entry import VERSION_RE

    if not VERSION_RE.fullmatch(version):
        raise HopError(f"{version!r} is not a version.", f"Use e.g. {entry.version}.")
    if version != entry.version and not entry.pinnable:
        raise HopError(
            f"{entry.title} comes from Debian's packages, which ship one version "
            f"({entry.version}); {version} cannot be installed.",
            "Leave --version/--to out; `hop setup` upgrades Debian packages.",
        )
    return version


def refuse_other_app(name: str, entry_name: str, opts: RunOptions) -> None:
    """Never replace an app that was not installed from this entry."""
    from .appcommon import run_app_playbook

    _, result = run_app_playbook("app-info", name, opts, "catalog:install", quiet=True)
    raise_on_failure(result, opts.json)
    for host, report in sorted(result.reports.items()):
        # An app without a current release (a first deploy that failed) runs nothing.
        if report.get("exists") and report.get("release") and report.get("catalog") != entry_name:
            raise HopError(
                f"{host} already has an app named {name!r} that is not {entry_name} from "
                "the catalog; installing would replace it.",
                f"Pick another name with --name, or remove it with `hop destroy {name}`.",
            )


def install_version(
    entry,
    tmp: Path,
    name: str,
    version: str,
    domains: list[str],
    opts: RunOptions,
    *,
    verb: str,
    limit: str | None = None,
):
    from hop3.catalog import render

    folder = render(entry, tmp / name, name=name, version=version, domains=domains)
    return run_deploy(folder, name, opts, limit=limit, verb=verb)


def smoke_one(entry, report: dict):
    """The entry's smoke check against one host's deploy report."""
    from hop3.catalog.smoke import smoke_check

    return smoke_check(
        report["address"], report["domains"][0], entry.smoke_path, entry.smoke_contains
    )


def smoke_all(entry, name: str, reports: dict, opts: RunOptions) -> None:
    for host, report in sorted(reports.items()):
        smoke = smoke_one(entry, report)
        if not smoke.ok:
            raise HopError(
                f"{name} is deployed on {host}, but its smoke check failed: {smoke.detail}.",
                f"See `hop logs {name} -t {host}`; `hop destroy {name}` removes it.",
            )
        if not opts.json:
            click.echo(f"smoke check on {host}: {smoke.detail}")
