"""Shared host-side helpers for Hop3's app modules: paths, state, users,
commands run as the app's user, the port registry and nginx upstreams.

Everything here runs on the managed host as root, inside a module.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import hashlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

from ansible.module_utils import hop3_app_routes as routes

APPS_ROOT = "/srv/hop3/apps"
PORTS_FILE = "/srv/hop3/ports.json"
PORT_RANGE = (20000, 29999)
LAUNCHER = "/usr/local/lib/hop3/hop3-launch"
UPSTREAMS_DIR = "/etc/nginx/hop3/upstreams"
SITES_ENABLED = "/etc/nginx/sites-enabled"
UNIT_DIR = "/etc/systemd/system"
RELEASE_META = ".hop3-release.json"


class StepFailed(Exception):
    """A deploy step failed: which step, why, and the tail of its output."""

    def __init__(self, step, message, output=""):
        super().__init__(message)
        self.step = step
        self.message = message
        self.output = tail(output)


def tail(text, lines=30):
    return "\n".join((text or "").rstrip().splitlines()[-lines:])


class AppPaths:
    def __init__(self, app):
        self.app = app
        self.root = os.path.join(APPS_ROOT, app)
        self.releases = os.path.join(self.root, "releases")
        self.current = os.path.join(self.root, "current")
        self.shared = os.path.join(self.root, "shared")
        self.cache = os.path.join(self.root, "cache")
        self.env = os.path.join(self.root, "env")
        self.state = os.path.join(self.root, "state.json")
        self.upstream = os.path.join(UPSTREAMS_DIR, app + ".conf")
        self.site = os.path.join(SITES_ENABLED, "hop3-" + app + ".conf")

    def release(self, release_id):
        return os.path.join(self.releases, release_id)


# --- files ------------------------------------------------------------------


def write_file(path, content, mode=0o644, owner=None):
    """Write atomically (temporary file, fsync, rename); return True when the
    content or mode changed. Readers see the old file or the new one."""
    data = content.encode() if isinstance(content, str) else content
    try:
        with open(path, "rb") as handle:
            same = handle.read() == data
        st = os.stat(path)
        if same and (st.st_mode & 0o7777) == mode and (owner is None or _owned(st, owner)):
            return False
    except FileNotFoundError:
        pass
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".hop3-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            # On disk before the rename: a crash leaves the old file or the new
            # one (state.json, env), never an empty or partial one.
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if owner:
            shutil.chown(tmp, owner, owner)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return True


def _owned(st, owner):
    return st.st_uid == pwd.getpwnam(owner).pw_uid


def read_json(path, default):
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return default


def digest(value):
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


# --- app state, env, user ----------------------------------------------------


def load_state(paths):
    return read_json(
        paths.state,
        {"app": paths.app, "releases": [], "current": None, "next_release": 1,
         "scale": {}, "instances": {}, "stopped": False, "domains_extra": [],
         "domains_removed": [], "env_defaults": {}, "next_instance": 1},
    )  # fmt: skip


def save_state(paths, state):
    write_file(paths.state, json.dumps(state, indent=2, sort_keys=True), mode=0o640)
    shutil.chown(paths.state, "root", paths.app)


def find_release(state, release_id):
    for release in state["releases"]:
        if release["id"] == release_id:
            return release
    return None


def load_env(paths):
    return read_json(paths.env, {})


def save_env(paths, env):
    return write_file(paths.env, json.dumps(env, indent=2, sort_keys=True), 0o600, paths.app)


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def ensure_user(paths):
    """The app's own system user and group; refuses a user Hop3 did not make."""
    changed = False
    if user_exists(paths.app):
        if pwd.getpwnam(paths.app).pw_dir != paths.root:
            raise StepFailed(
                "user",
                "A system user named '%s' already exists and does not belong to Hop3; "
                "choose another app name." % paths.app,
            )
    else:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--home-dir", paths.root,
             "--no-create-home", "--shell", "/usr/sbin/nologin",
             "--comment", "Hop3 app " + paths.app, paths.app],
            check=True, capture_output=True,
        )  # fmt: skip
        changed = True
    for path, owner, mode in (
        (paths.root, "root", 0o750),
        (paths.releases, paths.app, 0o750),
        (paths.shared, paths.app, 0o750),
        (paths.cache, paths.app, 0o750),
        (os.path.join(paths.cache, "home"), paths.app, 0o750),
    ):
        if not os.path.isdir(path):
            os.makedirs(path)
            changed = True
        st = os.stat(path)
        if (st.st_mode & 0o7777) != mode or not _owned(st, owner) or (
            path == paths.root and st.st_gid != grp.getgrnam(paths.app).gr_gid
        ):
            os.chmod(path, mode)
            shutil.chown(path, owner, paths.app)
            changed = True
    for path in (paths.root, paths.releases):
        changed |= grant_web_server(path, "x")
    return changed


