"""What a host last deployed, read without a playbook: the no-change fast path.

A successful deploy ends by writing ``/srv/hop3/apps/<app>/.hop3-deployed``
(playbooks/deploy.yml): the fingerprint of everything the controller sent
(Hop3's own content, the spec, the addons, the host's inventory variables,
the source digest), the same fingerprint without the source, and the SHA-256
of the app's ``state.json`` and ``env`` as the deploy left them.

Before the next deploy the CLI reads that record, those two files' digests
and the app's unit states over one SSH round trip (no change is made: this is
a read, like `hop logs`). When the fingerprint is the same, no other
operation has touched the app since (same state and env digests), no lock is
held, nginx runs and every recorded instance is active, the deploy has
nothing to do and no playbook runs: about 0.1 s instead of Ansible's 1-2 s of
start-up. Anything else, or any doubt (SSH fails, a file is missing), runs
the playbook as usual, which converges whatever differs.

The same record tells the playbook when only the source changed
(``config`` fingerprint equal), so the vhost, which depends on the spec and
not on the source, need not be checked again on a code-only redeploy.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from typing import Any

from hop3 import __version__, paths, resources
from hop3.targets import Target, load_inventory

RECORD = ".hop3-deployed"
SSH_TIMEOUT = 10
_SEPARATOR = "@@hop3@@"
# What a deploy's host-side behaviour depends on, besides its inputs.
_CONTENT = ("roles/hop3_app", "roles/hop3_proxy", "playbooks/deploy.yml")
_content_digest: str | None = None


@dataclass
class HostDeployed:
    """What one host reported about the app."""

    fingerprint: str = ""
    config_fingerprint: str = ""
    digests_then: dict[str, str] = field(default_factory=dict)  # file -> sha256 at the deploy
    digests_now: dict[str, str] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)  # unit -> active state
    locked: bool = False
    nginx_active: bool = False
    route: str | None = None  # the nft chain that forwards the app's route port

    def route_ok(self) -> bool:
        """The kernel forwards the app's route port to its web instances (an
        app without one, e.g. PHP, has nginx name its instances)."""
        if not self.state.get("route_port"):
            return True
        ports = sorted(i["number"] for i in (self.state.get("instances") or {}).get("web", []))
        listing = (self.route or "").split("dnat", 1)
        loaded = re.findall(r":\s*(\d+)\b", listing[1]) if len(listing) == 2 else []
        return sorted(int(p) for p in loaded) == ports

    def untouched(self) -> bool:
        """No operation changed the app's state or config since the recorded deploy."""
        return bool(self.digests_then) and self.digests_then == self.digests_now

    def all_running(self) -> bool:
        instances = self.state.get("instances") or {}
        app = self.state.get("app") or ""
        wanted = [
            f"hop3-{app}-{process}@{instance['id']}.service"
            for process, items in instances.items()
            for instance in items
        ]
        return bool(app) and all(self.units.get(unit) == "active" for unit in wanted)

    def unchanged(self, fingerprint: str) -> bool:
        return (
            self.fingerprint == fingerprint
            and self.untouched()
            and not self.locked
            and self.nginx_active
            and self.route_ok()
            and not self.state.get("stopped")
            and self.all_running()
        )


def content_digest() -> str:
    """Hop3's version and the files of the deploy path (the roles change units, vhosts...)."""
    global _content_digest
    if _content_digest is None:
        sha = hashlib.sha256(__version__.encode())
        root = resources.content_root()
        for part in _CONTENT:
            base = root / part
            files = sorted(base.rglob("*")) if base.is_dir() else [base]
            for path in files:
                if path.is_file() and "__pycache__" not in path.parts:
                    sha.update(str(path.relative_to(root)).encode() + b"\0")
                    sha.update(path.read_bytes())
        _content_digest = sha.hexdigest()
    return _content_digest


def fingerprints(extravars: dict[str, Any], host_vars: dict[str, Any]) -> tuple[str, str]:
    """(full, config) fingerprints of a deploy to one host: config leaves the source out."""
    config = {
        "content": content_digest(),
        "spec": extravars.get("hop3_app_spec"),
        "addons": extravars.get("hop3_app_addons"),
        "host": host_vars,
    }
    source = {"digest": extravars.get("hop3_app_source_digest")}
    return _digest({**config, **source}), _digest(config)


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def route_chain(app: str) -> str:
    """The nft chain of an app's route port (roles/hop3_app/module_utils/hop3_app_routes.py)."""
    return "app_" + app.replace("-", "_")


def read_script(app: str) -> str:
    """The read-only shell script that reports an app's deploy record and live state."""
    app_dir = shlex.quote(f"/srv/hop3/apps/{app}")
    lock = shlex.quote(f"/srv/hop3/locks/{app}.json")
    units = shlex.quote(f"hop3-{app}-*")
    sep = f"printf '\\n%s\\n' {_SEPARATOR}"
    return "; ".join(
        [
            f"cd {app_dir} 2>/dev/null || exit 3",
            f"cat {RECORD} 2>/dev/null",
            sep,
            "sha256sum state.json env 2>/dev/null",
            sep,
            "cat state.json 2>/dev/null",
            sep,
            f"test -e {lock} && echo locked",
            sep,
            "systemctl is-active nginx",
            f"systemctl list-units --all --plain --no-legend {units}",
            sep,
            f"nft list chain ip hop3_routes {shlex.quote(route_chain(app))} 2>/dev/null",
            "exit 0",
        ]
    )


