"""Stop a playbook run, all of it, when hop is interrupted or killed.

ansible-runner starts ansible-playbook with pexpect in a session of its own,
on a pty, with SIGHUP ignored (``ignore_sighup=True``). So a Ctrl-C or a
SIGTERM sent to hop never reaches ansible-playbook, and when hop dies the
pty's hangup is ignored too: the run went on, orphaned, for minutes.

Two defences:

- While a run goes on, hop catches SIGINT and SIGTERM (``Interrupts``). The
  run's cancel callback then sends SIGTERM to the run's processes (the
  descendants of hop and the members of their sessions), and SIGKILL to
  those left after ``GRACE_SECONDS``.
- ansible-playbook is started through a shim (``write_shim``, ``guard``)
  that stays its parent and asks the kernel for SIGTERM when hop dies
  (PR_SET_PDEATHSIG): if hop is SIGKILLed, the shim ends the run's whole
  process tree the same way.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

GRACE_SECONDS = 3.0
PR_SET_PDEATHSIG = 1
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}

_SHIM = """#!{python}
# Written by hop (hop3/interrupt.py): ansible-playbook ends when hop does.
import sys
from hop3.interrupt import guard
sys.exit(guard({parent}, {real!r}, sys.argv[1:]))
"""


def write_shim(bin_dir: Path, path: str) -> Path | None:
    """An ``ansible-playbook`` in ``bin_dir`` that runs the real one (found on
    ``path``) under ``guard``; None when there is no real one."""
    real = shutil.which("ansible-playbook", path=path)
    if real is None or not sys.platform.startswith("linux"):
        return None
    bin_dir.mkdir(mode=0o700, exist_ok=True)
    shim = bin_dir / "ansible-playbook"
    shim.write_text(_SHIM.format(python=sys.executable, parent=os.getpid(), real=real))
    shim.chmod(0o700)
    return shim


def guard(parent: int, real: str, args: list[str]) -> int:
    """Run ansible-playbook as a child and stay beside it: when hop (``parent``)
    dies, the kernel sends this process SIGTERM (PR_SET_PDEATHSIG); on that,
    SIGINT or SIGHUP, it ends the whole run (ansible-playbook, its workers,
    their ssh clients, whatever session they made) and exits 128 + signal."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:
        return 128 + signal.SIGTERM  # hop died before the prctl: nothing to run for

    def stop(signum: int, frame: object) -> None:
        terminate_runs()
        os._exit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    child = subprocess.Popen([real, *args], restore_signals=True)
    while True:
        try:
            code = child.wait()
        except InterruptedError:
            continue
        return 128 - code if code < 0 else code


# ---------------------------------------------------------------------------
# Processes


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """(ppid, session id) of a live process, from /proc/PID/stat (None for a zombie)."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return None if fields[0] == b"Z" else (int(fields[1]), int(fields[3]))
    except (IndexError, ValueError):
        return None


def _all_processes() -> dict[int, tuple[int, int]]:
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat is not None:
                table[int(entry)] = stat
    return table


def run_processes(root: int | None = None, sessions: set[int] | None = None) -> set[int]:
    """The processes of hop's runs: descendants of ``root`` (hop itself by
    default) and the members of the sessions they lead. ``sessions`` keeps
    those sessions between calls: a process whose parent died leaves the tree
    but not its session."""
    root = os.getpid() if root is None else root
    sessions = set() if sessions is None else sessions
    table = _all_processes()
    found: set[int] = set()
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _sid) in table.items():
            if ppid == parent and pid not in found:
                found.add(pid)
                frontier.append(pid)
    sessions |= {pid for pid in found if table[pid][1] == pid}
    found |= {pid for pid, (_ppid, sid) in table.items() if sid in sessions}
    found.discard(root)
    return found


def signal_all(pids: set[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def terminate_runs(grace: float = GRACE_SECONDS) -> set[int]:
    """SIGTERM to the run's processes, SIGKILL to those left after ``grace``;
    return the pids that needed SIGKILL."""
    sessions: set[int] = set()
    pids = run_processes(sessions=sessions)
    signal_all(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        pids = run_processes(sessions=sessions)
        if not pids:
            return set()
        time.sleep(0.1)
    signal_all(pids, signal.SIGKILL)
    return pids


# ---------------------------------------------------------------------------
# Signals


def exit_code(name: str | None) -> int:
    """hop's exit code after signal ``name`` (SIGINT: 130, SIGTERM: 143)."""
    try:
        return EXIT_CODES.get(signal.Signals[name or "SIGINT"], 130)
    except KeyError:
        return 130


class Interrupts:
    """Catch SIGINT and SIGTERM for the length of a run; ``cancel()`` is the
    run's cancel callback (ansible-runner asks it between reads)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, object] = {}
        self._terminated = False

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for signum in EXIT_CODES:
                self._old[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._old.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._old.clear()

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is None:
            self.signum = signum

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signum or signal.SIGINT, 130)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum or signal.SIGINT).name

    def cancel(self) -> bool:
        if self.signum is None:
            return False
        if not self._terminated:
            self._terminated = True
            terminate_runs()
        return True
