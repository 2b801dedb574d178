#!/usr/bin/python3
"""Make an app's running processes match what is asked, without downtime."""

DOCUMENTATION = r"""
module: hop3_app_processes
short_description: Run a Hop3 app's processes with zero-downtime swaps
description:
  - Starts the instances a release needs beside the running ones, health-checks
    the web instances, switches the nginx upstream, waits for nginx to drain,
    then stops the old instances. A failed health check stops the new
    instances and leaves the old ones serving.
  - Keeps instances that already run the wanted release with the current
    config; a second run with nothing to do reports changed=false.
options:
  app: {description: App name., type: str, required: true}
  release: {description: "Release to run: an id, C(previous), or by default the current one.", type: str}
  scale: {description: Process counts to change (others keep theirs)., type: dict}
  state:
    description: started (the default), stopped, or restarted (new instances even if unchanged).
    type: str
    choices: [started, stopped, restarted]
    default: started
  remove_failed: {description: Remove the release if it fails its health check., type: bool}
  keep_releases: {description: How many releases to keep on disk., type: int, default: 5}
  lock:
    description:
      - The app's lock (module_utils/hop3_app_lock.py), taken before any change
        with C(operation), or checked with the C(token) of an earlier task of
        the run; released at the end with C(release).
    type: dict
author: Hop3
"""

import os
import shutil
import time
import urllib.error
import urllib.request

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hop3_app_fastcgi import FastCGIError
from ansible.module_utils.hop3_app_fastcgi import get as fastcgi_get
from ansible.module_utils.hop3_app_lock import LOCK_OPTION, run_locked
from ansible.module_utils.hop3_app_recover import write_recover_template
from ansible.module_utils.hop3_app_host import (
    LAUNCHER,
    UNIT_DIR,
    AppPaths,
    StepFailed,
    allocate_ports,
    digest,
    find_release,
    journal_tail,
    load_env,
    load_state,
    proxy_settings,
    release_ports,
    reload_nginx,
    save_state,
    systemctl,
    tail,
    write_file,
)


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

    def __init__(self, module, paths, state):
        self.module = module
        self.paths = paths
        self.state = state
        self.changed = False
        self.units_changed = False

    # -- units ---------------------------------------------------------------

    def write_units(self, spec):
        self.units_changed |= write_recover_template(UNIT_DIR, write_file)
        for process in spec["processes"]:
            path = os.path.join(UNIT_DIR, unit_name(self.paths.app, process))
            self.units_changed |= write_file(path, unit_text(self.paths, process, spec))
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
        started = []
        if process == "web":
            numbers = allocate_ports(self.paths.app, count)
        else:
            first = self.state.get("next_instance", 1)
            numbers = list(range(first, first + count))
            self.state["next_instance"] = first + count
        for number in numbers:
            instance = {"id": "%s-%d" % (release_id, number), "release": release_id,
                        "env": env_hash, "number": number}  # fmt: skip
            unit = unit_name(self.paths.app, process, instance["id"])
            started.append(instance)
            systemctl("enable", "--now", unit)
        self.changed = True
        return started

    def stop(self, process, instances):
        """Stop instances without waiting: nginx no longer sends them requests,
        and systemd lets each finish its own in-flight work (TimeoutStopSec)."""
        for instance in instances:
            unit = unit_name(self.paths.app, process, instance["id"])
            systemctl("disable", "--now", "--no-block", unit, check=False)
        if process == "web":
            release_ports(self.paths.app, [i["number"] for i in instances])
        if instances:
            self.changed = True

    def check_alive(self, process, instances, healthcheck):
        if process == "web":
            for instance in instances:
                self.health_check(instance, healthcheck, self.fetcher(instance))
            return
        time.sleep(1)
        for instance in instances:
            unit = unit_name(self.paths.app, process, instance["id"])
            if systemctl("is-active", unit, check=False).stdout.strip() != "active":
                raise StepFailed("start %s" % process, "%s is not running." % unit,
                                 journal_tail(unit))  # fmt: skip

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
        url = "http://127.0.0.1:%d%s" % (instance["number"], check.get("path") or "/")
        deadline = time.monotonic() + int(check.get("timeout") or 30)
        failures, last = 0, "no answer"
        while time.monotonic() < deadline:
            state = systemctl("is-active", unit, check=False).stdout.strip()
            if state == "failed":
                break
            verdict = probe(fetch, check)
            if verdict is None:
                return
            last = verdict
            if verdict != "no answer":
                failures += 1
                if failures >= int(check.get("retries") or 3):
                    break
            time.sleep(0.1 if verdict == "no answer" else 1)
        raise StepFailed(
            "health check",
            "web instance on port %d did not pass the health check (%s): %s"
            % (instance["number"], url, last),
            journal_tail(unit),
        )

    # -- nginx ---------------------------------------------------------------

    def write_upstream(self, ports, release_id):
        servers = ["    server 127.0.0.1:%d max_fails=0;" % p for p in sorted(ports)]
        if not servers:
            servers = ["    server 127.0.0.1:9 down;  # no web instance runs"]
        text = "\n".join(
            ["# Managed by Hop3: web instances of app '%s'." % self.paths.app,
             "upstream hop3-%s {" % self.paths.app, *servers, "    keepalive 16;", "}",
             "# The release they serve: nginx serves a PHP app's files from there, so",
             "# files and scripts switch to a new release in the same reload.",
             "map $host $%s {" % release_variable(self.paths.app),
             '    default "%s";' % self.paths.release(release_id), "}", ""]
        )  # fmt: skip
        os.makedirs(os.path.dirname(self.paths.upstream), exist_ok=True)
        if write_file(self.paths.upstream, text) and os.path.exists(self.paths.site):
            reload_nginx()
            self.changed = True

    # -- the whole reconciliation --------------------------------------------

    def run(self, release_id, scale, mode):
        release = find_release(self.state, release_id)
        spec = release["spec"]
        env_hash = digest(load_env(self.paths))
        wanted = {p: int(scale.get(p, proc.get("scale", 1))) for p, proc in spec["processes"].items()}
        if mode == "stopped":
            wanted = {p: 0 for p in wanted}
        self.write_units(spec)
        instances = self.state.setdefault("instances", {})
        keep, new, old = {}, {}, {}
        try:
            for process in sorted(set(wanted) | set(instances), key=lambda p: p != "web"):
                running = instances.get(process, [])
                fits = [i for i in running if i["release"] == release_id and i["env"] == env_hash
                        and mode != "restarted" and self.is_active(process, i)]  # fmt: skip
                keep[process] = fits[: wanted.get(process, 0)]
                old[process] = [i for i in running if i not in keep[process]]
                missing = wanted.get(process, 0) - len(keep[process])
                new[process] = []
                if missing > 0:
                    new[process] = self.start(process, release_id, env_hash, missing)
                    self.check_alive(process, new[process], spec.get("healthcheck") or {})
        except StepFailed:
            for process, instances_started in new.items():
                self.stop(process, instances_started)
            raise
        web = keep.get("web", []) + new.get("web", [])
        self.write_upstream([i["number"] for i in web], release_id)
        for process, instances_old in old.items():
            self.stop(process, instances_old)
        self.state["instances"] = {
            p: keep.get(p, []) + new.get(p, []) for p in wanted if keep.get(p) or new.get(p)
        }
        self.state["scale"] = {p: n for p, n in wanted.items()} if mode != "stopped" else (
            self.state.get("scale") or {})  # fmt: skip
        self.state["stopped"] = mode == "stopped"
        if mode == "stopped":
            self.remove_cron()
        else:
            self.sync_cron(spec)
        self.switch_current(release_id)

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


