"""hop3-shell: the forced command of every key of the `hop3` SSH user.

sshd runs ``hop3-shell --key SHA256:...`` (role hop3_users writes that into
/etc/hop3/ssh/authorized_keys) with the client's command in
SSH_ORIGINAL_COMMAND. The shell re-runs itself as root through sudo (a
sudoers rule allows exactly this program), finds the user owning the key in
/etc/hop3/users.json, checks the command (hop3/access.py) and then runs the
same `hop` command an admin would run from a controller, against this host
only, with a local connection. `git push hop3@HOST:APP` arrives as
git-receive-pack: the app's bare repository gets a pre-receive hook that
deploys the pushed revision and rejects the push when the deploy fails.
Nothing the client sends is ever given to a shell.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from hop3.access import (
    COMMANDS,
    DEPLOYER,
    ROLE_LEVELS,
    Refused,
    Request,
    User,
    authorize,
    effective_args,
    find_user,
    parse,
    split_command,
)

USERS_FILE = Path("/etc/hop3/users.json")
APPS_ROOT = Path("/srv/hop3/apps")
BIN = Path(sys.executable).parent
# The host-side CLI: its own inventory (this host, local connection) and state.
CLI_ENV = {
    "HOP3_CONFIG_DIR": "/etc/hop3/cli",
    "HOP3_STATE_DIR": "/var/lib/hop3/cli",
    "HOP3_CACHE_DIR": "/var/cache/hop3/cli",
}
DEFAULT_BRANCH = "main"
ZERO = "0" * 40


def client_address() -> str | None:
    fields = os.environ.get("SSH_CONNECTION", "").split()
    return fields[0] if fields else None


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def hop_env(user: User, via: str) -> dict[str, str]:
    """The environment of the `hop` commands run for ``user``."""
    return {
        "PATH": f"{BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        **CLI_ENV,
        "HOP3_AUDIT_USER": user.name,
        "HOP3_AUDIT_KEY": user.fingerprint,
        "HOP3_AUDIT_SOURCE": client_address() or "",
        "HOP3_AUDIT_VIA": via,
    }


def log_event(user: User | None, fingerprint: str, words: list[str], app, result, error=None):
    """Append an entry to the host's audit log (denials and what hop does not log)."""
    from hop3 import auditlog

    auditlog.record(
        user=user.name if user else None,
        key=fingerprint,
        source=client_address(),
        via="git" if words[:1] and words[0].startswith("git-") else "ssh",
        command=words,
        app=app,
        result=result,
        error=error,
    )


# --- git push -------------------------------------------------------------------------------

PRE_RECEIVE = """#!/bin/sh
# Written by hop3-shell: deploys the pushed revision; a failed deploy rejects the push.
exec {shell} --hook pre-receive {app}
"""


def repository(app: str) -> Path:
    return APPS_ROOT / app / "repo.git"


def ensure_repository(app: str) -> Path:
    """The app's bare repository, made on the first push, with Hop3's hook."""
    repo = repository(app)
    if not (repo / "HEAD").exists():
        repo.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        subprocess.run(
            ["git", "init", "--quiet", "--bare", f"--initial-branch={DEFAULT_BRANCH}", str(repo)],
            check=True,
        )
        for key, value in (
            ("receive.denyDeletes", "true"),
            ("receive.denyNonFastForwards", "false"),
        ):
            subprocess.run(["git", "-C", str(repo), "config", key, value], check=True)
    hook = repo / "hooks" / "pre-receive"
    text = PRE_RECEIVE.format(shell=BIN / "hop3-shell", app=app)
    if not hook.exists() or hook.read_text() != text:
        hook.write_text(text)
        hook.chmod(0o755)
    return repo


