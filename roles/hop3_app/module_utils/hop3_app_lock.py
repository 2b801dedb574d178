"""The per-app lock: one state-changing operation per app and host at a time.

A lock is a lease, not a held file descriptor: the Ansible modules of one run
are separate processes, so the run that takes the lock gets a token and every
later module call of that run passes it back. The record
``/srv/hop3/locks/<app>.json`` names the holder (operation, start time, run,
controller, the pid of the module process that renews it); it is read and
changed only under a short flock on a guard file, which makes take, renew and
release atomic between concurrent runs.

The lease lasts ``timeout`` seconds (hop3_app_lock_timeout, 45 s) after its
last renewal, and is renewed only by code that is running for its holder:

- While a module of the run works under the lock (a build, a health check,
  a swap), a background thread of that module process renews the lease every
  ``timeout / 4`` seconds. A long build keeps its lock however long it
  takes, and no other run can start changing the app while this one still
  does, even if its controller is gone: the module finishes (or fails), and
  the renewals stop with its process.
- Between module calls (the vhost tasks of role hop3_proxy took 24 s under
  load), a module that ends without releasing the lock leaves a detached
  keeper process that renews the lease while the run's link to its
  controller lives: the Mitogen context the module was forked from, or the
  sshd session it ran under (``run_anchor``); for at most 10 min, and only
  while the lease still carries the run's token. The next module call of
  the run renews it itself; tasks/unlock.yml removes the record, and the
  keeper stops at its next renewal.
- A controller that was SIGKILLed, or lost its SSH link, starts no more
  module calls and its Mitogen context exits (without Mitogen, the sshd
  session ends when the SSH master's ControlPersist, 60 s, runs out): the
  keeper stops, the lease runs out ``timeout`` seconds after the last
  renewal, and the next run takes it over. That run (or `hop deploy`'s
  recovery after an interrupt, playbooks/app-recover.yml) then removes what
  the dead run left half-done: releases never switched to and instances not
  recorded in state.json (library/hop3_app_lock.py, recover).
- A renewer thread that finds the lease taken over or removed (`hop unlock`)
  stops renewing, and the module's next heartbeat fails with LockLost.

Plain Python with no Ansible import, so unit tests run it on real files.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import secrets
import string
import tempfile
import threading
import time

LOCKS_DIR = "/srv/hop3/locks"
POLL_SECONDS = 0.5
DEFAULT_TIMEOUT = 45
KEEPER_LIFETIME = 600
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
    renewed = holder.get("renewed", since)
    who = holder.get("controller") or "an unknown controller"
    run = " (run %s)" % holder["run"] if holder.get("run") else ""
    return (
        "App '%s' is busy: a %s started at %s (%d s ago) by %s%s holds its lock, and this "
        "%s waited %d s for it; its holder renewed it %d s ago. Run the %s again once that %s "
        "has finished. If that run died, its lock is taken over automatically %s after its "
        "holder stopped renewing it (hop3_app_lock_timeout); an admin can remove it at once "
        "with `hop unlock %s`; to wait longer, raise hop3_app_lock_wait."
        % (app, holder.get("operation", "operation"),
           time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(since)), now - since, who, run,
           operation, waited, max(0, now - renewed), operation,
           holder.get("operation", "operation"), _duration(timeout), app)
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

    def acquire(self, operation, wait=120, timeout=DEFAULT_TIMEOUT, controller="", run="",
                avoid=(), steal_run=""):  # fmt: skip
        """Take the lock, waiting up to ``wait`` seconds; return a dict with the
        token, how long it waited, for which operation, and the stale holder it
        replaced (if any). A lock of run ``steal_run`` (an interrupted run that
        no process renews any more) is taken over too. Raises LockBusy when the
        wait is over."""
        started = time.monotonic()
        waited_for = None
        while True:
            with self._guarded():
                now = time.time()
                current = self.holder()
                if (
                    current is None
                    or self.is_stale(current, now, timeout)
                    or (steal_run and current.get("run") == steal_run and not holder_alive(current))
                ):
                    token = new_token(avoid)
                    self._write({
                        "app": self.app, "token": token, "operation": operation,
                        "since": now, "renewed": now,
                        "controller": controller, "run": run, "pid": os.getpid(),
                        "timeout": timeout,
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

    def renew(self, token, keeper=False):
        """Check the run still holds the lock and mark it active now (``keeper``:
        by the detached keeper between module calls, which records no pid)."""
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
            if not keeper:
                current["pid"] = os.getpid()
            self._write(current)

    def remove(self):
        """Remove the lock whoever holds it (`hop unlock`); return the record removed."""
        with self._guarded():
            current = self.holder()
            if current is not None:
                os.unlink(self.path)
            return current

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
        "timeout": {"type": "int", "default": DEFAULT_TIMEOUT},
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
        self._renewer = None

    def take(self):
        if not self.options:
            return
        if self.token:
            self.lock.renew(self.token)
            self.report = {"token": self.token}
            self.keep_renewed()
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
        self.keep_renewed()
        if self.report.get("took_over"):
            self.report["cleaned"] = clean_after_takeover(self.lock.app)

    def keep_renewed(self, interval=None):
        """Renew the lease from a background thread until finish()."""
        if self.token and self._renewer is None:
            timeout = self.options.get("timeout") or DEFAULT_TIMEOUT
            self._renewer = Renewer(self.lock, self.token, interval or max(1.0, timeout / 4.0))
            self._renewer.start()

    def heartbeat(self):
        """Between long steps: mark the lock active, or stop if it was taken over."""
        if self._renewer is not None and self._renewer.lost is not None:
            raise self._renewer.lost
        if self.token:
            self.lock.renew(self.token)

    def stop_renewing(self):
        if self._renewer is not None:
            self._renewer.stop()

    def finish(self, ok):
        """Once per call: a module's exit (SystemExit) may pass a failure handler too."""
        if self.finished:
            return
        self.finished = True
        if self._renewer is not None:
            self._renewer.stop()
        if self.token and ((ok and self.options.get("release")) or (not ok and self.taken_here)):
            self.report["released"] = self.lock.release(self.token)
        elif self.token and ok:
            # The run goes on (the vhost, the next module): keep the lease
            # while the connection of its controller lives.
            timeout = self.options.get("timeout") or DEFAULT_TIMEOUT
            spawn_keeper(self.lock, self.token, max(1.0, timeout / 4.0), run_anchor())


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
    finally:
        lock.stop_renewing()


