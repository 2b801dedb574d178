"""Who may run what through hop3-shell: parsing a remote command and deciding.

A command from ``ssh hop3@HOST ...`` arrives as one untrusted string
(SSH_ORIGINAL_COMMAND). It is split like a POSIX shell would split words,
but never given to a shell: the first word must be one of COMMANDS, the app
it acts on is found by the `hop` command's own click parser, and the user's
role and apps (from /etc/hop3/users.json) decide. Everything here is pure:
hop3/shell.py does the I/O.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

import click

VIEWER, DEPLOYER, ADMIN = 1, 2, 3
ROLE_LEVELS = {"viewer": VIEWER, "deployer": DEPLOYER, "admin": ADMIN}
MAX_COMMAND = 4096
APP_RE = re.compile(r"^[a-z][a-z0-9-]{0,29}$")

# The commands the shell runs: the level they need and whether they act on one
# app (their APP argument). Anything else is refused: setup, sandbox, server,
# interactive commands (pg:psql, redis:cli need a pty) and restore (it names
# other hosts) are the controller's.
COMMANDS: dict[str, tuple[int, bool]] = {
    "help": (VIEWER, False),
    "whoami": (VIEWER, False),
    "apps": (VIEWER, False),
    "status": (VIEWER, False),
    "ps": (VIEWER, True),
    "releases": (VIEWER, True),
    "logs": (VIEWER, True),
    "config": (VIEWER, True),
    "certs": (VIEWER, True),
    "sbom": (VIEWER, True),
    "git-receive-pack": (DEPLOYER, True),
    "git-upload-pack": (DEPLOYER, True),
    "deploy": (DEPLOYER, True),
    "config:get": (DEPLOYER, True),
    "config:set": (DEPLOYER, True),
    "config:unset": (DEPLOYER, True),
    "domains:add": (DEPLOYER, True),
    "domains:remove": (DEPLOYER, True),
    "ps:scale": (DEPLOYER, True),
    "restart": (DEPLOYER, True),
    "start": (DEPLOYER, True),
    "stop": (DEPLOYER, True),
    "rollback": (DEPLOYER, True),
    "run": (DEPLOYER, True),
    "destroy": (ADMIN, True),
    "unlock": (ADMIN, True),
    "users:add": (ADMIN, False),
    "users:set": (ADMIN, False),
    "users:remove": (ADMIN, False),
    "users:list": (ADMIN, False),
    "audit": (ADMIN, False),
    "audit:log": (ADMIN, False),
    "history": (ADMIN, False),
    "firewall": (ADMIN, False),
    "firewall:allow": (ADMIN, False),
    "firewall:deny": (ADMIN, False),
    "pg:create": (ADMIN, False),
    "pg:destroy": (ADMIN, False),
    "pg:info": (ADMIN, False),
    "pg:list": (ADMIN, False),
    "pg:link": (ADMIN, True),
    "pg:unlink": (ADMIN, True),
    "redis:create": (ADMIN, False),
    "redis:destroy": (ADMIN, False),
    "redis:info": (ADMIN, False),
    "redis:list": (ADMIN, False),
    "redis:link": (ADMIN, True),
    "redis:unlink": (ADMIN, True),
    "backup": (ADMIN, True),
    "backups": (ADMIN, False),
    "backup:check": (ADMIN, False),
    "backup:schedule": (ADMIN, True),
    "backup:unschedule": (ADMIN, True),
}
# Commands that change nothing: not written to the audit log when allowed.
READ_ONLY = {
    "help", "whoami", "git-upload-pack", "apps", "status", "ps", "releases", "logs", "config",
    "certs", "sbom",
    "config:get", "users:list", "audit", "audit:log", "history", "firewall", "pg:info",
    "pg:list", "redis:info", "redis:list", "backups", "backup:check",
}  # fmt: skip
# Options the shell sets itself: the host is the only target, its own inventory.
FORBIDDEN_PARAMS = ("target", "inventory")


class Refused(Exception):
    """The command is not run; ``message`` says why and what to do."""

    def __init__(self, message: str, app: str | None = None):
        super().__init__(message)
        self.message = message
        self.app = app


@dataclass(frozen=True)
class User:
    name: str
    role: str
    apps: tuple[str, ...]
    fingerprint: str

    def may_use(self, app: str) -> bool:
        return self.role == "admin" or "*" in self.apps or app in self.apps


@dataclass(frozen=True)
class Request:
    command: str
    args: tuple[str, ...]
    app: str | None

    @property
    def changes_state(self) -> bool:
        return self.command not in READ_ONLY


def find_user(registry: dict, fingerprint: str) -> User | None:
    """The user owning the key ``fingerprint`` in users.json, or None."""
    for name, user in (registry.get("users") or {}).items():
        for key in user.get("keys") or []:
            if key.get("fingerprint") == fingerprint:
                apps = tuple(user.get("apps") or ())
                return User(name, str(user.get("role")), apps, fingerprint)
    return None


def split_command(text: str | None) -> list[str]:
    """The words of an SSH command; refuses what no legitimate client sends."""
    if not text or not text.strip():
        raise Refused("No command given. Try: ssh hop3@HOST help")
    if len(text) > MAX_COMMAND:
        raise Refused(f"The command is {len(text)} characters long; the limit is {MAX_COMMAND}.")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise Refused(
            "The command holds control characters (a newline, a tab...): send one command "
            "on one line, with plain words and quotes."
        )
    try:
        return shlex.split(text)
    except ValueError as err:
        raise Refused(f"The command cannot be read: {err} (unbalanced quotes?).") from None


def git_app(path: str) -> str:
    """The app of `git-receive-pack '<path>'`: shop, /shop, ~/shop, shop.git."""
    name = path.removeprefix("~/").strip("/").removesuffix(".git")
    if not APP_RE.match(name):
        raise Refused(
            f"'{path}' is not an app: push to hop3@HOST:APP, where APP is 1 to 30 lowercase "
            "letters, digits or '-', starting with a letter."
        )
    return name


def parse(words: list[str], cli: click.Group) -> Request:
    """The request: the command, its arguments and the app it acts on."""
    name, args = words[0], tuple(words[1:])
    if name not in COMMANDS:
        raise Refused(f"'{name}' is not a command of hop3-shell. Run: ssh hop3@HOST help")
    takes_app = COMMANDS[name][1]
    if name in ("git-receive-pack", "git-upload-pack"):
        if len(args) != 1:
            raise Refused(f"{name} takes exactly one repository.")
        return Request(name, args, git_app(args[0]))
    if name in ("help", "whoami"):
        return Request(name, args, None)
    if name == "deploy":
        # Server side, deploy APP redeploys the head of the app's deploy branch.
        if len(args) != 1 or not APP_RE.match(args[0]):
            raise Refused("Usage: deploy APP (redeploys the last pushed revision of APP).")
        return Request(name, args, args[0])
    command = cli.get_command(click.Context(cli), name)
    if command is None:
        raise Refused(f"'{name}' is not a command of this Hop3 version.")
    if "--help" in args or "-h" in args:
        return Request(name, ("--help",), None)
    try:
        ctx = command.make_context(name, list(args), default_map={})
    except click.ClickException as err:
        raise Refused(f"{name}: {err.format_message()} (ssh hop3@HOST {name} --help)") from None
    for param in FORBIDDEN_PARAMS:
        if ctx.params.get(param):
            raise Refused(
                f"--{param} is not accepted here: commands sent to hop3@HOST act on that host."
            )
    app = ctx.params.get("app") if takes_app else None
    if takes_app and (not isinstance(app, str) or not APP_RE.match(app)):
        raise Refused(f"{name} needs an app name: ssh hop3@HOST {name} APP ...", app=None)
    return Request(name, args, app)


def authorize(user: User, request: Request) -> None:
    """Refuse what the user's role or apps do not allow."""
    level = ROLE_LEVELS.get(user.role, 0)
    needed = COMMANDS[request.command][0]
    what = {"git-receive-pack": "push to", "git-upload-pack": "fetch from"}.get(
        request.command, request.command
    )
    if level < needed:
        target = f" '{request.app}'" if request.app else ""
        raise Refused(
            f"permission denied: {user.role} '{user.name}' may not {what}{target}. "
            "Ask an admin (hop users:set) for a role that allows it.",
            app=request.app,
        )
    if request.app and not user.may_use(request.app):
        raise Refused(
            f"permission denied: {user.role} '{user.name}' may not {what} '{request.app}': "
            "it is not one of its apps. Ask an admin to add it (hop users:set --apps).",
            app=request.app,
        )


def effective_args(user: User, request: Request) -> list[str]:
    """The `hop` arguments to run: a viewer sees config names, never values."""
    args = [request.command, *request.args]
    if request.command == "config" and ROLE_LEVELS[user.role] < DEPLOYER:
        args.append("--masked")
    return args