def hold_push_lock(repo: Path, app: str) -> None:
    """One push per app at a time, for the whole of git-receive-pack (the lock's
    descriptor stays open across exec): a second push waits, then sees the
    first one's result when git lists the refs, so the branch never names a
    revision other than the one deployed."""
    fd = os.open(repo / "hop3-push.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        say(f"hop3: another push of {app} is running; waiting for it to finish...")
        fcntl.flock(fd, fcntl.LOCK_EX)
    os.set_inheritable(fd, True)


def deploy_branch(app: str) -> str:
    """The branch that deploys: config variable HOP3_DEPLOY_BRANCH of the app
    (`hop config:set APP HOP3_DEPLOY_BRANCH=production`), else main."""
    import json

    try:
        env = json.loads((APPS_ROOT / app / "env").read_text())
    except (OSError, ValueError):
        env = {}
    branch = str(env.get("HOP3_DEPLOY_BRANCH") or "").strip()
    valid = (
        branch
        and subprocess.run(
            ["git", "check-ref-format", "--branch", branch], capture_output=True
        ).returncode
        == 0
    )
    return branch if valid else DEFAULT_BRANCH


def deploy_revision(app: str, repo: Path, rev: str, env: dict[str, str]) -> int:
    """Build and run revision ``rev`` of the app with `hop deploy`; its output streams
    to stderr (the git client shows it as "remote: ...")."""
    with tempfile.TemporaryDirectory(prefix=f"hop3-push-{app}-") as work:
        archive = subprocess.run(
            ["git", "-C", str(repo), "archive", "--format=tar", rev],
            capture_output=True,
        )
        if archive.returncode != 0:
            say(f"hop3: cannot read revision {rev}: {archive.stderr.decode().strip()}")
            return 1
        subprocess.run(["tar", "-x", "-C", work], input=archive.stdout, check=True)
        command = [str(BIN / "hop"), "deploy", work, "--app", app, "--rev", f"git:{rev[:12]}"]
        # Not the hook's GIT_DIR and quarantine: the build is not inside the repository.
        clean = {k: v for k, v in env.items() if not k.startswith("GIT_")}
        return subprocess.run(command, env=clean, stdout=sys.stderr, check=False).returncode


def hook_denial(app: str, ref: str, problem: str) -> None:
    """Log a refused push; the hook runs with the pusher's HOP3_AUDIT_* variables."""
    from hop3 import auditlog

    auditlog.record(
        user=os.environ.get("HOP3_AUDIT_USER"),
        key=os.environ.get("HOP3_AUDIT_KEY"),
        source=os.environ.get("HOP3_AUDIT_SOURCE") or None,
        via="git",
        command=["git-receive-pack", app, ref],
        app=app,
        result="denied",
        error=problem,
    )


def redeploy(app: str, env: dict[str, str]) -> int:
    """Server-side `deploy APP`: the head of the deploy branch, built again."""
    repo = repository(app)
    if not (repo / "HEAD").exists():
        say(f"hop3: {app} has never been pushed: git push hop3@HOST:{app} {DEFAULT_BRANCH}")
        return 1
    hold_push_lock(repo, app)
    branch = deploy_branch(app)
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
        capture_output=True, text=True,
    )  # fmt: skip
    if head.returncode != 0:
        say(f"hop3: {app} has no branch '{branch}' to deploy: git push hop3@HOST:{app} {branch}")
        return 1
    return deploy_revision(app, repo, head.stdout.strip(), env)


def pre_receive(app: str) -> int:
    """The hook: only the deploy branch, deployed before git updates the ref."""
    repo = repository(app)
    branch = deploy_branch(app)
    updates = [line.split() for line in sys.stdin.read().splitlines() if line.strip()]
    for _old, new, ref in updates:
        problem = None
        if ref != f"refs/heads/{branch}":
            problem = (f"{ref} refused: only branch '{branch}' deploys {app}. "
                       f"Push it with: git push hop3 HEAD:{branch}")  # fmt: skip
        elif new == ZERO:
            problem = f"deleting '{branch}' is refused: it is what {app} runs."
        if problem:
            say(f"hop3: {problem}")
            hook_denial(app, ref, problem)
            return 1
    env = dict(os.environ)
    # The quarantine variables let `git archive` read the objects being pushed.
    env["PATH"] = f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    for _old, new, _ref in updates:
        say(f"hop3: deploying {app} {new[:12]}...")
        code = deploy_revision(app, repo, new, env)
        if code != 0:
            say(f"hop3: the deploy of {app} failed: push rejected; the running release stays.")
            return code
    return 0


