"""Direct SSH to a host for interactive or streaming commands (`hop logs -f`,
`hop run`), using the host's connection settings from the inventory.

Changes to hosts go through playbooks; this is only for commands whose
output the user watches live.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from hop3.targets import Target, load_inventory


def ssh_args(target: Target, host: str, command: list[str], tty: bool = False) -> list[str]:
    """The ssh command line that runs ``command`` on ``host`` (as root)."""
    hostvars = load_inventory(target.inventory).host_vars(host)
    if hostvars.get("ansible_connection") == "local":
        # hop on the host itself (hop3-shell, git push): no SSH hop.
        return list(command)
    user = str(hostvars.get("ansible_user") or "root")
    args = ["ssh", "-o", "BatchMode=yes"]
    if tty:
        args.append("-t")
    if hostvars.get("ansible_port"):
        args += ["-p", str(hostvars["ansible_port"])]
    if hostvars.get("ansible_ssh_private_key_file"):
        args += ["-i", str(Path(str(hostvars["ansible_ssh_private_key_file"])).expanduser())]
    args += shlex.split(str(hostvars.get("ansible_ssh_common_args") or ""))
    args.append(f"{user}@{hostvars.get('ansible_host') or host}")
    remote = command if user == "root" else ["sudo", "-n", *command]
    args.append(shlex.join(remote))
    return args
