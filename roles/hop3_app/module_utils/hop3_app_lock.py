"""The per-app lock: one state-changing operation per app and host at a time.

A lock is a lease, not a held file descriptor: the Ansible modules of one run
are separate processes, so the run that takes the lock gets a token and every
later module call of that run passes it back. The record
``/srv/hop3/locks/<app>.json`` names the holder (operation, start time, run,
controller); it is read and changed only under a short flock on a guard file,
which makes take, renew and release atomic between concurrent runs. A record
not renewed for ``timeout`` seconds is stale (its run died) and is taken over.

Plain Python with no Ansible import, so unit tests run it on real files.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import string
import tempfile
import time

LOCKS_DIR = "/srv/hop3/locks"
POLL_SECONDS = 0.5
TOKEN_CHARS = string.ascii_letters + string.digits


class LockBusy(Exception):
    """Another run held the app's lock for the whole wait."""

    def __init__(self, app, holder, operation, waited, timeout):
        self.app = app
        self.holder = holder
        self.waited = waited
        super().__init__(busy_message(app, holder, operation, waited, timeout))


class LockLost(Exception):
    """The run's lock was taken over (stale) or removed: it must not go on."""


def busy_message(app, holder, operation, waited, timeout, now=None):
    now = time.time() if now is None else now
    since = holder.get("since", now)
    who = holder.get("controller") or "an unknown controller"
    run = " (run %s)" % holder["run"] if holder.get("run") else ""
    return (
        "App '%s' is busy: a %s started at %s (%d s ago) by %s%s holds its lock, and this "
        "%s waited %d s for it. Run the %s again once that %s has finished. If that run died, "
        "its lock is taken over automatically %s after it was last active "
        "(hop3_app_lock_timeout); to wait longer, raise hop3_app_lock_wait."
        % (app, holder.get("operation", "operation"),
           time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(since)), now - since, who, run,
           operation, waited, operation, holder.get("operation", "operation"),
           _duration(timeout))
    )  # fmt: skip


def new_token(avoid=()):
    """A random token that contains none of ``avoid``: Ansible masks the values
    of no_log parameters (config values of `hop config:set`) wherever they
    appear in a module's result, and the run needs the token back intact."""
    avoid = [value for value in avoid if value]
    chars = [c for c in TOKEN_CHARS if c not in avoid] or TOKEN_CHARS
    for _ in range(1000):
        token = "".join(secrets.choice(chars) for _ in range(24))
        if not any(value in token for value in avoid):
            break
    return token


def _duration(seconds):
    return "%d min" % (seconds // 60) if seconds >= 120 else "%d s" % seconds


class AppLock:
    def __init__(self, app, directory=LOCKS_DIR, poll=POLL_SECONDS):
        self.app = app
        self.directory = directory
        self.path = os.path.join(directory, app + ".json")
        self.poll = poll

    @contextlib.contextmanager
    def _guarded(self):
        """Exclusive access to the records; held for microseconds, never while waiting."""
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        with open(os.path.join(self.directory, ".guard"), "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            yield

    def holder(self):
        try:
            with open(self.path) as handle:
                return json.load(handle)
        except (FileNotFoundError, ValueError):
            return None

    def _write(self, record):
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".lock-")
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle, indent=2, sort_keys=True)
        os.replace(tmp, self.path)

    @staticmethod
    def is_stale(record, now, timeout):
        """Not renewed for ``timeout`` seconds: its run died (or took far too long)."""
        return now - record.get("renewed", record.get("since", 0)) > timeout

    def acquire(self, operation, wait=120, timeout=1800, controller="", run="", avoid=()):
        """Take the lock, waiting up to ``wait`` seconds; return a dict with the
        token, how long it waited, for which operation, and the stale holder it
        replaced (if any). Raises LockBusy when the wait is over."""
        started = time.monotonic()
        waited_for = None
        while True:
            with self._guarded():
                now = time.time()
                current = self.holder()
                if current is None or self.is_stale(current, now, timeout):
                    token = new_token(avoid)
                    self._write({
                        "app": self.app, "token": token, "operation": operation,
                        "since": now, "renewed": now,
                        "controller": controller, "run": run, "pid": os.getpid(),
                    })  # fmt: skip
                    waited = time.monotonic() - started
                    return {
                        "token": token,
                        "waited": round(waited, 1) if waited_for else 0,
                        "waited_for": waited_for,
                        "took_over": current,
                    }
            waited_for = waited_for or current.get("operation", "operation")
            if time.monotonic() - started >= wait:
                raise LockBusy(self.app, current, operation, time.monotonic() - started, timeout)
            time.sleep(self.poll)

    def renew(self, token):
        """Check the run still holds the lock and mark it active now."""
        with self._guarded():
            current = self.holder()
            if not current or current.get("token") != token:
                why = "taken over by a %s" % current["operation"] if current else "removed"
                raise LockLost(
                    "This run no longer holds the lock of app '%s' (%s), so it stopped before "
                    "changing anything more. Check the app with `hop apps`, then run the "
                    "operation again." % (self.app, why)
                )
            current["renewed"] = time.time()
            self._write(current)

    def release(self, token):
        """Remove the lock if ``token`` holds it; a lock of another run stays."""
        with self._guarded():
            current = self.holder()
            if not current or current.get("token") != token:
                return False
            os.unlink(self.path)
            return True


# Argument spec of the ``lock`` option of the modules that change an app.
LOCK_OPTION = {
    "type": "dict",
    "options": {
        "operation": {"type": "str"},
        "token": {"type": "str", "no_log": False},
        "release": {"type": "bool", "default": False},
        "wait": {"type": "int", "default": 120},
        "timeout": {"type": "int", "default": 1800},
        "controller": {"type": "str", "default": ""},
        "run": {"type": "str", "default": ""},
    },
}


class ModuleLock:
    """The ``lock`` option of one module call: take the lock (``operation``) or
    check the run still holds it (``token``) before any change; release it at
    the end when ``release`` is set, and on failure when this call took it."""

    def __init__(self, app, options, directory=LOCKS_DIR, avoid=()):
        self.options = options or {}
        self.lock = AppLock(app, directory)
        self.token = self.options.get("token")
        self.taken_here = False
        self.finished = False
        self.avoid = avoid
        self.report = {}

    def take(self):
        if not self.options:
            return
        if self.token:
            self.lock.renew(self.token)
            self.report = {"token": self.token}
            return
        opts = self.options
        self.report = self.lock.acquire(
            opts["operation"] or "operation",
            opts["wait"],
            opts["timeout"],
            opts["controller"],
            opts["run"],
            self.avoid,
        )
        self.token = self.report["token"]
        self.taken_here = True

    def heartbeat(self):
        """Between long steps: mark the lock active, or stop if it was taken over."""
        if self.token:
            self.lock.renew(self.token)

    def finish(self, ok):
        """Once per call: a module's exit (SystemExit) may pass a failure handler too."""
        if self.finished:
            return
        self.finished = True
        if self.token and ((ok and self.options.get("release")) or (not ok and self.taken_here)):
            self.report["released"] = self.lock.release(self.token)


def run_locked(module, app, work):
    """Take the app's lock as the module's ``lock`` option says, then return
    ``work(lock)``; a busy or lost lock fails the module, and the lock is
    released when ``work`` raises (or exits without releasing it)."""
    lock = ModuleLock(app, module.params["lock"], avoid=module.no_log_values)
    try:
        lock.take()
    except (LockBusy, LockLost) as err:
        module.fail_json(msg=str(err), lock_busy=True)
    try:
        return work(lock)
    except BaseException:
        lock.finish(ok=False)
        raise
