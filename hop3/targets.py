"""The user's servers (Hop3's own Ansible inventory) and target resolution.

Hop3 keeps its servers in ``config_dir()/inventory.yml``, a plain Ansible YAML
inventory (``all: {hosts: ..., children: {<group>: {hosts: ...}}}``), so the
user can run ``ansible-playbook -i`` on it too. A host that belongs to groups
is listed, with its variables, under each of them; an ungrouped host is listed
under ``all.hosts``.

Hop3's own inventory is read with plain YAML (fast: ``hop server list`` never
imports Ansible). An inventory given with ``-i`` can be anything Ansible
reads (YAML, INI, a directory, a script), so it is parsed with Ansible's own
``InventoryManager``, and a source Ansible cannot parse is a ``HopError``.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hop3 import paths
from hop3.errors import HopError

RESERVED_GROUPS = ("all", "ungrouped")
DEFAULT_USER = "root"
DEFAULT_PORT = 22

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
# Ansible warns on every run about group names that are not identifiers.
_GROUP_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_USER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
_NO_SERVERS_HINT = (
    "Add one with `hop server add NAME user@host` or boot local test hosts with `hop sandbox up`."
)
_HEADER = """\
# Hop3's servers: a plain Ansible inventory (usable with `ansible-playbook -i`).
# Managed by `hop server add/remove` and `hop sandbox`; comments are not kept.
"""


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Target:
    """Where a command acts: what to hand to ansible-runner."""

    inventory: Path  # absolute path to give ansible-runner
    limit: str  # host pattern for --limit
    hosts: list[str]  # resolved host names, sorted


@dataclass(frozen=True)
class Address:
    """Where and as whom to reach a server over SSH."""

    host: str
    port: int = DEFAULT_PORT
    user: str = DEFAULT_USER

    def __str__(self) -> str:
        return format_address(self.host, self.port, self.user)

    def host_vars(self) -> dict[str, Any]:
        """The Ansible variables Hop3 stores for this address."""
        result: dict[str, Any] = {"ansible_host": self.host}
        if self.port != DEFAULT_PORT:
            result["ansible_port"] = self.port
        result["ansible_user"] = self.user
        if self.user != "root":
            result["ansible_become"] = True
        return result


@dataclass(frozen=True)
class Inventory:
    """A read-only view of an inventory: hosts, groups and variables."""

    path: Path
    host_map: dict[str, dict[str, Any]] = field(default_factory=dict)  # host -> variables
    group_map: dict[str, set[str]] = field(default_factory=dict)  # group -> all its hosts
    warnings: tuple[str, ...] = ()  # what Ansible said while parsing (not shown)

    def hosts(self) -> list[str]:
        return sorted(self.host_map)

    def groups(self) -> list[str]:
        """Group names, without the implicit 'all' and 'ungrouped'."""
        return sorted(g for g in self.group_map if g not in RESERVED_GROUPS)

    def host_vars(self, name: str) -> dict[str, Any]:
        """The host's inventory variables (group variables merged in)."""
        return dict(self.host_map[name])

    def groups_of(self, name: str) -> list[str]:
        return [g for g in self.groups() if name in self.group_map[g]]

    def hosts_of(self, group: str) -> list[str]:
        if group == "all":
            return self.hosts()
        return sorted(self.group_map.get(group, ()))

    def address(self, name: str) -> str:
        """``user@host:port`` as Ansible would connect (user omitted when unset)."""
        hvars = self.host_map[name]
        port = hvars.get("ansible_port", DEFAULT_PORT)
        with contextlib.suppress(TypeError, ValueError):
            port = int(port)
        user = hvars.get("ansible_user")
        return format_address(str(hvars.get("ansible_host", name)), port, user)


