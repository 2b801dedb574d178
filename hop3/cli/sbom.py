"""hop sbom: a CycloneDX software bill of materials of an app or the platform."""

from __future__ import annotations

import json
from pathlib import Path

import click

from hop3.errors import HopError

from .options import RunOptions, run_options
from .output import raise_on_failure


@click.command()
@click.argument("app", required=False)
@click.option(
    "--platform",
    is_flag=True,
    help="Describe Hop3's host components (nginx, sshd, ...) instead of an app.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the SBOM to FILE (several hosts: FILE with the host name before the extension).",
)
@run_options
def sbom(app: str | None, platform: bool, output: Path | None, opts: RunOptions) -> None:
    """Print a CycloneDX SBOM of APP's current release (or, with --platform, of the hosts)."""
    from hop3.appspec import validate_app_name
    from hop3.runner import run_playbook
    from hop3.sbom import sbom_document
    from hop3.targets import resolve_target

    if bool(app) == platform:
        raise HopError(
            "Name an app or pass --platform (not both).",
            "`hop sbom APP` describes an app's release; `hop sbom --platform` the hosts.",
        )
    extravars = {"hop3_sbom_platform": True} if platform else {"hop3_app_name": app}
    if app:
        validate_app_name(app)
    target = resolve_target(opts.target, opts.inventory)
    result = run_playbook("sbom", inventory=target.inventory, limit=target.limit, verb="sbom",
                          extravars=extravars, verbose=opts.verbose, quiet=True,
                          record=False)  # fmt: skip
    raise_on_failure(result, opts.json)
    reports = {h: r for h, r in sorted(result.reports.items()) if r.get("exists")}
    if not reports:
        where = ", ".join(sorted(result.reports)) or "the target"
        raise HopError(
            f"There is no app named '{app}' on {where}.",
            "`hop apps` lists the apps; deploy one with `hop deploy PATH --app NAME`.",
        )
    several = len(result.reports) > 1
    for host in sorted(set(result.reports) - set(reports)):
        click.echo(f"{host}: there is no app named '{app}' here.", err=True)
    for host, report in reports.items():
        if report.get("missing_packages"):
            click.echo(f"{host}: not installed: {', '.join(report['missing_packages'])}", err=True)
    documents = {host: sbom_document(report, host) for host, report in reports.items()}
    if output is None:
        if not several and not opts.json:
            click.echo(json.dumps(next(iter(documents.values())), indent=2))
        else:
            click.echo(json.dumps(documents, indent=2))
        return
    written = {}
    for host, document in documents.items():
        path = host_path(output, host) if several else output
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2) + "\n")
        written[host] = str(path)
        if not opts.json:
            what = app or "platform"
            release = reports[host].get("release") or reports[host].get("hop3_version") or ""
            count = len(document.get("components", []))
            click.echo(f"SBOM of {what} {release} on {host}: {count} components in {path}")
    if opts.json:
        click.echo(json.dumps(written, indent=2))


def host_path(path: Path, host: str) -> Path:
    """FILE with the host name inserted before its extension: sbom.json → sbom.web-1.json."""
    if path.suffix:
        return path.with_name(f"{path.stem}.{host}{path.suffix}")
    return path.with_name(f"{path.name}.{host}")


COMMANDS = [sbom]