class Renewer(threading.Thread):
    """Renews a lease every ``interval`` seconds while its module process works."""

    def __init__(self, lock, token, interval):
        super().__init__(name="hop3-lock-renewer", daemon=True)
        self.lock = lock
        self.token = token
        self.interval = interval
        self.lost = None
        self._stopped = threading.Event()

    def run(self):
        while not self._stopped.wait(self.interval):
            try:
                self.lock.renew(self.token)
            except LockLost as err:
                self.lost = err  # the module's next heartbeat() fails with it
                return
            except OSError:
                continue  # a full disk or a transient error: try again next time

    def stop(self):
        self._stopped.set()


def clean_after_takeover(app):
    """The run whose stale lock this one took died mid-operation: remove what
    it left half-done before changing anything (module_utils/hop3_app_orphans)."""
    try:
        from ansible.module_utils.hop3_app_orphans import clean_app
    except ImportError:  # unit tests load this file alone
        return None
    return clean_app(app)


def run_anchor():
    """The process on this host that lives as long as the controller's link
    does: the Mitogen context the module was forked from, or else the sshd
    session it runs under. None when there is neither (a local run)."""
    pid = os.getppid()
    while pid > 1:
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as handle:
                cmdline = handle.read()
            with open("/proc/%d/stat" % pid, "rb") as handle:
                stat = handle.read()
        except OSError:
            return None
        comm = stat[stat.find(b"(") + 1 : stat.rfind(b")")]
        if b"mitogen" in cmdline or comm.startswith(b"sshd"):
            return pid
        pid = int(stat[stat.rfind(b")") + 2 :].split()[1])
    return None


def spawn_keeper(lock, token, interval, anchor, lifetime=KEEPER_LIFETIME):
    """Renew the lease from a detached process (between this module call and
    the run's next one) while ``anchor`` lives, the lease is still this run's
    and for at most ``lifetime`` seconds. Returns its pid (None: no anchor)."""
    if anchor is None:
        return None
    first = os.fork()
    if first:
        os.waitpid(first, 0)
        return first
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        _detach()
        keep(lock, token, interval, anchor, lifetime)
    finally:
        os._exit(0)


def _detach():
    """Let go of the module's stdout/stderr: sshd and Mitogen wait for them to close."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.closerange(3, 1024)


def keep(lock, token, interval, anchor, lifetime):
    deadline = time.monotonic() + lifetime
    while time.monotonic() < deadline:
        time.sleep(interval)
        if not _alive(anchor):
            return
        try:
            lock.renew(token, keeper=True)
        except LockLost:
            return
        except OSError:
            continue


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def controller_gone(fd=1):
    """Whether the controller's end of this module's stdout is closed: its run
    was killed (Ctrl-C, SIGKILL) or its link lost. The module then goes on
    (nothing kills it), so it must not start a change it could not report.
    With SSH pipelining stdout is a pipe to sshd, which closes it with the
    session; poll() reports POLLERR (pipe) or POLLHUP (socket) at once."""
    try:
        poller = select.poll()
        poller.register(fd, 0)  # errors and hang-ups are always reported
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError):
        return False


def holder_alive(record):
    """Whether the process that last renewed ``record`` still runs on this host."""
    pid = record.get("pid")
    return isinstance(pid, int) and pid > 0 and _alive(pid)