def format_address(host: str, port: int | str, user: str | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    prefix = f"{user}@" if user else ""
    return f"{prefix}{shown}:{port}"


# --------------------------------------------------------------------------- validation


def validate_name(name: str) -> str:
    if name in RESERVED_GROUPS:
        raise _reserved(name, "server name", "web-1")
    if not _NAME_RE.match(name):
        raise HopError(
            f"{name!r} is not a valid server name:",
            "use lowercase letters, digits, '.', '_' or '-' (at most 63 characters), e.g. web-1.",
        )
    return name


def validate_group(group: str) -> str:
    if group in RESERVED_GROUPS:
        raise _reserved(group, "group name", "web")
    if not _GROUP_RE.match(group):
        raise HopError(
            f"{group!r} is not a valid group name:",
            "use lowercase letters, digits and '_', not starting with a digit "
            "(at most 63 characters), e.g. web or prod_db.",
        )
    return group


def _reserved(name: str, what: str, example: str) -> HopError:
    return HopError(
        f"{name!r} is not a valid {what}:",
        f"Ansible reserves 'all' and 'ungrouped'; choose another, e.g. {example}.",
    )


def parse_address(address: str) -> Address:
    """Parse ``[user@]host[:port]``; an IPv6 host with a port is ``[::1]:2222``."""
    user, at, rest = address.partition("@")
    if not at:
        user, rest = DEFAULT_USER, address
    elif not _USER_RE.match(user):
        raise HopError(
            f"{user!r} in {address!r} is not a valid user name:",
            "use letters, digits, '_', '.' or '-', starting with a letter or '_' "
            "(at most 32 characters), e.g. deploy@203.0.113.10.",
        )
    host, port_text = _split_port(rest, address)
    return Address(_validate_host(host, address), _parse_port(port_text, address), user)


def _split_port(rest: str, address: str) -> tuple[str, str | None]:
    if rest.startswith("["):
        host, bracket, tail = rest[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")) or ":" not in host:
            raise _bad_host(rest, address)
        return host, tail[1:] if tail else None
    if rest.count(":") > 1:  # a bare IPv6 address, no port
        return rest, None
    host, colon, port = rest.partition(":")
    return host, port if colon else None


def _validate_host(host: str, address: str) -> str:
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(host))
    lowered = host.lower()
    if ":" in host or re.fullmatch(r"[0-9.]+", host) or not _HOSTNAME_RE.match(lowered):
        raise _bad_host(host, address)
    return lowered


def _bad_host(host: str, address: str) -> HopError:
    return HopError(
        f"{host!r} in {address!r} is not a valid host:",
        "use a host name or an IPv4/IPv6 address, optionally with user and port, "
        "e.g. deploy@203.0.113.10:2222 or root@[2001:db8::1]:2222.",
    )


def _parse_port(text: str | None, address: str) -> int:
    if text is None:
        return DEFAULT_PORT
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise HopError(
            f"{text!r} in {address!r} is not a valid port:",
            "use a number from 1 to 65535, e.g. root@203.0.113.10:2222.",
        )
    return int(text)


# --------------------------------------------------------------------------- reading


def hop_inventory_path() -> Path:
    """Hop3's own inventory file (it may not exist yet)."""
    return (paths.config_dir() / "inventory.yml").absolute()


def load_inventory(path: Path) -> Inventory:
    """Read an inventory: Hop3's own with plain YAML, any other with Ansible."""
    path = Path(path).expanduser().absolute()
    if path == hop_inventory_path():
        return _view(path, _read_tree(path))
    return _load_with_ansible(path)


def _read_tree(path: Path) -> dict[str, Any]:
    """Hop3's inventory as a normalised YAML tree (empty if the file is missing)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {"all": {}}
    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as err:
        raise HopError(
            f"Hop3's inventory {path} is not valid YAML ({_first_line(err)}).",
            "Fix the file by hand, or move it away and add the servers again "
            "with `hop server add`.",
        ) from err
    data = data if data is not None else {}
    if not isinstance(data, dict) or not isinstance(data.get("all", {}), dict | None):
        raise HopError(
            f"Hop3's inventory {path} is not an Ansible YAML inventory.",
            "It must be a mapping with a top-level 'all' group; fix it or move it away.",
        )
    data["all"] = _normalise_group(data.get("all"))
    return data


def _normalise_group(node: Any) -> dict[str, Any]:
    """Replace YAML nulls (``web:``) with mappings, recursively, in place."""
    node = node if isinstance(node, dict) else {}
    for key in ("hosts", "children"):
        if key in node:
            node[key] = {k: v if isinstance(v, dict) else {} for k, v in (node[key] or {}).items()}
    for name, child in node.get("children", {}).items():
        node["children"][name] = _normalise_group(child)
    return node


def _walk(node: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], int, tuple[str, ...]]]:
    """Yield (group, node, depth, lineage) for each group node under ``all``, depth first."""
    stack: list[tuple[str, dict[str, Any], int, tuple[str, ...]]] = [("all", node, 0, ("all",))]
    while stack:
        group, current, level, lineage = stack.pop()
        yield group, current, level, lineage
        for child, sub in reversed(current.get("children", {}).items()):
            if child not in lineage:  # Ansible rejects cycles; do not loop on them
                stack.append((child, sub, level + 1, (*lineage, child)))


def _view(path: Path, tree: dict[str, Any]) -> Inventory:
    own_vars: dict[str, dict[str, Any]] = {}
    members: dict[str, set[str]] = {"all": set()}
    group_vars: dict[str, tuple[int, dict[str, Any]]] = {}
    for group, node, depth, lineage in _walk(tree["all"]):
        members.setdefault(group, set())
        previous = group_vars.get(group, (depth, {}))
        group_vars[group] = (min(depth, previous[0]), {**previous[1], **(node.get("vars") or {})})
        for host, hvars in node.get("hosts", {}).items():
            own_vars[host] = {**own_vars.get(host, {}), **hvars}
            for ancestor in ("all", *lineage):
                members.setdefault(ancestor, set()).add(host)

    def effective(host: str) -> dict[str, Any]:
        groups = sorted((group_vars[g][0], g) for g in members if host in members[g])
        merged: dict[str, Any] = {}
        for _, group in groups:
            merged.update(group_vars.get(group, (0, {}))[1])
        return {**merged, **own_vars[host]}

    return Inventory(path, {h: effective(h) for h in own_vars}, members)


def _load_with_ansible(path: Path) -> Inventory:
    """Parse any inventory source with Ansible; a source it cannot parse is an error."""
    if not path.exists():
        raise HopError(
            f"Inventory {path} does not exist.",
            "Pass -i with the path of an Ansible inventory file or directory.",
        )
    with _quiet_ansible() as captured:
        from ansible.errors import AnsibleError
        from ansible.inventory.helpers import get_group_vars
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader

        try:
            manager = InventoryManager(loader=DataLoader(), sources=[str(path)])
            host_map = {
                host.name: _without_magic({**get_group_vars(host.get_groups()), **host.vars})
                for host in manager.hosts.values()
            }
        except AnsibleError as err:
            raise _unparsable(path, err, captured.get_warnings()) from err
    group_map = {
        name: {h.name for h in group.get_hosts()} for name, group in manager.groups.items()
    }
    warnings = tuple(_warning_text(w) for w in captured.get_warnings())
    return Inventory(path, host_map, group_map, warnings)


def _without_magic(hvars: dict[str, Any]) -> dict[str, Any]:
    """Drop the variables Ansible adds itself (inventory_file, inventory_dir)."""
    return {k: v for k, v in hvars.items() if k not in ("inventory_file", "inventory_dir")}


@contextlib.contextmanager
def _quiet_ansible() -> Iterator[Any]:
    """Make any unparsable source an error and keep Ansible's output off the terminal.

    Yields Ansible's warning collector: its warnings say why a source failed.
    """
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        from ansible import constants
        from ansible._internal import _display_utils

        saved = constants.INVENTORY_ANY_UNPARSED_IS_FAILED
        constants.INVENTORY_ANY_UNPARSED_IS_FAILED = True
        try:
            with _display_utils.DeferredWarningContext(variables={}) as context:
                yield context
        finally:
            constants.INVENTORY_ANY_UNPARSED_IS_FAILED = saved


def _warning_text(warning: Any) -> str:
    """The first line of an Ansible warning, e.g. which plugin failed and why."""
    try:
        from ansible._internal import _display_utils

        text = _display_utils.format_message(warning, False)
    except Exception:  # Ansible internals may change; a rough message is enough
        text = str(getattr(getattr(warning, "event", None), "msg", warning))
    text = _first_line(text)
    plugin = re.match(r"Failed to parse inventory with '(\w+)' plugin: (.*)", text)
    return f"{plugin[2].rstrip('.')} ({plugin[1]} plugin)" if plugin else text


def _unparsable(path: Path, err: Exception, warnings: list) -> HopError:
    """The most telling reason: the plugin matching the failed file's extension."""
    failed = re.search(r"inventory source (.+)$", _first_line(err))
    source = Path(failed[1]) if failed else path
    plugin = "yaml" if source.suffix in (".yml", ".yaml", ".json") else "ini"
    reasons = [_warning_text(w) for w in warnings]
    preferred = [r for r in reasons if r.endswith(f"({plugin} plugin)")] or reasons
    reason = preferred[0] if preferred else _first_line(err)
    where = f"{path}" if source == path else f"{path} (in {source})"
    return HopError(
        f"Ansible cannot parse the inventory {where}: {reason}.",
        "Fix it (check with `ansible-inventory -i PATH --list`) or pass another -i.",
    )


def _first_line(value: object) -> str:
    lines = [line.strip() for line in str(value).splitlines() if line.strip()]
    return lines[0] if lines else str(value)


# --------------------------------------------------------------------------- targets


def resolve_target(target: str | None, inventory: Path | None) -> Target:
    """Turn ``-t`` and ``-i`` into an inventory path, a --limit and host names."""
    if inventory is None:
        path = hop_inventory_path()
        inv = load_inventory(path)
        if not inv.hosts():
            raise HopError("No servers configured.", _NO_SERVERS_HINT)
    else:
        path = Path(inventory).expanduser().absolute()
        inv = load_inventory(path)
        if not inv.hosts():
            said = f" Ansible said: {'; '.join(inv.warnings)}." if inv.warnings else ""
            raise HopError(
                f"The inventory {path} has no hosts.{said}", "Add hosts to it, or pass another -i."
            )
    terms = [t.strip() for t in (target or "").split(",") if t.strip()]
    if not terms:
        return _default_target(path, inv)
    hosts: set[str] = set()
    for term in terms:
        hosts.update(_resolve_term(term, inv))
    return Target(inventory=path, limit=",".join(dict.fromkeys(terms)), hosts=sorted(hosts))


def _default_target(path: Path, inv: Inventory) -> Target:
    hosts = inv.hosts()
    if len(hosts) == 1:
        return Target(inventory=path, limit=hosts[0], hosts=hosts)
    raise HopError(
        f"No target given, and {path} has {len(hosts)} hosts ({_known(inv)}).",
        "Pass -t with a host, a group, 'all' or a comma-separated list, or set HOP3_TARGET.",
    )


def _resolve_term(term: str, inv: Inventory) -> list[str]:
    if term == "all" or term in inv.groups():
        hosts = inv.hosts_of(term)
        if not hosts:
            raise HopError(
                f"Group {term!r} has no hosts.",
                f"Add some to it, or pick another target ({_known(inv)}).",
            )
        return hosts
    if term in inv.host_map:
        return [term]
    raise HopError(
        f"Unknown target {term!r}: {_known(inv)}.",
        "Pass -t with one of them, 'all', or a comma-separated list.",
    )


def _known(inv: Inventory) -> str:
    groups = ", ".join(inv.groups()) or "none"
    return f"known hosts: {', '.join(inv.hosts()) or 'none'}; groups: {groups}"


def list_servers(inventory: Path | None = None) -> list[dict[str, Any]]:
    """One entry per host: name, address (user@host:port) and groups."""
    inv = load_inventory(inventory if inventory is not None else hop_inventory_path())
    return [
        {"name": name, "address": inv.address(name), "groups": inv.groups_of(name)}
        for name in inv.hosts()
    ]


# --------------------------------------------------------------------------- writing


def add_server(name: str, address: str, groups: Iterable[str] = (), force: bool = False) -> bool:
    """Register a server in Hop3's inventory; True if the file changed.

    Adding the same name with the same address and groups again changes
    nothing; different values are an error unless ``force`` replaces them.
    """
    validate_name(name)
    parsed = parse_address(address)
    wanted = sorted(dict.fromkeys(validate_group(g) for g in groups))
    if name in wanted:
        raise _clash(name)
    with _editing() as tree:
        inv = _view(hop_inventory_path(), tree)
        if name in inv.group_map:
            raise _clash(name)
        for group in wanted:
            if group in inv.host_map:
                raise _clash(group)
        if name in inv.host_map:
            current = _registration(inv.host_vars(name), inv.groups_of(name))
            if current == _registration(parsed.host_vars(), wanted):
                return False
            if not force:
                raise _already_registered(name, inv, parsed, wanted)
            _drop_host(tree, name)
        _put_host(tree, name, parsed.host_vars(), wanted)
    return True


def remove_server(name: str) -> None:
    """Remove a server from every group; groups left empty go too."""
    if not load_inventory(hop_inventory_path()).host_map:  # also: no file, no lock dir
        raise HopError(f"Unknown server {name!r}: no servers are configured.", _NO_SERVERS_HINT)
    with _editing() as tree:
        inv = _view(hop_inventory_path(), tree)
        if name not in inv.host_map:
            raise HopError(
                f"Unknown server {name!r}: known servers are {', '.join(inv.hosts())}.",
                "Run `hop server list` to see them with their addresses.",
            )
        _drop_host(tree, name)


def register_group(group: str, hosts: dict[str, dict], replace: bool = True) -> None:
    """Make ``group`` contain these hosts with exactly these variables.

    With ``replace``, hosts of the group that are not in ``hosts`` leave it
    (and the inventory, if they were in no other group).
    """
    validate_group(group)
    for name in hosts:
        validate_name(name)
        if name == group:
            raise _clash(name)
    with _editing() as tree:
        inv = _view(hop_inventory_path(), tree)
        if group in inv.host_map:
            raise _clash(group)
        for name in hosts:
            if name in inv.group_map:
                raise _clash(name)
        if replace:
            for name in inv.hosts_of(group):
                if name not in hosts:
                    _drop_host(tree, name, only_group=group)
        for name, hvars in hosts.items():
            _put_host(tree, name, dict(hvars), [group])


def unregister_group(group: str) -> None:
    """Remove ``group`` and the hosts that belong only to it (no-op if absent)."""
    if not hop_inventory_path().exists():
        return
    with _editing() as tree:
        for name in _view(hop_inventory_path(), tree).hosts_of(group):
            _drop_host(tree, name, only_group=group)
        _remove_group_nodes(tree, {group})


def unregister_hosts(group: str, names: Iterable[str]) -> None:
    """Take these hosts out of ``group``: those left in no group leave the inventory,
    and the group goes once empty. Names not in the group are ignored."""
    if not hop_inventory_path().exists():
        return
    leaving = set(names)
    with _editing() as tree:
        for name in _view(hop_inventory_path(), tree).hosts_of(group):
            if name in leaving:
                _drop_host(tree, name, only_group=group)


def _registration(hvars: dict[str, Any], groups: Iterable[str]) -> tuple:
    """What makes two registrations of a server the same."""
    port = hvars.get("ansible_port", DEFAULT_PORT)
    with contextlib.suppress(TypeError, ValueError):
        port = int(port)
    return (
        str(hvars.get("ansible_host", "")),
        port,
        str(hvars.get("ansible_user", DEFAULT_USER)),
        bool(hvars.get("ansible_become", False)),
        tuple(sorted(groups)),
    )


def _describe(address: str, groups: list[str]) -> str:
    return f"{address} ({'groups: ' + ', '.join(groups) if groups else 'no group'})"


def _already_registered(name: str, inv: Inventory, new: Address, groups: list[str]) -> HopError:
    old = _describe(inv.address(name), inv.groups_of(name))
    return HopError(
        f"Server {name!r} is already registered as {old}.",
        f"Add --force to replace it with {_describe(str(new), groups)}, or choose another name.",
    )


def _clash(name: str) -> HopError:
    return HopError(
        f"{name!r} is used both as a server name and as a group name:",
        "Ansible cannot tell them apart; choose another name.",
    )


def _put_host(tree: dict[str, Any], name: str, hvars: dict[str, Any], groups: list[str]) -> None:
    """List the host under each group (or all.hosts if none), with these variables.

    Where the host is listed already, its variables are updated in place, so
    the order of the file stays the same.
    """
    nodes: dict[str, dict[str, Any]] = {}
    for group, node, _, _ in _walk(tree["all"]):
        nodes.setdefault(group, node)
        if group != "all" and name in node.get("hosts", {}):
            node["hosts"][name] = dict(hvars)
    if not groups:
        tree["all"].setdefault("hosts", {})[name] = dict(hvars)
        return
    tree["all"].get("hosts", {}).pop(name, None)
    _prune(tree["all"])
    for group in groups:
        node = nodes.get(group)
        if node is None:
            node = tree["all"].setdefault("children", {}).setdefault(group, {})
        node.setdefault("hosts", {})[name] = dict(hvars)


def _drop_host(tree: dict[str, Any], name: str, only_group: str | None = None) -> None:
    """Remove the host everywhere (or only from ``only_group`` and its subgroups).

    A host left in no group is removed altogether; groups left empty go too.
    """
    emptied: set[str] = set()
    for group, node, _, lineage in list(_walk(tree["all"])):
        in_scope = only_group is None or only_group in lineage
        if in_scope and group != "all" and name in node.get("hosts", {}):
            del node["hosts"][name]
            if not node["hosts"] and not node.get("children"):
                emptied.add(group)
    remaining = _view(hop_inventory_path(), tree)
    if only_group is None or not remaining.groups_of(name):
        tree["all"].get("hosts", {}).pop(name, None)
    _remove_group_nodes(tree, {g for g in emptied if not remaining.hosts_of(g)})


def _remove_group_nodes(tree: dict[str, Any], groups: set[str]) -> None:
    for _, node, _, _ in list(_walk(tree["all"])):
        children = node.get("children", {})
        for group in groups & set(children):
            del children[group]
        _prune(node)


def _prune(node: dict[str, Any]) -> None:
    """Drop empty ``hosts:`` and ``children:`` sections."""
    for key in ("hosts", "children"):
        if key in node and not node[key]:
            del node[key]


@contextlib.contextmanager
def _editing() -> Iterator[dict[str, Any]]:
    """Read-modify-write Hop3's inventory under a lock; write only on success."""
    path = hop_inventory_path()
    directory = paths.ensure(path.parent)
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        tree = _read_tree(path)
        before = yaml.safe_dump(tree, sort_keys=False)
        yield tree
        if yaml.safe_dump(tree, sort_keys=False) != before:
            _write_atomically(path, tree)
    finally:
        os.close(fd)


def _write_atomically(path: Path, tree: dict[str, Any]) -> None:
    text = _HEADER + yaml.safe_dump(tree, sort_keys=False, default_flow_style=False)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".inventory.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
