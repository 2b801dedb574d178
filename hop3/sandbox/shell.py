"""Running host commands for the sandbox, with errors the user can act on."""

from __future__ import annotations

import shutil
import subprocess

from hop3.errors import HopError


def run(*args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    """Run a command; on failure raise HopError quoting its stderr."""
    proc = subprocess.run(args, capture_output=True, text=True, input=input)
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise HopError(
            f"Sandbox command failed: `{' '.join(args)}` exited {proc.returncode}: "
            + " ".join(detail),
            "Run `hop sandbox down` to clean up, then try again; "
            "`hop sandbox status` shows what is running.",
        )
    return proc


def require_tools(tools: dict[str, str]) -> None:
    """Fail early, naming the Debian package, when a tool is missing."""
    missing = {tool: pkg for tool, pkg in tools.items() if shutil.which(tool) is None}
    if missing:
        packages = " ".join(sorted(set(missing.values())))
        raise HopError(
            f"The sandbox needs {', '.join(sorted(missing))}, which this machine does not have.",
            f"Install them with `apt-get install {packages}` and run the command again.",
        )