# --- the forced command ---------------------------------------------------------------------


def load_registry() -> dict:
    import json

    try:
        return json.loads(USERS_FILE.read_text())
    except FileNotFoundError:
        return {"users": {}}


def help_text(user: User) -> str:
    level = ROLE_LEVELS.get(user.role, 0)
    names = sorted(
        c for c, (need, _) in COMMANDS.items() if need <= level and c != "git-receive-pack"
    )
    lines = [f"Hop3 on this host. You are {user.name} ({user.role}).", "",
             "Commands (ssh hop3@HOST COMMAND ...; COMMAND --help shows its options):"]  # fmt: skip
    lines += [f"  {name}" for name in names]
    if level >= DEPLOYER:
        lines += ["", "Deploy: git remote add hop3 hop3@HOST:APP && git push hop3 main"]
    return "\n".join(lines)


def run_request(user: User, request: Request) -> int:
    via = "git" if request.command.startswith("git-") else "ssh"
    env = hop_env(user, via)
    if request.command == "help":
        print(help_text(user))
        return 0
    if request.command == "whoami":
        apps = "all" if user.role == "admin" or "*" in user.apps else ",".join(user.apps) or "none"
        print(f"{user.name} {user.role} apps={apps} key={user.fingerprint}")
        return 0
    if request.command == "git-receive-pack":
        repo = ensure_repository(request.app)
        hold_push_lock(repo, request.app)
        os.environ.update(env)
        os.execvp("git-receive-pack", ["git-receive-pack", str(repo)])
    if request.command == "git-upload-pack":
        repo = repository(request.app)
        if not (repo / "HEAD").exists():
            say(f"hop3: {request.app} has never been pushed.")
            return 1
        os.execvp("git-upload-pack", ["git-upload-pack", str(repo)])
    if request.command == "deploy":
        return redeploy(request.app, env)
    args = effective_args(user, request)
    return subprocess.run([str(BIN / "hop"), *args], env=env, check=False).returncode


def become_root() -> None:
    """Run again as root through sudo (the one command the hop3 user may sudo)."""
    if os.geteuid() == 0:
        return
    os.execvp("sudo", ["sudo", "-n", str(BIN / "hop3-shell"), *sys.argv[1:]])


def forced_command(fingerprint: str) -> int:
    for name in ("HOP3_TARGET", "HOP3_INVENTORY"):
        os.environ.pop(name, None)
    command = os.environ.get("SSH_ORIGINAL_COMMAND")
    user = find_user(load_registry(), fingerprint)
    words: list[str] = []
    try:
        if user is None:
            raise Refused(f"permission denied: key {fingerprint} belongs to no Hop3 user.")
        words = split_command(command)
        from hop3.cli.main import cli

        request = parse(words, cli)
        authorize(user, request)
    except Refused as err:
        say(err.message)
        log_event(user, fingerprint, words or [(command or "")[:200]], err.app, "denied",
                  err.message)  # fmt: skip
        return 1
    code = run_request(user, request)
    if request.command == "run":
        # `hop run` is a plain SSH exec, not a playbook run: hop does not log it.
        log_event(user, fingerprint, words, request.app, "ok" if code == 0 else "failed",
                  None if code == 0 else f"exit code {code}")  # fmt: skip
    return code


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["--hook"] and len(args) == 3 and args[1] == "pre-receive":
        sys.exit(pre_receive(args[2]))
    if args[:1] != ["--key"] or len(args) != 2:
        say("hop3-shell is run by sshd for the hop3 user: hop3-shell --key FINGERPRINT")
        sys.exit(2)
    become_root()
    sys.exit(forced_command(args[1]))
