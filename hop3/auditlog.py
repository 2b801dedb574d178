"""The audit log, for Python code on a host (hop3-shell) and for the CLI.

The logic lives in ONE file, roles/hop3_auditlog/module_utils/hop3_auditlog.py,
which the Ansible modules import on the hosts; this module loads that same
file from the role directory and re-exports it. It also builds the
``hop3_audit`` variable the runner passes to state-changing playbooks.
"""

from __future__ import annotations

import getpass
import importlib.util
import os
import socket
import sys
from types import ModuleType

from hop3 import resources

ENV_USER = "HOP3_AUDIT_USER"
ENV_KEY = "HOP3_AUDIT_KEY"
ENV_SOURCE = "HOP3_AUDIT_SOURCE"
ENV_VIA = "HOP3_AUDIT_VIA"


def _load() -> ModuleType:
    path = resources.roles_dir() / "hop3_auditlog" / "module_utils" / "hop3_auditlog.py"
    spec = importlib.util.spec_from_file_location("hop3_auditlog_impl", path)
    if spec is None or spec.loader is None:  # pragma: no cover - a broken install
        raise ImportError(f"cannot load the audit log implementation from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_impl = _load()

LOG_DIR: str = _impl.LOG_DIR
FIELDS: tuple[str, ...] = _impl.FIELDS
MASK: str = _impl.MASK
mask_argv = _impl.mask_argv
is_secret_name = _impl.is_secret_name
make_entry = _impl.make_entry
append_entry = _impl.append_entry
record = _impl.record
read_entries = _impl.read_entries
log_files = _impl.log_files
parse_since = _impl.parse_since
format_time = _impl.format_time
first_line = _impl.first_line
key_fingerprint = _impl.key_fingerprint
session_key = _impl.session_key
session_source = _impl.session_source

# The hop command being run, when it is not this process's argv (hop3-shell
# may run the click commands in-process: it sets this first).
_command: list[str] | None = None


def set_command(argv: list[str] | None) -> None:
    """Name the hop command being run (["hop", "deploy", ...]) for the audit log."""
    global _command
    _command = list(argv) if argv is not None else None


def current_command() -> list[str]:
    """The hop command of this process, masked: ["hop", *arguments]."""
    argv = _command if _command is not None else ["hop", *sys.argv[1:]]
    return mask_argv(argv)


def identity(environ: dict[str, str] | None = None) -> dict:
    """Who runs the command: from $HOP3_AUDIT_* when hop3-shell set them, else the
    local user on this controller (key and source are then found on the host)."""
    environ = os.environ if environ is None else environ
    if environ.get(ENV_USER):
        return {
            "user": environ[ENV_USER],
            "key": environ.get(ENV_KEY) or None,
            "source": environ.get(ENV_SOURCE) or None,
            "via": environ.get(ENV_VIA) or "ssh",
        }
    return {"user": f"{_local_user()}@{socket.gethostname()}", "key": None, "source": None,
            "via": "cli"}  # fmt: skip


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def audit_var(app: str | None, environ: dict[str, str] | None = None,
              step: str | None = None) -> dict:  # fmt: skip
    """The ``hop3_audit`` variable of a state-changing run (``step``: its verb;
    a command can make several runs, e.g. a catalog upgrade)."""
    audit = {**identity(environ), "command": current_command(), "app": app or None}
    if step:
        audit["step"] = step
    return audit
