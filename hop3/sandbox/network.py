"""Sandbox networking: one bridge with NAT to the outside, and per host a
network namespace joined to it by a veth pair.

Everything made here is named with a ``hop3`` prefix so that `down` removes
exactly what `up` made and nothing else.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from hop3.errors import HopError

from .shell import run

_FORWARD_SYSCTL = Path("/proc/sys/net/ipv4/ip_forward")


def net_id() -> int:
    """Which sandbox network (0-99): separate ones let tests run beside a demo."""
    value = os.environ.get("HOP3_SANDBOX_NET", "0")
    if not (value.isdigit() and 0 <= int(value) <= 99):
        raise HopError(
            f"HOP3_SANDBOX_NET must be a number from 0 to 99, got {value!r}.",
            "Unset it to use the default sandbox network.",
        )
    return int(value)


def bridge() -> str:
    return f"hop3sbr{net_id()}"


def _suffix() -> str:
    """Network 0 keeps the plain names; others add their digit."""
    return str(net_id()) if net_id() else ""


def nft_table() -> str:
    return f"hop3_sandbox{_suffix()}"


def subnet() -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(f"10.213.{net_id()}.0/24")


def gateway() -> ipaddress.IPv4Address:
    return subnet().network_address + 1


def host_address(index: int) -> ipaddress.IPv4Address:
    return subnet().network_address + 10 + index


def host_mac(index: int) -> str:
    """A fixed MAC (locally administered) made of the host's address: a host
    booted again keeps it, so the other hosts' ARP caches stay right."""
    return "02:00:" + ":".join(f"{octet:02x}" for octet in host_address(index).packed)


def _netns_prefix() -> str:
    return f"hop3-sandbox{_suffix()}-"


def netns_name(index: int) -> str:
    return f"{_netns_prefix()}{index}"


def veth_name(index: int) -> str:
    # Interface names are limited to 15 characters.
    return f"hop3sb{_suffix()}-{index}" if net_id() else f"hop3sb{index}"


def _link_exists(name: str) -> bool:
    return run("ip", "link", "show", name, check=False).returncode == 0


def netns_exists(index: int) -> bool:
    return Path("/run/netns", netns_name(index)).exists()


def read_forwarding() -> str:
    return _FORWARD_SYSCTL.read_text().strip()


def write_forwarding(value: str) -> None:
    _FORWARD_SYSCTL.write_text(value + "\n")


def ensure_bridge() -> None:
    """Bridge, gateway address and NAT; safe to call when they exist."""
    if not _link_exists(bridge()):
        run("ip", "link", "add", bridge(), "type", "bridge")
    prefix = subnet().prefixlen
    addrs = run("ip", "-o", "-4", "addr", "show", "dev", bridge()).stdout
    if f"{gateway()}/{prefix}" not in addrs:
        run("ip", "addr", "add", f"{gateway()}/{prefix}", "dev", bridge())
    run("ip", "link", "set", bridge(), "up")
    write_forwarding("1")
    if run("nft", "list", "table", "ip", nft_table(), check=False).returncode != 0:
        net = subnet()
        ruleset = f"""
table ip {nft_table()} {{
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        ip saddr {net} ip daddr != {net} masquerade
    }}
    chain forward {{
        type filter hook forward priority filter; policy accept;
        iifname "{bridge()}" accept
        oifname "{bridge()}" ct state established,related accept
    }}
}}
"""
        run("nft", "-f", "-", input=ruleset)


def other_bridges() -> list[str]:
    """Bridges of other sandbox networks still present on this machine."""
    links = run("ip", "-o", "link", "show", "type", "bridge").stdout
    names = [line.split(":")[1].strip() for line in links.splitlines() if ":" in line]
    return [n for n in names if n.startswith("hop3sbr") and n != bridge()]


def remove_bridge() -> None:
    if run("nft", "list", "table", "ip", nft_table(), check=False).returncode == 0:
        run("nft", "delete", "table", "ip", nft_table())
    if _link_exists(bridge()):
        run("ip", "link", "del", bridge())


def ensure_netns(index: int) -> None:
    """A namespace with eth0 on the bridge, its address and default route."""
    ns, veth = netns_name(index), veth_name(index)
    if not netns_exists(index):
        run("ip", "netns", "add", ns)
    if not _link_exists(veth):
        run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0",
            "address", host_mac(index), "netns", ns)  # fmt: skip
    run("ip", "link", "set", veth, "master", bridge(), "up")
    addr = f"{host_address(index)}/{subnet().prefixlen}"
    if addr not in run("ip", "-n", ns, "-o", "-4", "addr", "show", "dev", "eth0").stdout:
        run("ip", "-n", ns, "addr", "add", addr, "dev", "eth0")
    run("ip", "-n", ns, "link", "set", "lo", "up")
    run("ip", "-n", ns, "link", "set", "eth0", "up")
    run("ip", "-n", ns, "route", "replace", "default", "via", str(gateway()))
    # A host booted again on a new veth has a new MAC: forget the old one, or
    # the bridge keeps sending to it until its neighbour entry expires (~10 s).
    run("ip", "neigh", "flush", "to", str(host_address(index)), "dev", bridge())


def remove_netns(index: int) -> None:
    if _link_exists(veth_name(index)):
        run("ip", "link", "del", veth_name(index))
    if netns_exists(index):
        run("ip", "netns", "del", netns_name(index))


def index_of(name: str) -> int | None:
    """The host index in a namespace (or machine) name of this network, else None."""
    prefix = _netns_prefix()
    if name.startswith(prefix) and name[len(prefix) :].isdigit():
        return int(name[len(prefix) :])
    return None


def existing_indexes() -> list[int]:
    """Indexes of sandbox namespaces present on this machine."""
    netns_dir = Path("/run/netns")
    if not netns_dir.is_dir():
        return []
    found = {index_of(entry.name) for entry in netns_dir.iterdir()}
    return sorted(i for i in found if i is not None)


def flush_firewall(index: int) -> None:
    """Drop the nftables ruleset inside a host's namespace, as a power cycle does
    (the host must load its firewall again when it boots)."""
    if netns_exists(index):
        run("ip", "netns", "exec", netns_name(index), "nft", "flush", "ruleset")
