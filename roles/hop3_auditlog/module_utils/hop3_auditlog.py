"""Hop3's audit log: one JSON line per state-changing action, in
/var/log/hop3/audit.jsonl on each host.

This is the only implementation. The module hop3_audit_record (role
hop3_auditlog) imports it on the hosts, and hop3/auditlog.py loads this very
file for Python code that runs on a host (hop3-shell). Standard library only:
it runs under the host's system python3.

Masking rule (mask_argv): a command's arguments are kept, except these
values, replaced by "***":
- the value of every KEY=VALUE argument that follows a `config:set` command;
- the value of any KEY=VALUE argument whose KEY names a secret (contains
  SECRET, PASSWORD, PASSWD, PASSPHRASE, TOKEN, KEY, CREDENTIAL or PRIVATE,
  in any case);
- the value of an option whose name names a secret, written `--opt=value` or
  `--opt value` (e.g. --password, --key-file, --token), except the known
  flags that take no value (--show-secrets);
- the password of a URL (scheme://user:password@host → scheme://user:***@host).

Writing (append_entry) is safe with several writers and with logrotate: each
entry is ONE write(2) of one line on a descriptor opened with O_APPEND, under
an exclusive flock on a separate lock file, then fsync; the file is opened
and closed for each entry, so a rotated file is never written to after
rotation finished.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import grp
import gzip
import hashlib
import json
import os
import re
import socket
from datetime import datetime, timedelta, timezone

LOG_DIR = "/var/log/hop3"
LOG_FILE = "audit.jsonl"
LOCK_FILE = ".audit.lock"
LOG_MODE = 0o640
LOG_GROUP = "adm"
MASK = "***"
RESULTS = ("ok", "failed", "denied", "interrupted")
VIAS = ("cli", "ssh", "git")
FIELDS = (
    "time", "host", "user", "key", "source", "via",
    "command", "step", "app", "result", "release", "error",
)  # fmt: skip
ERROR_MAX_CHARS = 300

_SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|PASSPHRASE|TOKEN|KEY|CREDENTIAL|PRIVATE", re.I)
_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.S)
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@")
_FLAGS = {"--show-secrets"}
_MASKING_COMMANDS = ("config:set",)
_RELATIVE = re.compile(r"^(\d+)\s*(m|min|h|d|w)$")
_UNITS = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_ROTATED = re.compile(r"^" + re.escape(LOG_FILE) + r"\.(\d+)(\.gz)?$")


# --- masking -----------------------------------------------------------------


def is_secret_name(name):
    return bool(_SECRET_NAME.search(name or ""))


def mask_argv(argv):
    """A copy of ``argv`` (a list of strings) with secret values masked (see above)."""
    masked = []
    mask_assignments = False
    mask_next = False
    for arg in [str(a) for a in argv]:
        if mask_next:
            masked.append(MASK)
            mask_next = False
            continue
        if arg in _MASKING_COMMANDS:
            mask_assignments = True
        if arg.startswith("--") and arg not in _FLAGS:
            name, sep, _value = arg.partition("=")
            if is_secret_name(name[2:]):
                if sep:
                    masked.append(name + "=" + MASK)
                else:
                    masked.append(arg)
                    mask_next = True
                continue
        match = _ASSIGNMENT.match(arg)
        if match and (mask_assignments or is_secret_name(match.group(1))):
            masked.append(match.group(1) + "=" + MASK)
            continue
        masked.append(_URL_PASSWORD.sub(r"\1" + MASK + "@", arg))
    return masked


# --- entries -----------------------------------------------------------------


def utc_now():
    return datetime.now(timezone.utc)


def format_time(moment):
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def first_line(text, limit=ERROR_MAX_CHARS):
    """The first non-empty line of ``text``, at most ``limit`` characters; None if empty."""
    for line in str(text or "").splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return None


def make_entry(user, command, result="ok", app=None, key=None, source=None, via="cli",
               release=None, error=None, host=None, now=None, step=None):  # fmt: skip
    """One log entry, with the fields in their documented order."""
    if result not in RESULTS:
        raise ValueError("result must be one of %s, not %r" % (", ".join(RESULTS), result))
    if via not in VIAS:
        raise ValueError("via must be one of %s, not %r" % (", ".join(VIAS), via))
    return {
        "time": format_time(now or utc_now()),
        "host": host or socket.gethostname(),
        "user": str(user or "unknown"),
        "key": key or None,
        "source": source or None,
        "via": via,
        "command": mask_argv(command or []),
        # What this run did (its verb): a command can make several runs, e.g.
        # a catalog upgrade makes backup, catalog:upgrade and maybe restore.
        "step": step or None,
        "app": app or None,
        "result": result,
        "release": release or None,
        "error": first_line(error) if result != "ok" else None,
    }


# --- identity of the SSH session -----------------------------------------------


def key_fingerprint(public_key_line):
    """SHA256 fingerprint (as `ssh-keygen -l` prints it) of "TYPE BASE64 [comment]";
    None when the line holds no such key."""
    parts = str(public_key_line or "").split()
    if len(parts) < 2:
        return None
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError:
        return None
    # The blob starts with the key type, as a 4-byte length then the name.
    if blob[4 : 4 + len(parts[0])] != parts[0].encode():
        return None
    digest = hashlib.sha256(blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def session_key(environ=None):
    """Fingerprint of the key the SSH client logged in with, from the file named by
    $SSH_USER_AUTH (sshd's ExposeAuthInfo); None without it."""
    environ = os.environ if environ is None else environ
    path = environ.get("SSH_USER_AUTH")
    if not path:
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    found = None
    for line in lines:
        method, _, rest = line.partition(" ")
        if method == "publickey":
            found = key_fingerprint(rest) or found
    return found


def session_source(environ=None):
    """The client's address, from $SSH_CONNECTION or $SSH_CLIENT; None without them."""
    environ = os.environ if environ is None else environ
    for name in ("SSH_CONNECTION", "SSH_CLIENT"):
        fields = (environ.get(name) or "").split()
        if fields:
            return fields[0]
    return None


# --- writing -------------------------------------------------------------------


def log_path(log_dir=LOG_DIR):
    return os.path.join(log_dir, LOG_FILE)


def _ensure_dir(log_dir):
    if not os.path.isdir(log_dir):
        os.makedirs(log_dir, mode=0o755, exist_ok=True)


def _adm_gid():
    try:
        return grp.getgrnam(LOG_GROUP).gr_gid
    except KeyError:
        return -1


def append_entry(entry, log_dir=LOG_DIR):
    """Append ``entry`` as one JSON line (one write, under the lock, fsync'd)."""
    line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
    _ensure_dir(log_dir)
    lock_fd = os.open(os.path.join(log_dir, LOCK_FILE), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        path = log_path(log_dir)
        created = not os.path.exists(path)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, LOG_MODE)
        try:
            if created and os.geteuid() == 0:
                # The role sets root:adm 0640; a writer that made the file keeps that.
                os.fchown(fd, 0, _adm_gid())
                os.fchmod(fd, LOG_MODE)
            written = os.write(fd, line)
            if written != len(line):
                raise OSError("short write to %s (%d of %d bytes)" % (path, written, len(line)))
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        os.close(lock_fd)  # closing releases the flock
    return line


def record(user, command, log_dir=LOG_DIR, **fields):
    """Build an entry and append it; return the entry."""
    entry = make_entry(user, command, **fields)
    append_entry(entry, log_dir)
    return entry


APPS_ROOT = "/srv/hop3/apps"


def current_release(app, apps_root=APPS_ROOT):
    """The app's current release id from its state.json; None without one."""
    if not app or "/" in app or app.startswith("."):
        return None
    try:
        with open(os.path.join(apps_root, app, "state.json"), encoding="utf-8") as handle:
            return json.load(handle).get("current") or None
    except (OSError, ValueError, AttributeError):
        return None


def record_run(audit, result="ok", error=None, log_dir=LOG_DIR, apps_root=APPS_ROOT):
    """Append the entry of one run, from the runner's ``hop3_audit`` (who did
    what), with the app's current release; a missing key or source is taken
    from the SSH session this runs in. Modules call this: hop3_audit_record,
    and the last module of a deploy or config change (role hop3_app)."""
    app = audit.get("app") or None
    command = audit.get("command") or []
    if not isinstance(command, list):
        raise ValueError("audit.command must be a list of strings, not %r" % (command,))
    return record(
        audit.get("user"),
        command,
        log_dir=log_dir,
        result=result,
        app=app,
        key=audit.get("key") or session_key(),
        source=audit.get("source") or session_source(),
        via=audit.get("via") or "cli",
        step=audit.get("step"),
        release=current_release(app, apps_root),
        error=error,
    )


# --- reading -------------------------------------------------------------------


def parse_since(text, now=None):
    """The UTC moment meant by ``text``: "30m", "2h", "3d", "1w", a date "2026-11-01"
    (midnight UTC) or an ISO 8601 time. ValueError when it is none of these."""
    text = str(text or "").strip()
    now = now or utc_now()
    match = _RELATIVE.match(text.lower())
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        raise ValueError(
            "%r is not a time: use 30m, 2h, 3d, 1w, a date such as 2026-11-01 "
            "or an ISO 8601 time such as 2026-11-01T14:00Z" % text
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def log_files(log_dir=LOG_DIR):
    """The log and its rotations (audit.jsonl.1, audit.jsonl.2.gz, ...), oldest first."""
    try:
        names = os.listdir(log_dir)
    except FileNotFoundError:
        return []
    rotated = []
    for name in names:
        match = _ROTATED.match(name)
        if match:
            rotated.append((int(match.group(1)), name))
    files = [os.path.join(log_dir, name) for _, name in sorted(rotated, reverse=True)]
    if LOG_FILE in names:
        files.append(log_path(log_dir))
    return files


def _lines(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        yield from handle


def read_entries(log_dir=LOG_DIR, app=None, since=None, limit=None):
    """Entries of the log and its rotations, oldest first, of ``app`` (when given)
    and not older than ``since`` (a datetime, when given); the last ``limit`` ones."""
    since_text = format_time(since) if since else None
    entries = []
    for path in log_files(log_dir):
        with contextlib.suppress(FileNotFoundError):  # rotated away while we read
            for line in _lines(path):
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line cut by a crash; the next ones are whole
                if not isinstance(entry, dict):
                    continue
                if app and entry.get("app") != app:
                    continue
                if since_text and str(entry.get("time", "")) < since_text:
                    continue
                entries.append(entry)
    entries.sort(key=lambda e: str(e.get("time", "")))
    return entries[-limit:] if limit else entries
