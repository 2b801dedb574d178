"""Make an app's running processes match what is asked, without downtime:
the swap of module hop3_app_processes, which hop3_app_release also runs right
after a build (one module call for a whole redeploy).

run_swap() starts the instances a release needs beside the running ones,
health-checks them, forwards the app's route port to them
(module_utils/hop3_app_routes.py; a PHP app's upstream is switched by an
nginx reload), then stops the old ones. A failure before the old instances
are stopped puts everything back (Swap.undo): the old ones keep serving.
"""

import copy
import os
import shutil
import socket
import time
import urllib.error
import urllib.request

from ansible.module_utils.hop3_app_fastcgi import FastCGIError
from ansible.module_utils.hop3_app_fastcgi import get as fastcgi_get
from ansible.module_utils.hop3_app_recover import write_recover_template
from ansible.module_utils import hop3_app_routes as routes
from ansible.module_utils.hop3_app_host import (
    LAUNCHER,
    UNIT_DIR,
    StepFailed,
    allocate_ports,
    digest,
    find_release,
    load_env,
    load_state,
    nginx_running,
    proxy_settings,
    release_ports,
    reload_nginx,
    remove_app,
    save_state,
    systemctl,
    tail,
    unit_gone,
    unit_properties,
    unit_report,
    write_file,
)


# How long a new worker (no port to probe) must keep running to count as started.
WORKER_SETTLE_SECONDS = 1

NGINX_DOWN = (
    "nginx is not running (it is %s), so the new release cannot be served; the release "
    "that ran before is kept. Start nginx (`hop setup`, or `systemctl start nginx` on the "
    "host) and deploy again."
)


