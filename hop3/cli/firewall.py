"""Hop3's host firewall: `hop firewall`, `hop firewall:allow`, `hop firewall:deny`.

The firewall itself is the hop3_firewall role (nftables, one table of Hop3's
own, inbound default deny), set up by `hop setup`. These commands show it and
manage the admin's extra rules, kept on each host in /etc/hop3/firewall.json;
every change is applied by playbooks/firewall.yml behind a rollback guard.
Input is checked here, before any host is touched.
"""

from __future__ import annotations

import ipaddress
import json
import re

import click

from hop3.errors import HopError

from .options import RunOptions, run_options
from .output import finish, raise_on_failure

PROTOS = ("tcp", "udp")
# TCP ports the role always opens: rules on them are set in the inventory.
BASE_PORTS = {22: "SSH", 80: "HTTP", 443: "HTTPS"}
_PORT_RE = re.compile(r"^(\d+)(?:/([A-Za-z0-9]+))?$")
_ORIGINS = {"ssh": "SSH", "web": "web (nginx)", "inventory": "inventory",
            "cli": "firewall:allow"}  # fmt: skip
_SHOW_HINT = "`hop firewall` lists the rules."


def parse_port(text: str) -> tuple[int, str]:
    """``PORT`` or ``PORT/PROTO`` → (port, proto); proto defaults to tcp."""
    match = _PORT_RE.fullmatch(text.strip())
    if not match:
        raise HopError(
            f"'{text}' is not a port.",
            "Give a port number, optionally with its protocol: 8000, 8000/tcp or 51820/udp.",
        )
    port = int(match[1])
    if not 1 <= port <= 65535:
        raise HopError(f"Port {port} is out of range.", "Ports go from 1 to 65535.")
    proto = (match[2] or "tcp").lower()
    if proto not in PROTOS:
        raise HopError(
            f"'{match[2]}' is not a protocol the firewall handles.",
            "Use tcp (the default) or udp, e.g. 51820/udp.",
        )
    return port, proto


def parse_source(text: str | None) -> str | None:
    """An IPv4/IPv6 network in canonical form, one address without its /32 or /128
    (None: any source)."""
    if text is None:
        return None
    value = text.strip()
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        pass
    else:
        if network.prefixlen == network.max_prefixlen:
            return str(network.network_address)
        return str(network)
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise HopError(
            f"'{text}' is not an IP address or network.",
            "Use an address (203.0.113.7, 2001:db8::7) or a network in CIDR form "
            "(203.0.113.0/24, 2001:db8::/48).",
        ) from None
    raise HopError(
        f"'{text}' is not a network address: its host bits are set.",
        f"Use --from {network} for the whole network, or the address alone for one host.",
    )


def parse_rule(port_text: str, source_text: str | None, verb: str) -> dict:
    """The rule of firewall:allow or firewall:deny, validated; base ports are refused."""
    port, proto = parse_port(port_text)
    source = parse_source(source_text)
    if proto == "tcp" and port in BASE_PORTS:
        name = BASE_PORTS[port]
        setting = "hop3_firewall_ssh_sources" if port == 22 else "hop3_firewall_web_ports"
        why = "is open to the sources in" if port == 22 else "is open to everyone, set by"
        raise HopError(
            f"{port}/tcp ({name}) is a base rule of Hop3's firewall: "
            f"`hop firewall:{verb}` does not change it.",
            f"It {why} {setting} in the inventory: change that, then run `hop setup`.",
        )
    return {"port": port, "proto": proto, "source": source}


def describe(rule: dict) -> str:
    return f"{rule['port']}/{rule['proto']} from {rule['source'] or 'any source'}"


def _run(action: str, opts: RunOptions, quiet: bool | None = None, **values):
    from hop3.runner import run_playbook
    from hop3.targets import resolve_target

    target = resolve_target(opts.target, opts.inventory)
    extravars = {"hop3_firewall_action": action}
    extravars.update({f"hop3_firewall_{key}": value for key, value in values.items()})
    return run_playbook(
        "firewall",
        inventory=target.inventory,
        limit=target.limit,
        verb="firewall" if action == "show" else f"firewall:{action}",
        extravars=extravars,
        verbose=opts.verbose,
        quiet=opts.json if quiet is None else quiet,
        record=action != "show",
    )


