"""`hop --remote hop3@HOST COMMAND ...`: run a command through hop3-shell.

For developers without an inventory (or without Ansible): the command is
sent over SSH to the host's `hop3` user, whose forced command (hop3-shell)
checks it against the user's role and runs the same `hop` command there.
Without --remote, a git remote named `hop3` in the current repository
(`git remote add hop3 hop3@HOST:APP`) is used when there is no inventory.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

from hop3 import paths
from hop3.errors import HopError

# Commands that only make sense on the controller: never forwarded implicitly.
LOCAL_COMMANDS = {"sandbox", "server", "setup", "history", "--help", "-h", "--version"}
_SCP_RE = re.compile(r"^(?P<who>[A-Za-z0-9._-]+@[A-Za-z0-9.:_\[\]-]+?):(?P<path>[^/].*)?$")
_URL_RE = re.compile(r"^ssh://(?P<who>[A-Za-z0-9._-]+@[A-Za-z0-9._\[\]-]+)(:(?P<port>\d+))?/")


def parse_remote(text: str) -> tuple[str, str | None]:
    """(user@host, port) of --remote's value or of a git remote URL."""
    url = _URL_RE.match(text)
    if url:
        return url["who"], url["port"]
    scp = _SCP_RE.match(text)
    if scp:
        return scp["who"], None
    if re.fullmatch(r"[A-Za-z0-9._-]+@[A-Za-z0-9._-]+", text):
        return text, None
    raise HopError(
        f"'{text}' is not a remote.",
        "Use --remote hop3@HOST (or a git remote like hop3@HOST:APP).",
    )


def git_remote(cwd: Path) -> str | None:
    proc = subprocess.run(
        ["git", "-C", str(cwd), "remote", "get-url", "hop3"], capture_output=True, text=True
    )
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def _has_inventory(args: list[str]) -> bool:
    return (
        bool(os.environ.get("HOP3_INVENTORY"))
        or "-i" in args
        or any(a == "--inventory" or a.startswith("--inventory=") for a in args)
        or (paths.config_dir() / "inventory.yml").exists()
    )


def remote_for(argv: list[str]) -> tuple[str, str | None, list[str]] | None:
    """(user@host, port, the command's words) when this call goes to a remote."""
    if argv[:1] == ["--remote"]:
        if len(argv) < 3:
            raise HopError(
                "--remote needs a host and a command.", "e.g. hop --remote hop3@HOST apps"
            )
        return (*parse_remote(argv[1]), argv[2:])
    if argv and argv[0].startswith("--remote="):
        return (*parse_remote(argv[0].split("=", 1)[1]), argv[1:])
    if not argv or argv[0] in LOCAL_COMMANDS or _has_inventory(argv):
        return None
    url = git_remote(Path.cwd())
    if url is None:
        return None
    return (*parse_remote(url), argv)


def forward(who: str, port: str | None, words: list[str]) -> int:
    """Run the command through hop3-shell; its output and exit code are ours."""
    # HOP3_SSH_COMMAND (like GIT_SSH_COMMAND) picks a key or options: "ssh -i ~/.ssh/ops".
    args = [*shlex.split(os.environ.get("HOP3_SSH_COMMAND") or "ssh"), "-o", "BatchMode=yes"]
    if port:
        args += ["-p", port]
    args += [who, shlex.join(words)]
    try:
        return subprocess.run(args, check=False).returncode
    except FileNotFoundError:
        raise HopError("ssh is not installed.", "Install OpenSSH's client.") from None