def read_bytes(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def read_text(path):
    data = read_bytes(path)
    return None if data is None else data.decode()


def listening(port):
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def unit_name(app, process, instance=None):
    base = "hop3-%s-%s" % (app, process)
    return "%s@%s.service" % (base, instance) if instance else base + "@.service"


def unit_text(paths, process, spec):
    limits = spec.get("limits") or {}
    lines = [
        "# Managed by Hop3: process '%s' of app '%s'." % (process, paths.app),
        "[Unit]",
        "Description=Hop3 app %s, %s process (%%i)" % (paths.app, process),
        "After=network.target",
        "StartLimitIntervalSec=120",
        "StartLimitBurst=10",
        # Past the start limit, start again later (module_utils/hop3_app_recover.py).
        "OnFailure=hop3-recover@%n.service",
        "",
        "[Service]",
        "Type=simple",
        "User=%s" % paths.app,
        "Group=%s" % paths.app,
        "ExecStart=/usr/bin/python3 %s %s %s %%i" % (LAUNCHER, paths.app, process),
        "Restart=on-failure",
        "RestartSec=2",
        "TimeoutStopSec=30",
        "SyslogIdentifier=%s-%s" % (paths.app, process),
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectControlGroups=yes",
        "RestrictSUIDSGID=yes",
        # Other apps' processes are invisible in /proc (and so their environment).
        "ProtectProc=invisible",
        "ProcSubset=pid",
        "ReadWritePaths=%s %s" % (paths.shared, paths.cache),
        "TasksMax=%s" % limits.get("tasks", 512),
    ]
    if limits.get("memory"):
        lines.append("MemoryMax=%s" % limits["memory"])
    if limits.get("cpu"):
        lines.append("CPUQuota=%s" % limits["cpu"])
    lines += ["", "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


def cron_units(paths, job):
    service = "\n".join([
        "# Managed by Hop3: cron job of app '%s'." % paths.app,
        "[Unit]",
        "Description=Hop3 app %s, %s" % (paths.app, job["name"]),
        "[Service]",
        "Type=oneshot",
        "User=%s" % paths.app,
        "Group=%s" % paths.app,
        "ExecStart=/usr/bin/python3 %s %s %s current-0" % (LAUNCHER, paths.app, job["name"]),
        "SyslogIdentifier=%s-%s" % (paths.app, job["name"]),
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "ProtectProc=invisible",
        "ProcSubset=pid",
        "ReadWritePaths=%s %s" % (paths.shared, paths.cache),
        "",
    ])  # fmt: skip
    timer = "\n".join([
        "# Managed by Hop3: schedule '%s' of app '%s'." % (job["schedule"], paths.app),
        "[Unit]",
        "Description=Hop3 app %s, %s timer" % (paths.app, job["name"]),
        "[Timer]",
        "OnCalendar=%s" % job["on_calendar"],
        "AccuracySec=1s",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ])  # fmt: skip
    return service, timer


class Swap:
    """One reconciliation of an app's processes."""

    def __init__(self, paths, state):
        self.paths = paths
        self.state = state
        self.changed = False
        self.units_changed = False
        # Files this run changed (path -> content before, None: absent), and
        # whether nginx loaded the new upstream: what a failed swap puts back.
        self.undo_files = {}
        self.nginx_reloaded = False
        # The app's routes file before this run (None: none; False: untouched).
        self.undo_route = False
        self.timings = {}  # step -> seconds, reported (`hop deploy -v`)

    def timed(self, step, function, *args):
        started = time.monotonic()
        try:
            return function(*args)
        finally:
            self.timings[step] = round(self.timings.get(step, 0) + time.monotonic() - started, 2)

    # -- units ---------------------------------------------------------------

    def write_units(self, spec):
        self.units_changed |= write_recover_template(UNIT_DIR, write_file)
        for process in spec["processes"]:
            path = os.path.join(UNIT_DIR, unit_name(self.paths.app, process))
            before = read_bytes(path)
            if write_file(path, unit_text(self.paths, process, spec)):
                self.units_changed = True
                self.undo_files.setdefault(path, before)
        if self.units_changed:
            systemctl("daemon-reload")

    def sync_cron(self, spec):
        wanted = set()
        for job in spec.get("cron", []):
            service, timer = cron_units(self.paths, job)
            base = os.path.join(UNIT_DIR, "hop3-%s-%s" % (self.paths.app, job["name"]))
            wanted.update([base + ".service", base + ".timer"])
            changed = write_file(base + ".service", service)
            changed |= write_file(base + ".timer", timer)
            if changed:
                systemctl("daemon-reload")
                systemctl("enable", "--now", os.path.basename(base) + ".timer")
                systemctl("restart", os.path.basename(base) + ".timer")
                self.changed = True
        self.remove_cron(keep=wanted)

    def remove_cron(self, keep=()):
        prefix = "hop3-%s-cron-" % self.paths.app
        for name in sorted(os.listdir(UNIT_DIR)):
            path = os.path.join(UNIT_DIR, name)
            if name.startswith(prefix) and path not in keep:
                if name.endswith(".timer"):
                    systemctl("disable", "--now", name, check=False)
                os.unlink(path)
                self.changed = True

    # -- instances -----------------------------------------------------------

    def start(self, process, release_id, env_hash, count):
        if process == "web":
            numbers = allocate_ports(self.paths.app, count)
        else:
            first = self.state.get("next_instance", 1)
            numbers = list(range(first, first + count))
            self.state["next_instance"] = first + count
        started = [{"id": "%s-%d" % (release_id, number), "release": release_id,
                    "env": env_hash, "number": number} for number in numbers]  # fmt: skip
        # Enabled (for boot) without the daemon-reload `enable` does by
        # default: instances of a loaded template need none, and each reload
        # costs 0.3-0.9 s.
        systemctl("enable", "--no-reload", "--now",
                  *[unit_name(self.paths.app, process, i["id"]) for i in started])  # fmt: skip
        self.changed = True
        return started

    def stop(self, process, instances):
        """Stop instances without waiting: no new request reaches them, and
        systemd lets each finish its own in-flight work (TimeoutStopSec)."""
        if not instances:
            return
        units = [unit_name(self.paths.app, process, i["id"]) for i in instances]
        systemctl("disable", "--no-reload", "--now", "--no-block", *units, check=False)
        # A failed instance stays loaded, and systemd shows the enablement it
        # read before the disable until a daemon-reload: unload it instead.
        systemctl("reset-failed", *units, check=False)
        if process == "web":
            release_ports(self.paths.app, [i["number"] for i in instances])
        self.changed = True

    def check_alive(self, process, instances, healthcheck):
        if process == "web":
            for instance in instances:
                self.health_check(instance, healthcheck, self.fetcher(instance))
            return
        # A worker has no port to probe: it must still run a little later.
        deadline = time.monotonic() + WORKER_SETTLE_SECONDS
        while True:
            for instance in instances:
                self.fail_if_gone(process, instance)
            if time.monotonic() >= deadline:
                return
            time.sleep(0.2)

    def fail_if_gone(self, process, instance):
        """Stop waiting as soon as systemd says the process exited."""
        unit = unit_name(self.paths.app, process, instance["id"])
        why = unit_gone(unit_properties(unit))
        if why:
            raise StepFailed(
                "start %s" % process,
                "%s process %s stopped at once: %s. Its command is in the Procfile or "
                "hop3.toml [run]; its last output is below." % (process, unit, why),
                unit_report(unit),
            )

    def fetcher(self, instance):
        """How to GET a path from a web instance: HTTP, or FastCGI for PHP-FPM."""
        port = instance["number"]
        php = php_settings(find_release(self.state, instance["release"])["spec"])
        if php is None:
            return lambda path: http_get(port, path)
        root = document_root(self.paths, instance["release"], php)
        return lambda path: fastcgi_get(port, root, path)

    def health_check(self, instance, check, fetch):
        unit = unit_name(self.paths.app, "web", instance["id"])
        port = instance["number"]
        url = "http://127.0.0.1:%d%s" % (port, check.get("path") or "/")
        timeout = int(check.get("timeout") or 30)
        deadline = time.monotonic() + timeout
        failures, last = 0, "no answer"
        while time.monotonic() < deadline:
            self.fail_if_gone("web", instance)
            verdict = probe(fetch, check)
            if verdict is None:
                return
            last = verdict
            if verdict != "no answer":
                failures += 1
                if failures >= int(check.get("retries") or 3):
                    break
            time.sleep(0.1 if verdict == "no answer" else 1)
        self.fail_if_gone("web", instance)
        if last == "no answer" and not listening(port):
            message = (
                "web process is running but nothing listens on 127.0.0.1:%d after %d s: the "
                "start command must bind $PORT (Hop3 sets it for each web instance), on "
                "127.0.0.1 or 0.0.0.0." % (port, timeout)
            )
        elif last == "no answer":
            message = (
                "web instance on port %d accepts connections but gave no HTTP answer to %s "
                "within %d s (raise [healthcheck] timeout if it starts slowly)." % (
                    port, url, timeout)
            )  # fmt: skip
        else:
            message = "web instance on port %d answers but did not pass the health check " \
                "(%s): %s." % (port, url, last)  # fmt: skip
        raise StepFailed("health check", message, unit_report(unit))

    # -- nginx ---------------------------------------------------------------

    def route(self, ports, release_id, spec):
        """Send the app's requests to the web instances on ``ports``.

        nginx's upstream names the app's route port, which the kernel forwards
        to the instances (module_utils/hop3_app_routes.py): a swap changes
        that rule, not nginx's configuration, so nginx is not reloaded. A PHP
        app's upstream names its PHP-FPM instances and the release nginx
        serves its files from, so that both switch in one nginx reload."""
        php = php_settings(spec) is not None
        if os.path.exists(self.paths.site) and not nginx_running():
            raise StepFailed("proxy", NGINX_DOWN % systemctl(
                "is-active", "nginx", check=False).stdout.strip() or "unknown",
                unit_report("nginx.service", 3))  # fmt: skip
        if php:
            self.write_upstream(["127.0.0.1:%d max_fails=0" % p for p in sorted(ports)],
                                self.paths.release(release_id))  # fmt: skip
            self.forget_route()
            return
        self.changed |= routes.ensure_base(write_file)
        port = self.route_port()
        path = routes.app_file(self.paths.app)
        self.undo_route = read_text(path) if self.undo_route is False else self.undo_route
        if routes.switch(self.paths.app, port, ports, write_file):
            self.changed = True
        # Named twice: a connection the stopping instance resets is retried
        # once, on a new connection, which reaches a running instance.
        self.write_upstream(["127.0.0.1:%d max_fails=0" % port] * 2, self.paths.current)

    def route_port(self):
        if not self.state.get("route_port"):
            self.state["route_port"] = allocate_ports(self.paths.app, 1)[0]
        return self.state["route_port"]

    def forget_route(self):
        if os.path.exists(routes.app_file(self.paths.app)):
            if self.undo_route is False:
                self.undo_route = read_text(routes.app_file(self.paths.app))
            routes.remove(self.paths.app)
            self.changed = True

    def write_upstream(self, servers, release_dir):
        servers = ["    server %s;" % server for server in servers]
        if not servers:
            servers = ["    server 127.0.0.1:9 down;  # no web instance runs"]
        text = "\n".join(
            ["# Managed by Hop3: web instances of app '%s'." % self.paths.app,
             "upstream hop3-%s {" % self.paths.app, *servers, "    keepalive 16;", "}",
             "# The release a PHP app serves its files from: they switch to a new",
             "# release in the same reload as its PHP-FPM instances.",
             "map $host $%s {" % release_variable(self.paths.app),
             '    default "%s";' % release_dir, "}", ""]
        )  # fmt: skip
        os.makedirs(os.path.dirname(self.paths.upstream), exist_ok=True)
        before = read_bytes(self.paths.upstream)
        if write_file(self.paths.upstream, text):
            self.undo_files.setdefault(self.paths.upstream, before)
            if os.path.exists(self.paths.site):
                self.nginx_reloaded = True  # even if the reload fails half-way
                reload_nginx()
                self.changed = True

    # -- the whole reconciliation --------------------------------------------

    def run(self, release_id, scale, mode):
        """Start the new instances, switch nginx and `current` to them, then
        stop the old ones. Until the old ones are stopped, any failure puts
        everything back (undo): the release that ran before keeps serving."""
        release = find_release(self.state, release_id)
        spec = release["spec"]
        env_hash = digest(load_env(self.paths))
        wanted = {p: int(scale.get(p, proc.get("scale", 1))) for p, proc in spec["processes"].items()}
        if mode == "stopped":
            wanted = {p: 0 for p in wanted}
        instances = self.state.setdefault("instances", {})
        keep, new, old = {}, {}, {}
        before_current = self.state.get("current")
        try:
            self.timed("units", self.write_units, spec)
            for process in sorted(set(wanted) | set(instances), key=lambda p: p != "web"):
                running = instances.get(process, [])
                fits = [i for i in running if i["release"] == release_id and i["env"] == env_hash
                        and mode != "restarted" and self.is_active(process, i)]  # fmt: skip
                keep[process] = fits[: wanted.get(process, 0)]
                old[process] = [i for i in running if i not in keep[process]]
                missing = wanted.get(process, 0) - len(keep[process])
                new[process] = []
                if missing > 0:
                    new[process] = self.timed("start", self.start, process, release_id,
                                              env_hash, missing)  # fmt: skip
                    self.timed("health check", self.check_alive, process, new[process],
                               spec.get("healthcheck") or {})  # fmt: skip
            web = keep.get("web", []) + new.get("web", [])
            self.timed("route", self.route, [i["number"] for i in web], release_id, spec)
            if mode == "stopped":
                self.remove_cron()
            else:
                self.sync_cron(spec)
            self.switch_current(release_id)
        except BaseException:
            self.undo(new, before_current)
            raise
        for process, instances_old in old.items():
            self.timed("stop old", self.stop, process, instances_old)
        self.state["instances"] = {
            p: keep.get(p, []) + new.get(p, []) for p in wanted if keep.get(p) or new.get(p)
        }
        self.state["scale"] = {p: n for p, n in wanted.items()} if mode != "stopped" else (
            self.state.get("scale") or {})  # fmt: skip
        self.state["stopped"] = mode == "stopped"
        if mode == "stopped" and any(old.values()):
            # `hop stop` is rare and must read true everywhere: `systemctl
            # status` shows each instance disabled only after a reload.
            systemctl("daemon-reload", check=False)

    def undo(self, new, before_current):
        """Put the host back as it was before this run: stop and disable the
        instances it started (not left failed), restore the files it changed
        (nginx reloaded again if it had loaded them), the cron timers and
        `current`. Best effort: the first error is the one reported."""
        # Requests go back to the old instances before the new ones stop.
        if self.undo_route is not False:
            try:
                routes.restore(self.paths.app, self.undo_route)
            except routes.RoutesFailed:
                pass
        for process, started in new.items():
            units = [unit_name(self.paths.app, process, i["id"]) for i in started]
            if units:
                systemctl("disable", "--no-reload", "--now", *units, check=False)
                systemctl("reset-failed", *units, check=False)
            if process == "web":
                release_ports(self.paths.app, [i["number"] for i in started])
        for path, content in self.undo_files.items():
            if content is None:
                if os.path.exists(path):
                    os.unlink(path)
            else:
                write_file(path, content)
        if any(path.startswith(UNIT_DIR) for path in self.undo_files):
            systemctl("daemon-reload", check=False)
        if self.nginx_reloaded and os.path.exists(self.paths.site):
            try:
                reload_nginx()
            except StepFailed:
                pass  # nginx is down: it reads the restored file when it starts
        self.undo_cron(before_current)
        if before_current and self.state.get("current") != before_current:
            self.switch_current(before_current)

    def undo_cron(self, before_current):
        try:
            previous = find_release(self.state, before_current) if before_current else None
            if previous and not self.state.get("stopped"):
                self.sync_cron(previous["spec"])
            else:
                self.remove_cron()
        except (StepFailed, OSError):
            pass

    def is_active(self, process, instance):
        unit = unit_name(self.paths.app, process, instance["id"])
        return systemctl("is-active", unit, check=False).stdout.strip() in ("active", "activating")

    def switch_current(self, release_id):
        link = self.paths.current
        target = os.path.join("releases", release_id)
        if os.path.islink(link) and os.readlink(link) == target:
            return
        tmp = link + ".new"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(target, tmp)
        os.replace(tmp, link)
        for release in self.state["releases"]:
            if release["id"] == release_id:
                release["status"] = "active"
            elif release["status"] == "active":
                release["status"] = "inactive"
        self.state["current"] = release_id
        self.changed = True

    def prune(self, keep_count):
        in_use = {i["release"] for group in self.state["instances"].values() for i in group}
        in_use.add(self.state["current"])
        built = [r for r in self.state["releases"] if r["status"] != "failed"]
        for release in built[:-keep_count] if keep_count else []:
            if release["id"] not in in_use:
                shutil.rmtree(self.paths.release(release["id"]), ignore_errors=True)
                self.state["releases"].remove(release)
                self.changed = True


def previous_release(state, paths):
    """The newest release before the current one that is still on disk."""
    ids = [r["id"] for r in state["releases"]]
    if state["current"] not in ids:
        return None
    older = state["releases"][: ids.index(state["current"])]
    for release in reversed(older):
        if release["status"] != "failed" and os.path.isdir(paths.release(release["id"])):
            return release["id"]
    return None


def release_variable(app):
    """The nginx variable holding the directory of the release an app serves
    (role hop3_proxy reads it; app names have letters, digits and '-')."""
    return "hop3_release_" + app.replace("-", "_")


def php_settings(spec):
    """[php] of a release whose web process is Hop3's PHP-FPM, else None."""
    php = spec.get("php")
    return php if spec.get("runtime") == "php" and php and php.get("fpm") else None


def document_root(paths, release_id, php):
    return os.path.normpath(os.path.join(paths.release(release_id), php.get("root") or "."))


def http_get(port, path):
    url = "http://127.0.0.1:%d%s" % (port, path)
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read(65536)
    except urllib.error.HTTPError as err:
        return err.code, err.read(65536)


def probe(fetch, check):
    """None when the instance passes, else why not ("no answer" while it boots)."""
    try:
        status, body = fetch(check.get("path") or "/")
    except (OSError, ValueError, FastCGIError):
        return "no answer"
    expected = check.get("status")
    if check.get("path") is None and not expected:
        return None  # default check: the port answers HTTP
    if expected and status != int(expected):
        return "HTTP %d, expected %s" % (status, expected)
    if not expected and status >= 400:
        return "HTTP %d" % status
    contains = check.get("contains")
    if contains and contains.encode() not in body:
        return "the response does not contain %r" % contains
    return None


def forget_failed_release(params, paths, state, release_id):
    """After a failed swap (Swap.undo put the processes back): state.json as
    before, without the failed build when asked (remove_failed). A failed first
    deploy leaves no app at all. What to tell the user."""
    if not params.get("remove_failed") or state["current"] == release_id:
        save_state(paths, state)
        return "The app runs as it did before."
    failed = find_release(state, release_id)
    if failed:
        state["releases"].remove(failed)
    if not state["releases"] and not state["current"]:
        try:
            remove_app(paths, [params["upload"]] if params.get("upload") else [])
        except StepFailed as cleanup:
            return "Removing what the failed first deploy made failed too: " + cleanup.message
        return "Nothing of app '%s' was kept on the host: fix the problem and deploy again." % (
            paths.app)  # fmt: skip
    shutil.rmtree(paths.release(release_id), ignore_errors=True)
    save_state(paths, state)
    if state["current"]:
        return "Release %s keeps running." % state["current"]
    return ""


def run_swap(params, paths):
    """Reconcile the app's processes with ``params`` (the options of module
    hop3_app_processes). (True, result) or (False, failure) where failure
    holds msg, and step and output_tail when a step failed."""
    state = load_state(paths)
    release_id = params.get("release") or state["current"]
    if release_id == "previous":
        release_id = previous_release(state, paths)
    if not release_id or not find_release(state, release_id):
        known = ", ".join(r["id"] for r in state["releases"]) or "none"
        return False, {"msg": "App '%s' has no release %s (releases: %s)."
                       % (paths.app, release_id or "yet", known)}  # fmt: skip
    scale = dict(state.get("scale") or {})
    scale.update({k: int(v) for k, v in (params.get("scale") or {}).items()})
    before = copy.deepcopy(state)
    swap = Swap(paths, state)
    try:
        swap.run(release_id, scale, params.get("state") or "started")
        swap.prune(params.get("keep_releases", 5))
    except StepFailed as err:
        msg = "Deploy step '%s' failed: %s" % (err.step, err.message)
        msg += " " + forget_failed_release(params, paths, before, release_id)
        return False, {"msg": msg, "step": err.step, "output_tail": tail(err.output)}
    save_state(paths, state)
    ports = [i["number"] for i in state["instances"].get("web", [])]
    return True, {"changed": swap.changed, "release": state["current"], "ports": ports,
                  "timings": swap.timings, "scale": state["scale"],
                  "instances": state["instances"], "proxy": proxy_settings(state)}  # fmt: skip
