"""Boot, reboot, list and remove sandbox hosts (systemd-nspawn containers).

State lives in ``state_dir()/sandbox/state.json``; the SSH key that reaches
the hosts as root is ``state_dir()/sandbox/id_ed25519``; each host's disk (its
changes over the image) is under ``state_dir()/sandbox/disks/`` (see disk.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from hop3 import paths, targets
from hop3.errors import HopError

from . import converged, disk, image, network
from .shell import require_tools, run

GROUP = "sandbox"
SSH_OPTIONS = [
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR",
]  # fmt: skip
_TOOLS = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "ip": "iproute2",
    "nft": "nftables",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "mount": "mount",
}
_BOOT_TIMEOUT = 60.0
# How long a host may take to shut down (stopping its apps and databases)
# when asked to reboot, before it is stopped by force.
_SHUTDOWN_TIMEOUT = 60.0
# Each host's systemd holds a dozen inotify instances, counted against root
# on this machine: Linux's default of 128 stops the tenth host or so from
# booting ("Failed to allocate manager object: Too many open files").
_INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
_MIN_INOTIFY_INSTANCES = 8192


@dataclass
class SandboxHost:
    name: str
    index: int
    address: str
    pid: int
    image: str
    started: float

    @property
    def running(self) -> bool:
        return _is_our_nspawn(self.pid, self.index)


def host_names(count: int) -> list[str]:
    return [f"{GROUP}-{i}" for i in range(1, count + 1)]


def _machine(index: int) -> str:
    return network.netns_name(index)


def _dir() -> Path:
    return paths.ensure(paths.state_dir() / "sandbox")


def key_path() -> Path:
    return _dir() / "id_ed25519"


def _state_file() -> Path:
    return _dir() / "state.json"


def _load_state() -> dict:
    try:
        return json.loads(_state_file().read_text())
    except FileNotFoundError:
        return {"hosts": {}}


def _save_state(state: dict) -> None:
    tmp = _state_file().with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(_state_file())


def _is_our_nspawn(pid: int, index: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    if "\nState:\tZ" in status:
        return False
    return f"--machine={_machine(index)}".encode() in cmdline


def _preflight() -> None:
    if os.geteuid() != 0:
        raise HopError(
            "The sandbox needs root: it creates network namespaces, a bridge and "
            "systemd-nspawn containers.",
            "Run it as root (e.g. `sudo .venv/bin/hop sandbox up`).",
        )
    require_tools(_TOOLS)
    probe = run("systemd-nspawn", "--version", check=False)
    if probe.returncode != 0:
        raise HopError(
            "systemd-nspawn is installed but does not run on this machine: " + probe.stderr.strip(),
            "The sandbox needs a Linux kernel with namespaces; use a VM or a real host.",
        )


def _raise_inotify_limit() -> None:
    """Raise (never lower) the inotify instance limit so that many hosts boot."""
    with contextlib.suppress(OSError, ValueError):
        if int(_INOTIFY_INSTANCES.read_text()) < _MIN_INOTIFY_INSTANCES:
            _INOTIFY_INSTANCES.write_text(f"{_MIN_INOTIFY_INSTANCES}\n")


def _ensure_key() -> Path:
    key = key_path()
    if not key.exists():
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hop3-sandbox", "-f", str(key))
    authorized = _dir() / "authorized_keys"
    authorized.write_text(key.with_suffix(".pub").read_text())
    authorized.chmod(0o600)
    return authorized


def _caches(name: str) -> tuple[Path, Path]:
    base = paths.cache_dir() / "sandbox"
    # apt locks its archive dir, so each host gets its own to install in parallel.
    apt = paths.ensure(base / "apt" / name / "partial", 0o755).parent
    build = paths.ensure(base / "build-cache", 0o777)
    return apt, build


def _disk(index: int) -> disk.Disk:
    return disk.disk_for(_machine(index))


def _boot(index: int, rootfs: Path, authorized: Path) -> SandboxHost:
    """Start a host on its disk (over image ``rootfs``); does not wait for it."""
    name = host_names(index)[-1]
    network.ensure_netns(index)
    root = disk.attach(_disk(index), rootfs)
    if converged.is_converged(rootfs):
        converged.personalise(root, rootfs, name)
    # Keyed by namespace, not name: sandboxes on other networks run at once.
    apt_cache, build_cache = _caches(_machine(index))
    log = open(_dir() / f"{name}.log", "w")  # noqa: SIM115 - handed to the child
    args = [
        "systemd-nspawn",
        "--boot",
        "--register=no",
        "--keep-unit",
        "--console=passive",
        "--resolv-conf=copy-host",
        f"--directory={root}",
        f"--machine={_machine(index)}",
        f"--hostname={name}",
        f"--network-namespace-path=/run/netns/{network.netns_name(index)}",
        # The namespace is the host's own: let it manage its firewall (nftables)
        # there, as --private-network would. Nothing outside the namespace is reachable.
        "--capability=CAP_NET_ADMIN",
        f"--bind-ro={authorized}:/root/.ssh/authorized_keys",
        f"--bind={apt_cache}:/var/cache/apt/archives",
        f"--bind={build_cache}:{image.BUILD_CACHE_MOUNT}",
    ]
    proc = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    log.close()
    # Until the child has exec'd, /proc shows the parent's command line.
    deadline = time.monotonic() + 5
    while not _is_our_nspawn(proc.pid, index) and proc.poll() is None:
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    return SandboxHost(
        name=name,
        index=index,
        address=str(network.host_address(index)),
        pid=proc.pid,
        image=str(rootfs),
        started=time.time(),
    )


def ssh_command(host: SandboxHost | str, *command: str) -> list[str]:
    address = host.address if isinstance(host, SandboxHost) else host
    return ["ssh", "-i", str(key_path()), *SSH_OPTIONS, "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=3", f"root@{address}", *command]  # fmt: skip


def _wait_ready(hosts: list[SandboxHost]) -> None:
    """Wait until systemd in each host finished booting and SSH answers."""
    deadline = time.monotonic() + _BOOT_TIMEOUT
    pending = list(hosts)
    while pending:
        for host in list(pending):
            if not host.running:
                log_tail = (_dir() / f"{host.name}.log").read_text()[-800:]
                raise HopError(
                    f"Sandbox host {host.name} stopped while booting: {log_tail.strip()}",
                    "Check that this machine supports systemd-nspawn containers "
                    "(cgroups, namespaces) and run `hop sandbox up` again.",
                )
            try:
                probe = subprocess.run(
                    ssh_command(host, "systemctl", "is-system-running"),
                    capture_output=True, text=True, timeout=10,
                ).stdout.strip()  # fmt: skip
            except subprocess.TimeoutExpired:
                probe = "timeout"
            if probe in ("running", "degraded"):
                pending.remove(host)
        if pending and time.monotonic() > deadline:
            raise HopError(
                f"Sandbox hosts {', '.join(h.name for h in pending)} did not answer SSH "
                f"within {_BOOT_TIMEOUT:.0f} s.",
                "See their boot logs in " + str(_dir()) + ", then run `hop sandbox down` "
                "and `hop sandbox up` again.",
            )
        if pending:
            time.sleep(0.3)


def _power_off(index: int, pid: int | None) -> None:
    """Shut a host down (graceful, then forced); its namespace and disk stay."""
    if pid and _is_our_nspawn(pid, index):
        os.kill(pid, signal.SIGTERM)  # nspawn asks the container's systemd to power off
        deadline = time.monotonic() + 15
        while _is_our_nspawn(pid, index) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _is_our_nspawn(pid, index):
            os.kill(pid, signal.SIGKILL)
    if network.netns_exists(index):
        leftover = run("ip", "netns", "pids", network.netns_name(index), check=False).stdout
        for stray in leftover.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(stray), signal.SIGKILL)
        time.sleep(0.1 if leftover.strip() else 0)
    disk.detach(_disk(index))


def _stop(index: int, pid: int | None) -> None:
    """Shut a host down and remove its namespace; its disk is kept (unmounted)."""
    _power_off(index, pid)
    network.remove_netns(index)


def _remove(index: int, pid: int | None) -> None:
    """Shut a host down and remove its namespace and disk."""
    _stop(index, pid)
    disk.wipe(_disk(index))


def _disk_indexes() -> list[int]:
    """Indexes of this network's hosts that have a disk (maybe left by a crash)."""
    found = (network.index_of(machine) for machine in disk.machines_with_disks())
    return sorted(i for i in found if i is not None)


