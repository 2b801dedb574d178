"""The two platforms under test, behind one small interface: deploy the
bench app, change its code, set a config value, scale, destroy.

Hop3 is driven with the real `hop` CLI; Piku the way its users drive it,
`git push` and `ssh piku@host COMMAND`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples/python-flask"
COMMAND_TIMEOUT = 900
SSH_OPTIONS = [
    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
]  # fmt: skip
GIT_IDENTITY = ["-c", "user.name=bench", "-c", "user.email=bench@localhost"]


class CommandFailed(RuntimeError):
    pass


def run(args: list[str], cwd: Path | None = None, env: dict | None = None) -> str:
    """Run a command; its stdout+stderr. Raises CommandFailed with the output's tail."""
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT)  # fmt: skip
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise CommandFailed(f"{' '.join(args[:4])}... exited {done.returncode}:\n{output[-1500:]}")
    return output


class Hop3:
    name = "hop3"

    def __init__(self, hop: str, host: str, address: str, workdir: Path) -> None:
        self.hop, self.host, self.address, self.workdir = hop, host, address, workdir

    def header(self, app: str) -> str:
        return f"{app}.{self.host}"

    def setup(self) -> None:
        run([self.hop, "setup", "-t", self.host])

    def source(self, app: str) -> Path:
        return self.workdir / self.name / app

    def create(self, app: str) -> None:
        shutil.rmtree(self.source(app), ignore_errors=True)
        shutil.copytree(EXAMPLE, self.source(app))

    def set_version(self, app: str, version: str) -> None:
        (self.source(app) / "VERSION").write_text(version + "\n")

    def deploy(self, app: str) -> bool:
        """Deploy the work tree; whether the platform said nothing changed."""
        output = run([self.hop, "deploy", str(self.source(app)), "--app", app, "-t", self.host])
        return "is unchanged" in output

    def config_set(self, app: str, key: str, value: str) -> None:
        run([self.hop, "config:set", app, f"{key}={value}", "-t", self.host])

    def scale(self, app: str, count: int) -> None:
        run([self.hop, "ps:scale", app, f"web={count}", "-t", self.host])

    def destroy(self, app: str) -> None:
        run([self.hop, "destroy", app, "--yes", "-t", self.host])


class Piku:
    """Piku as installed by piku_host.install on ``address``."""

    name = "piku"

    def __init__(self, host: str, address: str, key: Path, workdir: Path) -> None:
        self.host, self.address, self.key, self.workdir = host, address, key, workdir
        ssh = " ".join(["ssh", "-i", str(key), *SSH_OPTIONS])
        self.env = {**os.environ, "GIT_SSH_COMMAND": ssh}

    def header(self, app: str) -> str:
        return f"{app}.{self.host}"

    def source(self, app: str) -> Path:
        return self.workdir / self.name / app

    def create(self, app: str) -> None:
        """A git work tree of the Flask example, adapted the way a Piku user
        would: the web line binds Piku's $BIND_ADDRESS, and ENV names the
        nginx server (Piku writes no nginx site without NGINX_SERVER_NAME)."""
        src = self.source(app)
        shutil.rmtree(src, ignore_errors=True)
        shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("hop3.toml"))
        (src / "Procfile").write_text(
            "web: gunicorn --bind $BIND_ADDRESS:$PORT --workers 2 --access-logfile - "
            "--no-control-socket app:app\n"
        )
        (src / "ENV").write_text(f"NGINX_SERVER_NAME={self.header(app)}\n")
        self._git(app, "init", "-q", "-b", "main")
        self._commit(app, "v1")

    def _git(self, app: str, *args: str) -> str:
        return run(["git", *GIT_IDENTITY, *args], cwd=self.source(app), env=self.env)

    def _commit(self, app: str, message: str) -> None:
        self._git(app, "add", "-A")
        self._git(app, "commit", "-q", "--allow-empty", "-m", message)

    def set_version(self, app: str, version: str) -> None:
        (self.source(app) / "VERSION").write_text(version + "\n")
        self._commit(app, version)  # the user's commit, before the timed push

    def deploy(self, app: str) -> bool:
        output = self._git(app, "push", f"piku@{self.address}:{app}", "main")
        return "Everything up-to-date" in output

    def _ssh(self, *command: str) -> str:
        return run(["ssh", "-i", str(self.key), *SSH_OPTIONS, f"piku@{self.address}", *command])

    def config_set(self, app: str, key: str, value: str) -> None:
        self._ssh("config:set", app, f"{key}={value}")

    def destroy(self, app: str) -> None:
        self._ssh("destroy", app)