def grant_web_server(path, perms):
    """Let nginx (www-data) reach static files, and no other user: an ACL,
    since the app's files stay closed to other apps."""
    current = subprocess.run(["getfacl", "-cp", path], capture_output=True, text=True).stdout
    wanted = "user:www-data:%s%s%s" % (
        "r" if "r" in perms else "-", "-", "x" if "x" in perms else "-")  # fmt: skip
    if wanted in current.split():
        return False
    subprocess.run(["setfacl", "-m", "u:www-data:" + perms, path], check=True, capture_output=True)
    return True


def run_as(user, args, cwd, env, timeout=1800, stdin=None):
    """Run a command as ``user``; return (exit code, combined output)."""
    try:
        proc = subprocess.run(
            args, cwd=cwd, env=env, user=user, group=user, extra_groups=[],
            stdin=stdin or subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired as err:
        return 124, (err.stdout or b"").decode(errors="replace") + "\n(timed out)"
    return proc.returncode, proc.stdout.decode(errors="replace")


def run_in_release(paths, release_id, command, timeout=1800):
    """Run a shell command in a release as the app's user, with its environment."""
    args = [LAUNCHER, "--exec", paths.app, release_id, "/bin/sh", "-c", command]
    return run_as(paths.app, args, cwd=paths.release(release_id), env={}, timeout=timeout)


# --- ports -------------------------------------------------------------------


@contextlib.contextmanager
def ports_registry():
    """The host-wide map port -> app, under an exclusive lock."""
    os.makedirs(os.path.dirname(PORTS_FILE), exist_ok=True)
    with open(PORTS_FILE + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ports = read_json(PORTS_FILE, {})
        yield ports
        write_file(PORTS_FILE, json.dumps(ports, indent=2, sort_keys=True))


def _port_free(port):
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def allocate_ports(app, count):
    with ports_registry() as ports:
        found = []
        for port in range(*PORT_RANGE):
            if len(found) == count:
                break
            if str(port) not in ports and _port_free(port):
                found.append(port)
                ports[str(port)] = app
        if len(found) < count:
            raise StepFailed("ports", "No free port left in %d-%d." % PORT_RANGE)
        return found


def release_ports(app, ports_to_free):
    with ports_registry() as ports:
        for port in ports_to_free:
            if ports.get(str(port)) == app:
                del ports[str(port)]


# --- systemd -----------------------------------------------------------------


def systemctl(*args, check=True):
    proc = subprocess.run(["systemctl", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise StepFailed("systemd", "systemctl %s failed: %s" % (" ".join(args), proc.stderr))
    return proc


def journal_tail(unit, lines=30):
    proc = subprocess.run(
        ["journalctl", "-u", unit, "-n", str(lines), "--no-pager", "-o", "cat"],
        capture_output=True, text=True,
    )  # fmt: skip
    return proc.stdout


UNIT_PROPERTIES = ("ActiveState", "SubState", "NRestarts", "Result", "ExecMainStatus")


def unit_properties(unit):
    """What systemd says of a unit now: ActiveState, SubState, NRestarts..."""
    args = ["show", unit, *("--property=" + p for p in UNIT_PROPERTIES)]
    out = systemctl(*args, check=False).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def unit_gone(props, restarts_before="0"):
    """Why a started unit is no longer running (it exited, failed, or systemd
    restarted it), or None while it runs or is still starting."""
    active, sub = props.get("ActiveState"), props.get("SubState")
    if sub == "auto-restart" or props.get("NRestarts", "0") != restarts_before:
        return "its process exited (status %s) and systemd restarts it" % (
            props.get("ExecMainStatus") or "?")  # fmt: skip
    if active not in ("active", "activating", "reloading"):
        return "it is %s (%s, exit status %s)" % (
            active, props.get("Result") or sub, props.get("ExecMainStatus") or "?")  # fmt: skip
    return None


def unit_report(unit, lines=8):
    """`systemctl status` of a unit and its last journal lines, for an error:
    the user never has to log in to see why a process did not start."""
    status = systemctl("status", "--no-pager", "--full", "--lines=0", unit, check=False).stdout
    journal = journal_tail(unit, lines)
    for _ in range(10):  # journald may not have written the last lines yet
        if journal.strip():
            break
        time.sleep(0.1)
        journal = journal_tail(unit, lines)
    # The head of the status (state, exit code, PID): with the journal lines it
    # fits the 15 lines of output the CLI shows.
    status_lines = [line for line in status.rstrip().splitlines() if line.strip()][:5]
    return "\n".join(["systemctl status %s:" % unit, *status_lines,
                      "journal of %s (last lines):" % unit,
                      journal.rstrip() or "(nothing)"])  # fmt: skip


# --- nginx -------------------------------------------------------------------


def nginx_worker_pids():
    out = subprocess.run(["pgrep", "-f", "nginx: worker process"], capture_output=True, text=True)
    return set(out.stdout.split())


def nginx_running():
    return systemctl("is-active", "--quiet", "nginx", check=False).returncode == 0


def reload_nginx():
    """Check the whole config, reload, and wait until the old workers are gone
    so that no request is still routed to instances about to stop."""
    check = subprocess.run(["nginx", "-t"], capture_output=True, text=True)
    if check.returncode != 0:
        raise StepFailed("proxy", "nginx rejected the configuration", check.stderr)
    before = nginx_worker_pids()
    reload = systemctl("reload", "nginx", check=False)
    if reload.returncode != 0:
        state = systemctl("is-active", "nginx", check=False).stdout.strip() or "unknown"
        raise StepFailed(
            "proxy",
            "nginx did not reload (it is %s), so the new release cannot be served; the "
            "release that ran before is kept. Start nginx (`hop setup`, or `systemctl "
            "start nginx` on the host) and deploy again." % state,
            (reload.stderr or reload.stdout) + "\n" + unit_report("nginx.service", 3),
        )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and nginx_worker_pids() & before:
        time.sleep(0.05)


# --- removing an app ---------------------------------------------------------


def remove_app(paths, uploads=()):
    """Remove every trace of an app but its vhost and lock: units (running,
    failed or not), port registrations, files, the given uploads, its user.
    Return whether anything was there."""
    changed = False
    prefix = "hop3-%s-" % paths.app
    units = [n for n in os.listdir(UNIT_DIR) if n.startswith(prefix)]
    live = systemctl("list-units", "--all", "--no-legend", "--plain", prefix + "*",
                     check=False).stdout.split("\n")  # fmt: skip
    for name in [line.split()[0] for line in live if line.strip()]:
        systemctl("disable", "--now", name, check=False)
        changed = True
    for name in units:
        if not name.endswith("@.service"):
            systemctl("disable", "--now", name, check=False)
        os.unlink(os.path.join(UNIT_DIR, name))
        changed = True
    if changed:
        systemctl("daemon-reload")
        systemctl("reset-failed", prefix + "*", check=False)
    if os.path.exists(routes.app_file(paths.app)):
        routes.remove(paths.app)
        changed = True
    if os.path.exists(PORTS_FILE):
        with ports_registry() as ports:
            for port in [p for p, owner in ports.items() if owner == paths.app]:
                del ports[port]
                changed = True
    if os.path.isdir(paths.root):
        shutil.rmtree(paths.root)
        changed = True
    for upload in uploads:
        if os.path.exists(upload):
            os.unlink(upload)
            changed = True
    if user_exists(paths.app) and pwd.getpwnam(paths.app).pw_dir == paths.root:
        kill_user_processes(paths.app)
        proc = subprocess.run(["userdel", paths.app], capture_output=True, text=True)
        if proc.returncode != 0:
            raise StepFailed("remove", "Removing user %s failed: %s" % (paths.app, proc.stderr))
        changed = True
    return changed


def kill_user_processes(user, seconds=15):
    """SIGKILL every process of ``user`` and wait until they are gone: the
    kernel reaps them asynchronously, and userdel refuses a user still in use."""
    deadline = time.monotonic() + seconds
    while True:
        subprocess.run(["pkill", "-KILL", "-u", user], capture_output=True)
        alive = subprocess.run(["pgrep", "-u", user], capture_output=True).returncode == 0
        if not alive or time.monotonic() > deadline:
            return
        time.sleep(0.1)


# --- uploaded sources -----------------------------------------------------------


def escaping_links(root):
    """Symlinks under ``root`` that are absolute or resolve outside it
    (following the links on the way), as "name -> target" strings."""
    root = os.path.realpath(root)
    found = []
    for folder, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                continue
            target = os.readlink(path)
            real = os.path.realpath(path)
            if os.path.isabs(target) or not (real == root or real.startswith(root + os.sep)):
                found.append("%s -> %s" % (os.path.relpath(path, root), target))
    return found


# --- proxy -------------------------------------------------------------------


def app_domains(state, spec):
    """Domains from the spec, plus those added and minus those removed by
    `hop domains:add/remove` (kept in state.json)."""
    removed = set(state.get("domains_removed", []))
    domains = [d for d in spec.get("domains", []) if d not in removed]
    domains += [d for d in state.get("domains_extra", []) if d not in domains]
    return domains


def proxy_settings(state):
    """What role hop3_proxy needs to write the app's vhost."""
    release = find_release(state, state["current"]) if state.get("current") else None
    spec = release["spec"] if release else {}
    proxy = spec.get("proxy") or {}
    return {
        "domains": app_domains(state, spec),
        "has_web": "web" in spec.get("processes", {}),
        "static_root": spec.get("static_dir"),
        "static_paths": spec.get("static_paths") or {},
        "max_body_size": proxy.get("max_body_size", "10m"),
        "websockets": proxy.get("websockets", True),
        "rate_limit": proxy.get("rate_limit"),
        "rate_limit_burst": proxy.get("rate_limit_burst"),
        "waf": spec.get("waf") or {},
        "tls": spec.get("tls") or {},
        # A PHP app served by Hop3's PHP-FPM: its document root in the release.
        "php_root": php_root(spec),
    }


def php_root(spec):
    php = spec.get("php") or {}
    if spec.get("runtime") != "php" or not php.get("fpm"):
        return None
    return php.get("root") or "."