def _drop_unused_images(keep: Path) -> None:
    """Drop old images, unless a host disk (of any network) still lies over one;
    those are dropped by a later `up`, once no disk uses them."""
    under_disks = disk.overlay_lower_dirs(disk.mountinfo())
    if not any(Path(d).parent == image.images_dir() for d in under_disks - {str(keep)}):
        image.drop_other_images(keep=keep)


def _inventory_vars(host: SandboxHost) -> dict:
    return {
        "ansible_host": host.address,
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(key_path()),
        "ansible_ssh_common_args": " ".join(SSH_OPTIONS),
        "ansible_host_key_checking": False,
    }


def up(
    count: int = 1, fresh: bool = False, echo=print, image_kind: str = "bare"
) -> list[SandboxHost]:
    """Make exactly ``count`` hosts run (sandbox-1..N); idempotent.

    A host that runs on a current image (bare or converged) keeps running,
    and a stopped host boots again on its disk; the others boot from
    ``image_kind``: "bare" (the Debian image) or "converged" (the same with
    `hop setup` applied, see converged.py). ``fresh`` wipes every host's disk
    and boots it again from ``image_kind``.
    """
    if not 1 <= count <= 50:
        raise HopError(f"Cannot boot {count} sandbox hosts.", "Choose -n between 1 and 50.")
    if image_kind not in converged.KINDS:
        raise HopError(
            f"Unknown sandbox image {image_kind!r}.",
            f"Choose one of: {', '.join(converged.KINDS)}.",
        )
    _preflight()
    _raise_inotify_limit()
    base = image.ensure_image(echo=echo)
    rootfs = converged.ensure_image(base, echo=echo) if image_kind == "converged" else base
    current = {str(base), str(converged.image_path(base))}
    authorized = _ensure_key()
    state = _load_state()
    state.setdefault("forwarding_before", network.read_forwarding())
    known = {h["index"]: SandboxHost(**h) for h in state["hosts"].values()}
    network.ensure_bridge()
    booted: list[SandboxHost] = []
    try:
        for index in range(1, count + 1):
            host = known.get(index)
            if host and host.running and not fresh and _keeps_image(host, current):
                continue
            if host or network.netns_exists(index):
                _stop(index, host.pid if host else None)
            if fresh:
                disk.wipe(_disk(index))
            booted.append(_boot(index, _image_for(index, rootfs, current), authorized))
        _wait_ready(booted)
    except BaseException:
        for host in booted:
            _stop(host.index, host.pid)
        raise
    for host in booted:
        known[host.index] = host
    for index in [i for i in known if i > count]:
        _remove(index, known.pop(index).pid)
    hosts = [known[i] for i in sorted(known)]
    state["hosts"] = {h.name: asdict(h) for h in hosts}
    _save_state(state)
    _drop_unused_images(keep=rootfs)
    targets.register_group(GROUP, {h.name: _inventory_vars(h) for h in hosts})
    return hosts