def parse_report(text: str) -> HostDeployed | None:
    """The script's output as a HostDeployed, or None when it is not what we expect."""
    parts = [part.strip("\n") for part in text.split("\n" + _SEPARATOR + "\n")]
    if len(parts) != 6:
        return None
    record, sums, state_text, locked, services, found_route = parts
    found = HostDeployed()
    lines = record.splitlines()
    if len(lines) < 3:
        return None
    found.fingerprint, found.config_fingerprint = lines[0].strip(), lines[1].strip()
    found.digests_then = _parse_sums("\n".join(lines[2:]))
    found.digests_now = _parse_sums(sums)
    try:
        state = json.loads(state_text)
    except ValueError:
        return None
    if not isinstance(state, dict):
        return None
    found.state = state
    found.locked = locked.strip() == "locked"
    found.route = found_route
    service_lines = services.splitlines()
    found.nginx_active = bool(service_lines) and service_lines[0].strip() == "active"
    for line in service_lines[1:]:
        fields = line.split()
        if len(fields) >= 3:
            found.units[fields[0]] = fields[2]
    return found


def _parse_sums(text: str) -> dict[str, str]:
    sums = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2 and len(fields[0]) == 64:
            sums[fields[1]] = fields[0]
    return sums


def ssh_command(target: Target, host: str, script: str) -> list[str]:
    """ssh (or a local shell) for ``script``, sharing Ansible's connection to the host."""
    from hop3.remote import ssh_args

    args = ssh_args(target, host, ["sh", "-c", script])
    if args[0] != "ssh":
        return args
    control = paths.ensure(paths.cache_dir() / "cp")
    shared = ["-o", "ControlMaster=auto", "-o", "ControlPersist=60s",
              "-o", f"ControlPath={control}/%C", "-o", f"ConnectTimeout={SSH_TIMEOUT}"]  # fmt: skip
    return [args[0], *shared, *args[1:]]


def read_host(target: Target, host: str, app: str) -> HostDeployed | None:
    """What ``host`` reports about ``app``, or None (no record, or it could not be read)."""
    try:
        done = subprocess.run(
            ssh_command(target, host, read_script(app)),
            capture_output=True,
            timeout=SSH_TIMEOUT + 5,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return parse_report(done.stdout.decode("utf-8", "replace"))


def host_vars_of(target: Target) -> dict[str, dict[str, Any]]:
    inventory = load_inventory(target.inventory)
    return {host: inventory.host_vars(host) for host in target.hosts}


@dataclass
class Plan:
    """The deploy's per-host inputs from the fast check: what to send, what to skip."""

    fingerprints: dict[str, list[str]]  # host -> [full, config]
    unchanged: dict[str, HostDeployed]  # hosts with nothing to do
    proxy_unchanged: list[str]  # hosts where only the source changed (the vhost is as it was)
    host_vars: dict[str, dict[str, Any]]  # the inventory's, per host, as fingerprinted

    def extravars(self) -> dict[str, Any]:
        return {
            "hop3_app_fingerprints": self.fingerprints,
            "hop3_app_proxy_unchanged_hosts": self.proxy_unchanged,
        }


def plan(target: Target, app: str, extravars: dict[str, Any]) -> Plan:
    """Read every target host (in parallel) and sort them: unchanged, code-only, other."""
    from concurrent.futures import ThreadPoolExecutor

    host_vars = host_vars_of(target)
    prints = {host: list(fingerprints(extravars, host_vars[host])) for host in target.hosts}
    with ThreadPoolExecutor(max_workers=min(16, len(target.hosts)) or 1) as pool:
        reads = pool.map(lambda host: read_host(target, host, app), target.hosts)
        found = dict(zip(target.hosts, reads, strict=True))
    unchanged, proxy_unchanged = {}, []
    tls_off = ((extravars.get("hop3_app_spec") or {}).get("tls") or {}).get("mode", "off") == "off"
    for host, report in found.items():
        if report is None:
            continue
        full, config = prints[host]
        if report.unchanged(full):
            unchanged[host] = report
        elif tls_off and report.config_fingerprint == config and report.untouched():
            proxy_unchanged.append(host)
    return Plan(fingerprints=prints, unchanged=unchanged, proxy_unchanged=proxy_unchanged,
                host_vars=host_vars)  # fmt: skip


def unchanged_report(app: str, host: str, address: str, spec: dict, found: HostDeployed) -> dict:
    """The deploy report a playbook run would have given for an unchanged app."""
    state = found.state
    removed = set(state.get("domains_removed") or [])
    domains = [d for d in spec.get("domains") or [] if d not in removed]
    domains += [d for d in state.get("domains_extra") or [] if d not in domains]
    web = (state.get("instances") or {}).get("web") or []
    return {
        "app": app,
        "release": state.get("current"),
        "built": False,
        "unchanged": True,
        "timings": {},
        "ports": [i["number"] for i in web],
        "domains": [f"{app}.{host}", *domains],
        "address": address,
        "lock_waited": 0,
        "lock_waited_for": None,
    }