@click.command("firewall")
@click.option("--raw", is_flag=True, help="Print the live table as `nft list` shows it.")
@run_options
def firewall(raw: bool, opts: RunOptions) -> None:
    """Show the firewall of each host: the open ports and who may reach them.

    Inbound traffic is dropped unless a rule accepts it (IPv4 and IPv6):
    SSH, the web ports, the inventory's rules (hop3_firewall_rules) and those
    added with `hop firewall:allow`.
    """
    result = _run("show", opts, quiet=True, raw=raw)
    raise_on_failure(result, opts.json)
    reports = dict(sorted(result.reports.items()))
    if opts.json:
        click.echo(json.dumps(reports, indent=2))
        return
    for index, (host, report) in enumerate(reports.items()):
        if raw:
            if len(reports) > 1:
                click.echo(f"==> {host} <==")
            click.echo(report.get("raw") or "(no table inet hop3)\n", nl=False)
            continue
        if index:
            click.echo()
        for line in host_lines(host, report):
            click.echo(line)


def host_lines(host: str, report: dict) -> list[str]:
    """The readable form of one host's report."""
    rules = report.get("applied_rules")
    if not report.get("loaded") or rules is None:
        return [f"{host}: no Hop3 firewall (run `hop setup`): all ports are open."]
    lines = [f"{host}: inbound traffic dropped unless allowed below (IPv4 and IPv6)"]
    if not report.get("in_sync"):
        lines.append("  ! The live rules differ from /etc/hop3/firewall.nft (changed by hand?): "
                     "`hop setup` loads the file again.")  # fmt: skip
    if report.get("pending"):
        lines.append("  ! The configured rules changed since they were applied: run `hop setup`.")
    if report.get("guard"):
        lines.append("  ! A change awaits confirmation: its rollback guard is armed.")
    lines.append(f"  {'PORT':<7}{'PROTO':<7}{'FROM':<34}RULE")
    for rule in rules:
        sources = ", ".join(rule.get("sources") or []) or "any"
        origin = _ORIGINS.get(rule.get("origin"), rule.get("origin", "?"))
        lines.append(f"  {rule['port']:<7}{rule['proto']:<7}{sources:<34}{origin}")
    return lines


@click.command("firewall:allow")
@click.argument("port", metavar="PORT[/PROTO]")
@click.option(
    "--from",
    "source",
    metavar="CIDR",
    help="Only from this address or network (IPv4 or IPv6); default: any source.",
)
@run_options
def firewall_allow(port: str, source: str | None, opts: RunOptions) -> None:
    """Open PORT (tcp unless /udp) to any source, or to --from CIDR only.

    The rule is kept on each host (/etc/hop3/firewall.json), so `hop setup`
    keeps it; it is applied at once, behind a rollback guard.
    """
    rule = parse_rule(port, source, "allow")
    result = _run("allow", opts, rule=rule)
    changed, same = _split_hosts(result, "rule_changed")
    lines = []
    if changed:
        lines.append(f"Allowed {describe(rule)} on {', '.join(changed)}.")
    if same:
        lines.append(f"{describe(rule)} was already allowed on {', '.join(same)}.")
    finish(result, opts.json, success="\n".join(lines) or None)


@click.command("firewall:deny")
@click.argument("port", metavar="PORT[/PROTO]")
@click.option("--from", "source", metavar="CIDR",
              help="Remove the rule for this source (as given to firewall:allow).")  # fmt: skip
@run_options
def firewall_deny(port: str, source: str | None, opts: RunOptions) -> None:
    """Remove a rule added with `hop firewall:allow` (same PORT and --from).

    The port is closed again unless another rule opens it. SSH (22) and the
    web ports (80, 443) are base rules and cannot be denied.
    """
    rule = parse_rule(port, source, "deny")
    result = _run("deny", opts, rule=rule)
    removed, absent = _split_hosts(result, "rule_changed")
    inventory = [h for h in absent if result.reports[h].get("in_inventory")]
    lines = []
    if removed:
        lines.append(f"Removed the rule {describe(rule)} on {', '.join(removed)}.")
    if inventory:
        lines.append(f"On {', '.join(inventory)}, {describe(rule)} comes from "
                     "hop3_firewall_rules in the inventory: remove it there, then run "
                     "`hop setup`.")  # fmt: skip
    others = [h for h in absent if h not in inventory]
    if others:
        lines.append(f"No rule {describe(rule)} on {', '.join(others)}: nothing removed. "
                     f"{_SHOW_HINT}")  # fmt: skip
    finish(result, opts.json, success="\n".join(lines) or None)


def _split_hosts(result, key: str) -> tuple[list[str], list[str]]:
    """Hosts whose report says ``key`` is true, and the others that reported."""
    hosts = sorted(result.reports)
    return ([h for h in hosts if result.reports[h].get(key)],
            [h for h in hosts if not result.reports[h].get(key)])  # fmt: skip


COMMANDS = [firewall, firewall_allow, firewall_deny]