def _keeps_image(host: SandboxHost, current: set[str]) -> bool:
    """A running host keeps its image while it is current, or is a converged
    image still cached (a newer key must not wipe a host in the middle of a run)."""
    if host.image in current:
        return True
    return converged.is_converged(host.image) and converged.ready(Path(host.image))


def _image_for(index: int, requested: Path, current: set[str]) -> Path:
    """The image a host boots from: the one its disk lies over while that one
    is current (a stopped host keeps its changes), else ``requested``."""
    recorded = _disk(index).recorded_image()
    if recorded in current and Path(recorded, "etc/os-release").exists():
        return Path(recorded)
    return requested


def down(names: Iterable[str] = ()) -> list[str]:
    """Remove every host, namespace, disk, the bridge and NAT; unregister the group.

    With ``names``, remove only those hosts (their disks go with them) and
    leave the others, the bridge and NAT. Returns the removed names.
    """
    if names:
        return _remove_hosts(list(dict.fromkeys(names)))
    state = _load_state()
    stopped = []
    pids = {h["index"]: h["pid"] for h in state["hosts"].values()}
    for index in sorted(set(pids) | set(network.existing_indexes()) | set(_disk_indexes())):
        _remove(index, pids.get(index))
        stopped.append(host_names(index)[-1])
    network.remove_bridge()
    if "forwarding_before" in state and not network.other_bridges():
        network.write_forwarding(state["forwarding_before"])
    _state_file().unlink(missing_ok=True)
    targets.unregister_group(GROUP)
    return stopped