def main():
    module = AnsibleModule(
        argument_spec={
            "app": {"type": "str", "required": True},
            "release": {"type": "str"},
            "scale": {"type": "dict"},
            "state": {"type": "str", "default": "started",
                      "choices": ["started", "stopped", "restarted"]},
            "remove_failed": {"type": "bool", "default": False},
            "keep_releases": {"type": "int", "default": 5},
            "lock": LOCK_OPTION,
        },
    )  # fmt: skip
    paths = AppPaths(module.params["app"])
    run_locked(module, paths.app, lambda lock: reconcile(module, paths, lock))


def reconcile(module, paths, lock):
    state = load_state(paths)
    release_id = module.params["release"] or state["current"]
    if release_id == "previous":
        release_id = previous_release(state, paths)
    if not release_id or not find_release(state, release_id):
        known = ", ".join(r["id"] for r in state["releases"]) or "none"
        lock.finish(ok=False)
        module.fail_json(msg="App '%s' has no release %s (releases: %s)."
                         % (paths.app, release_id or "yet", known))  # fmt: skip
    scale = dict(state.get("scale") or {})
    scale.update({k: int(v) for k, v in (module.params["scale"] or {}).items()})
    swap = Swap(module, paths, state)
    try:
        swap.run(release_id, scale, module.params["state"])
        swap.prune(module.params["keep_releases"])
    except StepFailed as err:
        if module.params["remove_failed"] and state["current"] != release_id:
            failed = find_release(state, release_id)
            state["releases"].remove(failed)
            shutil.rmtree(paths.release(release_id), ignore_errors=True)
        save_state(paths, state)
        lock.finish(ok=False)
        module.fail_json(msg="Deploy step '%s' failed: %s" % (err.step, err.message),
                         step=err.step, output_tail=tail(err.output))  # fmt: skip
    save_state(paths, state)
    lock.finish(ok=True)
    ports = [i["number"] for i in state["instances"].get("web", [])]
    module.exit_json(changed=swap.changed, release=state["current"], ports=ports,
                     scale=state["scale"], instances=state["instances"],
                     proxy=proxy_settings(state), lock=lock.report)  # fmt: skip


if __name__ == "__main__":
    main()