def _remove_hosts(names: list[str]) -> list[str]:
    """Stop the named hosts, remove their namespaces, state and inventory entries."""
    state = _load_state()
    indexes = {h["name"]: h["index"] for h in state["hosts"].values()}
    pids = {h["name"]: h["pid"] for h in state["hosts"].values()}
    for index in network.existing_indexes() + _disk_indexes():  # left without state
        indexes.setdefault(host_names(index)[-1], index)
    unknown = [name for name in names if name not in indexes]
    if unknown:
        known = ", ".join(sorted(indexes, key=indexes.get)) or "none"
        raise HopError(
            f"No sandbox host named {', '.join(repr(n) for n in unknown)}.",
            f"Known sandbox hosts: {known}.",
        )
    stopped = []
    try:
        for name in names:
            _remove(indexes[name], pids.get(name))
            stopped.append(name)
    finally:
        for name in stopped:
            state["hosts"].pop(name, None)
        _save_state(state)
        targets.unregister_hosts(GROUP, stopped)
    return stopped


def reboot(*which: int | str) -> list[SandboxHost]:
    """Reboot hosts (by index or name; all without any) and wait until SSH answers.

    Each host's systemd shuts it down (``systemctl reboot``: every process
    ends), then the host boots again from the same disk. nspawn exits when
    its container reboots, so it is started again here. The namespace (the
    host's network card) stays; its firewall ruleset is flushed, as a power
    cycle would, so the host must load its own at boot.
    """
    _preflight()
    known = {h["name"]: SandboxHost(**h) for h in _load_state()["hosts"].values()}
    names = resolve_names(which, known)
    chosen = [known[name] for name in names]
    missing = [str(h.image) for h in chosen if not Path(h.image, "etc/os-release").exists()]
    if missing:
        raise HopError(
            f"The image under {', '.join(names)} is gone ({', '.join(sorted(set(missing)))}).",
            "Boot clean hosts on the current image with `hop sandbox up --fresh`.",
        )
    authorized = _ensure_key()
    _raise_inotify_limit()
    for host in chosen:
        _request_reboot(host)
    for host in chosen:
        _wait_exit(host)
        network.flush_firewall(host.index)
    booted = [_boot(h.index, Path(h.image), authorized) for h in chosen]
    try:
        _wait_ready(booted)
    finally:
        state = _load_state()
        state["hosts"].update({h.name: asdict(h) for h in booted})
        _save_state(state)
    return booted


def resolve_names(which: Iterable[int | str], known: dict[str, SandboxHost]) -> list[str]:
    """Host names for indexes or names (every known host when empty), in order, once each."""
    names = [host_names(w)[-1] if isinstance(w, int) else w for w in which] or list(known)
    unknown = [name for name in names if name not in known]
    if unknown:
        listed = ", ".join(known) or "none (run `hop sandbox up`)"
        raise HopError(
            f"No sandbox host named {', '.join(repr(n) for n in unknown)}.",
            f"Known sandbox hosts: {listed}.",
        )
    return list(dict.fromkeys(names))


def _request_reboot(host: SandboxHost) -> None:
    """Ask the host's systemd to reboot; a host that does not answer is stopped."""
    if not host.running:
        return
    try:
        asked = subprocess.run(
            ssh_command(host, "systemctl", "reboot", "--no-block"),
            capture_output=True, timeout=15,
        ).returncode == 0  # fmt: skip
    except subprocess.TimeoutExpired:
        asked = False
    if not asked:
        _power_off(host.index, host.pid)


def _wait_exit(host: SandboxHost) -> None:
    """Wait until the host's nspawn has exited (it does when the host reboots);
    stop it by force when its shutdown hangs. Its disk is unmounted."""
    deadline = time.monotonic() + _SHUTDOWN_TIMEOUT
    while host.running and time.monotonic() < deadline:
        time.sleep(0.2)
    _power_off(host.index, host.pid)


def status() -> list[dict]:
    """One entry per known host: name, address, running, ssh answering, uptime."""
    rows = []
    for data in _load_state()["hosts"].values():
        host = SandboxHost(**data)
        running = host.running
        rows.append(
            {
                "name": host.name,
                "address": host.address,
                "running": running,
                "ssh": running and _port_open(host.address, 22),
                "uptime_s": round(time.time() - host.started) if running else None,
                "pid": host.pid if running else None,
            }
        )
    return rows


def find(name: str) -> SandboxHost:
    hosts = _load_state()["hosts"]
    if name not in hosts:
        known = ", ".join(hosts) or "none (run `hop sandbox up`)"
        raise HopError(f"No sandbox host named '{name}'.", f"Known sandbox hosts: {known}.")
    return SandboxHost(**hosts[name])


def _port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False
