#!/usr/bin/python3
"""Build a new release of a Hop3 app from an uploaded source archive."""

DOCUMENTATION = r"""
module: hop3_app_release
short_description: Build a release of a Hop3 app
description:
  - Creates the app's user and directories, unpacks the source archive into
    C(releases/<id>) as the app's user, builds it for its runtime (Python with
    uv, Node with npm, Go, static, generic), fills config defaults, and runs
    the app's release command. A failed step removes the half-built release.
  - Unchanged source and spec build nothing (changed=false).
  - A Python release with a requirements.txt links C(.venv) to the app's
    C(venvs/<key>), built once per key and reused (timing C(python venv (reused))),
    see module_utils/hop3_app_venv.py.
options:
  app: {description: App name (already validated)., type: str, required: true}
  spec: {description: The app spec (AppSpec.to_vars())., type: dict, required: true}
  source: {description: Path of the uploaded .tar.gz on the host., type: str, required: true}
  source_optional:
    description: When O(source) is missing and the running release is not built from it, change nothing and return need_source (the playbook uploads it, then calls again).
    type: bool
    default: false
  digest: {description: Digest of the source archive., type: str, required: true}
  source_inline:
    description: The source archive itself, base64-encoded, for a small source; written to O(source) when that is missing, which saves the upload's module calls.
    type: str
  rev: {description: Source revision shown in `hop releases`., type: str, default: ""}
  launcher: {description: Content of the hop3-launch program (installed if it differs)., type: str}
  addons:
    description:
      - The app's [[addons]] (hop3.appspec.resolve_addons). A build sets each
        addon's config variables from fields of its instance's JSON record on
        the host (overriding config of the same name), so their secrets never
        pass through Ansible. The record must list the app in its C(links).
    type: list
    elements: dict
    default: []
    suboptions:
      type: {description: Service., type: str, required: true, choices: [postgres, redis, mariadb]}
      instance: {description: Database or Redis instance name., type: str, required: true}
      file: {description: The instance's JSON record on the host., type: path, required: true}
      env:
        description: Config variable -> record field (C(url), C(key_prefix), C(port)...).
        type: dict
        required: true
  lock:
    description:
      - The app's lock (module_utils/hop3_app_lock.py), taken before any change
        with C(operation), or checked with the C(token) of an earlier task of
        the run; the result's C(lock) has the token and how long it waited.
    type: dict
  env_from:
    description:
      - A JSON config file on the host (a restored backup's) that replaces the
        app's config before it is built, so the release command already sees
        it. Empty: keep the app's config.
    type: path
  start:
    description:
      - Then run the release's processes, as module hop3_app_processes does
        (a zero-downtime swap with health checks), in this same call: a
        redeploy costs one module call instead of two. Keys C(keep_releases)
        and C(upload) as that module's options; a release built by this
        call is removed if it fails to start. The result's C(running) is
        that module's result.
    type: dict
  finish:
    description:
      - With C(start), when nothing follows this call on the host: after a
        successful swap, write the deploy record (C(record), the controller's
        two fingerprints) and append the audit entry (C(audit), the runner's
        hop3_audit), as the playbook's last tasks would
        (module_utils/hop3_app_finish.py). The result says C(recorded) and
        C(audited).
    type: dict
author: Hop3
"""

import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hop3_app_lock import (
    LOCK_OPTION,
    LockBusy,
    LockLost,
    ModuleLock,
    controller_gone,
)
from ansible.module_utils.hop3_app_finish import FINISH_OPTION, finish_run
from ansible.module_utils.hop3_app_swap import run_swap
from ansible.module_utils.hop3_app_host import (
    LAUNCHER,
    RELEASE_META,
    AppPaths,
    StepFailed,
    digest,
    ensure_user,
    escaping_links,
    find_release,
    grant_web_server,
    load_env,
    load_state,
    read_json,
    remove_app,
    run_as,
    run_in_release,
    save_env,
    save_state,
    tail,
    write_file,
)
from ansible.module_utils.hop3_app_venv import (
    build_command,
    build_dir,
    cacheable,
    complete,
    ensure_venvs_dir,
    keys_in_use,
    link,
    prune,
    python_version,
    read_requirements,
    remove,
    tool_version,
    usable,
    venv_key,
    writes_venv,
)

UV = "/opt/hop3/uv/bin/uv"
# Uploads of other deploys are removed by a build only after this long: a
# deploy waiting for the app's lock has already uploaded its source.
UPLOAD_GRACE_SECONDS = 3600
RUNTIME_PACKAGES = {
    "node": ["nodejs", "npm"],
    "go": ["golang-go"],
    "php": ["php8.2-fpm", "php8.2-cli"],
}
PHP_FPM_CONFIG = ".hop3-php-fpm.conf"  # in the release; its web command reads it
PHP_SYSTEM_FPM = "php8.2-fpm.service"  # Debian's own pool (as www-data): never used
PHP_INI_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.]{0,99}$")
PHP_INI_VALUE_BAD_RE = re.compile(r'["$\\\x00-\x1f\x7f]')
# The `hop` commands of each addon type.
ADDON_COMMANDS = {"postgres": "pg", "redis": "redis", "mariadb": "mariadb"}


class ControllerGone(StepFailed):
    """The run's controller went away during the build (module_utils/hop3_app_lock.py)."""


def build_identity(spec):
    """What makes two builds the same: everything but proxy-only settings."""
    return digest({k: v for k, v in spec.items() if k not in ("domains", "proxy", "waf")})


def ensure_packages(packages):
    missing = [p for p in packages if not _installed(p)]
    if not missing:
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    proc = subprocess.run(install, capture_output=True, text=True, env=env)
    # Stale package lists, or a mirror caught mid-sync: refresh and retry,
    # repairing what a failed attempt left half-installed (-f).
    for pause in (0, 15):
        if proc.returncode == 0:
            return
        time.sleep(pause)
        subprocess.run(["apt-get", "update"], capture_output=True, env=env)
        proc = subprocess.run(install[:3] + ["-f"] + install[3:], capture_output=True,
                              text=True, env=env)  # fmt: skip
    if proc.returncode != 0:
        raise StepFailed(
            "packages", "Installing %s failed." % " ".join(missing), proc.stdout + proc.stderr
        )


def _installed(package):
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
    )
    return proc.stdout.endswith("installed") and "not-installed" not in proc.stdout


def php_packages(spec):
    php = spec.get("php") or {}
    return RUNTIME_PACKAGES["php"] + ["php8.2-%s" % ext for ext in php.get("extensions", [])]


def stop_system_php_fpm():
    """Installing php8.2-fpm enables and starts Debian's pool as www-data: the
    apps run their own PHP-FPM as their own users, so it stays off."""
    enabled = subprocess.run(["systemctl", "is-enabled", PHP_SYSTEM_FPM],
                             capture_output=True, text=True).stdout.strip()  # fmt: skip
    active = subprocess.run(["systemctl", "is-active", PHP_SYSTEM_FPM],
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    if enabled == "enabled" or active in ("active", "activating", "reloading"):
        subprocess.run(["systemctl", "disable", "--now", PHP_SYSTEM_FPM], capture_output=True)


def php_fpm_config(paths, spec):
    """The pool of the app's web process: PHP-FPM in the foreground as the app's
    user, on 127.0.0.1:$PORT (expanded by PHP-FPM from the environment), logging
    to stderr (the journal), no pid or log file anywhere."""
    php = spec.get("php") or {}
    lines = [
        "; Managed by Hop3: PHP-FPM of the web process of app '%s'." % paths.app,
        "[global]",
        # --force-stderr sends the log to stderr; the file is still opened.
        "error_log = /dev/null",
        "daemonize = no",
        "",
        "[web]",
        "listen = 127.0.0.1:${PORT}",
        "listen.allowed_clients = 127.0.0.1",
        "pm = dynamic",
        "pm.max_children = 8",
        "pm.start_servers = 2",
        "pm.min_spare_servers = 1",
        "pm.max_spare_servers = 3",
        "pm.max_requests = 1000",
        # The app's config reaches PHP as getenv() (and $_SERVER).
        "clear_env = no",
        "catch_workers_output = yes",
        "decorate_workers_output = no",
        "php_admin_flag[log_errors] = on",
        'php_value[session.save_path] = "%s"' % os.path.join(paths.cache, "php-sessions"),
    ]
    for name, value in sorted((php.get("ini") or {}).items()):
        # Checked by the CLI already (hop3/appspec/validate.py); again here,
        # where the value becomes a line of configuration.
        if not PHP_INI_NAME_RE.fullmatch(name) or PHP_INI_VALUE_BAD_RE.search(str(value)):
            raise StepFailed("php", "Refusing the PHP ini setting %s = %r." % (name, value))
        lines.append('php_value[%s] = "%s"' % (name, value))
    return "\n".join(lines) + "\n"


def ensure_uv():
    if os.path.exists(UV):
        return
    for args in (["python3", "-m", "venv", "/opt/hop3/uv"],
                 ["/opt/hop3/uv/bin/pip", "install", "--quiet", "uv>=0.4,<1"]):  # fmt: skip
        proc = subprocess.run(args, capture_output=True, text=True)
        if proc.returncode != 0:
            shutil.rmtree("/opt/hop3/uv", ignore_errors=True)
            raise StepFailed("packages", "Installing uv failed.", proc.stdout + proc.stderr)


def runtime_steps(spec, paths, release_dir):
    """(name, shell command) pairs that build the release for its runtime."""
    cache = paths.cache
    runtime = spec["runtime"]
    if runtime == "python":
        uv = "UV_CACHE_DIR=%s/uv UV_PYTHON_DOWNLOADS=never %s" % (cache, UV)
        if os.path.exists(os.path.join(release_dir, "requirements.txt")):
            return [("python venv", CachedVenv(paths, os.path.basename(release_dir), spec, uv))]
        # pyproject-based: `uv pip install .` installs the app itself, so its
        # venv is the release's own.
        return [("python venv", release_venv_command(uv, "."))]
    if runtime == "node":
        npm = "npm_config_cache=%s/npm npm" % cache
        lock = spec["build"].get("node_lockfile")
        steps = [("npm install", "%s %s --no-audit --no-fund" % (npm, "ci" if lock else "install"))]
        if spec["build"].get("node_build_script"):
            steps.append(("npm run build", "%s run build" % npm))
        return steps
    if runtime == "go":
        go = "GOCACHE=%s/go-build GOMODCACHE=%s/go-mod GOPATH=%s/go GOFLAGS=-buildvcs=false" % (
            cache, cache, cache)  # fmt: skip
        return [("go build", "%s go build -o bin/app ." % go)]
    return []


def release_venv_command(uv, install):
    return "%s venv --quiet --python /usr/bin/python3 .venv && %s pip install --python " \
        ".venv/bin/python %s" % (uv, uv, install)  # fmt: skip


class CachedVenv:
    """The "python venv" step of a release with a requirements.txt: link the
    release to the app's venv for this requirements.txt, interpreter, uv and
    build packages (module_utils/hop3_app_venv.py), building it only when it
    is not there yet. ``key`` is the venv's key once the step ran (None: the
    release has its own venv, as its requirements.txt reads local files or a
    build command may install into the venv)."""

    def __init__(self, paths, release_id, spec, uv):
        self.paths, self.release_id, self.spec, self.uv = paths, release_id, spec, uv
        self.command = release_venv_command(uv, "-r requirements.txt")
        self.key = None

    def __call__(self):
        """(timing label, exit code, output) of the step."""
        release_dir = self.paths.release(self.release_id)
        requirements = read_requirements(os.path.join(release_dir, "requirements.txt"))
        build = self.spec["build"]
        commands = [*build.get("before_build", []), *build.get("build", []),
                    *build.get("after_build", []), self.spec.get("release") or ""]  # fmt: skip
        if requirements is None or not cacheable(requirements) or writes_venv(commands):
            return ("python venv", *run_in_release(self.paths, self.release_id, self.command))
        inputs = {
            "python": python_version(),
            "uv": tool_version([UV, "--version"]),
            "packages": list(self.spec["build"].get("packages", [])),
        }
        key = venv_key(requirements, config=load_env(self.paths), **inputs)
        ensure_venvs_dir(self.paths)
        venv = usable(self.paths, key)
        label = "python venv (reused)"
        if venv is None:
            label = "python venv"
            built = build_dir(self.paths, key)
            self.command = build_command(self.uv, built)
            try:
                code, output = run_in_release(self.paths, self.release_id, self.command)
                if code != 0:
                    return label, code, output
                venv = complete(self.paths, key, built, inputs)
            finally:
                if os.path.lexists(built):
                    remove(built)
        link(self.paths, release_dir, venv)
        self.key = key
        return label, 0, ""


def unpack(paths, source, release_dir):
    os.mkdir(release_dir, 0o750)
    shutil.chown(release_dir, paths.app, paths.app)
    with open(source, "rb") as archive:
        code, output = run_as(
            paths.app, ["tar", "-xzf", "-", "--no-same-owner", "-C", release_dir],
            cwd=release_dir, env={"PATH": "/usr/bin:/bin"}, stdin=archive,
        )  # fmt: skip
    if code != 0:
        raise StepFailed("unpack", "Unpacking the source failed.", output)
    # Checked here too, not only by `hop deploy`: a git push builds its archive
    # on the host.
    links = escaping_links(release_dir)
    if links:
        raise StepFailed("unpack", links_message(links))
    grant_web_server(release_dir, "rx")


def links_message(links):
    return (
        "The source holds %s pointing outside the app's directory: %s. Hop3 refuses "
        "them (the app, or nginx serving its static files, would read files that are not "
        "the app's). Replace each with the file it points to, or with a relative link "
        "to a file inside the app." % ("a symlink" if len(links) == 1 else "symlinks",
                                        ", ".join(links[:10]))
    )  # fmt: skip


def ensure_dir_as(user, path):
    if not os.path.isdir(path):
        os.mkdir(path, 0o700)
        shutil.chown(path, user, user)


def drop_other_uploads(app, keep):
    folder = os.path.dirname(keep)
    old = time.time() - UPLOAD_GRACE_SECONDS
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if re.fullmatch(re.escape(app) + r"-[0-9a-f]+\.tar\.gz", name) and path != keep:
            with contextlib.suppress(FileNotFoundError):
                if os.stat(path).st_mtime < old:
                    os.unlink(path)


def drop_unlisted_releases(paths, state):
    """Remove release dirs state.json does not list: what a run killed in the
    middle of a build left (a failed build removes its own)."""
    listed = {r["id"] for r in state["releases"]}
    if not os.path.isdir(paths.releases):
        return
    for name in os.listdir(paths.releases):
        if re.fullmatch(r"v\d+", name) and name not in listed:
            shutil.rmtree(paths.release(name), ignore_errors=True)


def write_release_meta(spec, release_dir):
    commands = {name: proc["command"] for name, proc in spec["processes"].items()}
    commands.update({job["name"]: job["command"] for job in spec.get("cron", [])})
    meta = {"commands": commands, "release": spec.get("release")}
    write_file(os.path.join(release_dir, RELEASE_META), json.dumps(meta, indent=2))


def apply_env_defaults(paths, state, spec, addons, env_from=None):
    """Defaults from the spec fill keys the user has not set; generated secrets
    are made once. A default that changed replaces a value still equal to the
    old default. Addon values always win. ``env_from`` (a restore) replaces the
    config first."""
    env = read_json(env_from, {}) if env_from else load_env(paths)
    previous = state.get("env_defaults", {})
    for key, value in spec.get("env", {}).items():
        if key not in env or (key in previous and env[key] == previous[key]):
            env[key] = value
    for key, rule in spec.get("env_generate", {}).items():
        if key not in env:
            env[key] = generate_secret(rule)
    state["env_defaults"] = dict(spec.get("env", {}))
    env.update(addon_env(paths.app, addons))
    save_env(paths, env)


def addon_env(app, addons):
    """Config variables from the addons' records, e.g. DATABASE_URL."""
    env = {}
    for addon in addons:
        kind, instance = addon["type"], addon["instance"]
        record = read_json(addon["file"], None)
        if record is None:
            raise StepFailed("addons", "The %s instance %s has no record." % (kind, instance))
        # Instance names come from app names, so another app may own this one
        # (app "a" with addon "b" and app "a-b"): use it only when linked.
        if app not in record.get("links", []):
            raise StepFailed(
                "addons",
                "The %s instance %s exists but is not linked to %s. To share it, run "
                "`hop %s:link %s %s`; else name the addon in hop3.toml."
                % (kind, instance, app, ADDON_COMMANDS[kind], instance, app),
            )
        env.update({key: str(record[field]) for key, field in addon["env"].items()})
    return env


def generate_secret(rule):
    length = int(rule.get("length", 32))
    kind = rule.get("generate", "hex")
    if kind == "hex":
        return secrets.token_hex((length + 1) // 2)[:length]
    if kind == "base64":
        return secrets.token_urlsafe(length)[:length]
    return secrets.token_urlsafe(length * 2).replace("-", "").replace("_", "")[:length]


def build(module, paths, state, spec, lock):
    release_id = "v%d" % state["next_release"]
    release_dir = paths.release(release_id)
    if not os.path.exists(module.params["source"]):
        raise StepFailed("unpack", "The uploaded source %s is gone from the host; deploy "
                         "again." % module.params["source"])  # fmt: skip
    timings = {}
    try:
        packages = list(spec["build"].get("packages", []))
        if spec["runtime"] == "php":
            packages += php_packages(spec)
        else:
            packages += RUNTIME_PACKAGES.get(spec["runtime"], [])
        ensure_packages(packages)
        if spec["runtime"] == "python":
            ensure_uv()
        if spec["runtime"] == "php":
            stop_system_php_fpm()
        unpack(paths, module.params["source"], release_dir)
        write_release_meta(spec, release_dir)
        if spec["runtime"] == "php":
            write_file(os.path.join(release_dir, PHP_FPM_CONFIG), php_fpm_config(paths, spec))
            ensure_dir_as(paths.app, os.path.join(paths.cache, "php-sessions"))
        apply_env_defaults(paths, state, spec, module.params["addons"], module.params["env_from"])
        steps = [("before-build", c) for c in spec["build"].get("before_build", [])]
        steps += runtime_steps(spec, paths, release_dir)
        steps += [("build", c) for c in spec["build"].get("build", [])]
        steps += [("after-build", c) for c in spec["build"].get("after_build", [])]
        if spec.get("release"):
            steps.append(("release command", spec["release"]))
        for name, command in steps:
            lock.heartbeat()  # a long build keeps its lock; one taken over stops here
            if controller_gone():
                raise ControllerGone(name, "The run that asked for this build is gone "
                                     "(interrupted, or its connection lost).")  # fmt: skip
            started = time.monotonic()
            if callable(command):
                label, code, output = command()
            else:
                label, (code, output) = name, run_in_release(paths, release_id, command)
            timings[label] = round(time.monotonic() - started, 2)
            if code != 0:
                shown = getattr(command, "command", command)
                raise StepFailed(name, "`%s` exited %d." % (shown, code), output)
    except ControllerGone:
        # Left for the recovery of the interrupted run, which removes it and
        # says so (hop3_app_orphans); else the next build does.
        raise
    except BaseException:
        shutil.rmtree(release_dir, ignore_errors=True)
        raise
    drop_other_uploads(paths.app, module.params["source"])
    state["next_release"] += 1
    state["releases"].append({
        "id": release_id,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rev": module.params["rev"],
        "digest": module.params["digest"],
        "build": build_identity(spec),
        "status": "built",
        "spec": spec,
        **venv_record(steps),
    })  # fmt: skip
    save_state(paths, state)
    # The venvs no listed release links to any longer (the processes module
    # prunes old releases after the switch: their venvs go at the next build).
    with contextlib.suppress(OSError):
        prune(paths, keys_in_use(state))
    return release_id, timings


def venv_record(steps):
    """The release's venv key for its state entry, when it links to a shared venv."""
    keys = [c.key for _, c in steps if isinstance(c, CachedVenv) and c.key]
    return {"venv": keys[0]} if keys else {}


def main():
    module = AnsibleModule(
        argument_spec={
            "app": {"type": "str", "required": True},
            "spec": {"type": "dict", "required": True},
            "source": {"type": "str", "required": True},
            "source_optional": {"type": "bool", "default": False},
            "source_inline": {"type": "str", "no_log": True},
            "digest": {"type": "str", "required": True},
            "rev": {"type": "str", "default": ""},
            "launcher": {"type": "str"},
            "env_from": {"type": "path"},
            "lock": LOCK_OPTION,
            "start": {"type": "dict"},
            "finish": FINISH_OPTION,
            "addons": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "type": {"type": "str", "required": True, "choices": ["postgres", "redis", "mariadb"]},
                    "instance": {"type": "str", "required": True},
                    "file": {"type": "path", "required": True},
                    "env": {"type": "dict", "required": True},
                },
            },
        },
    )
    paths = AppPaths(module.params["app"])
    spec = module.params["spec"]
    if module.params["source_inline"] and not os.path.exists(module.params["source"]):
        write_inline_source(module.params["source"], module.params["source_inline"])
    if module.params["source_optional"] and not os.path.exists(module.params["source"]):
        if current_release(paths, load_state(paths), spec, module.params["digest"]) is None:
            # A new source: the playbook uploads it, then calls again.
            module.exit_json(changed=False, need_source=True)
    lock = ModuleLock(paths.app, module.params["lock"], avoid=module.no_log_values)
    try:
        lock.take()
    except (LockBusy, LockLost) as err:
        module.fail_json(msg=str(err), lock_busy=True)
    # No state.json yet: the app's first deploy. If it fails, nothing is kept.
    first_deploy = not os.path.exists(paths.state)
    try:
        release_id, built, timings, changed = release(module, paths, spec, lock)
    except LockLost as err:
        lock.finish(ok=False)
        module.fail_json(msg=str(err))
    except StepFailed as err:
        msg = "Deploy step '%s' failed: %s" % (err.step, err.message)
        if first_deploy:
            msg += " " + forget_first_deploy(paths, module.params["source"])
        lock.finish(ok=False)
        module.fail_json(msg=msg, step=err.step, output_tail=tail(err.output))
    except BaseException:
        lock.finish(ok=False)
        raise
    result = {"changed": changed, "release": release_id, "built": built, "timings": timings}
    if module.params["start"] is not None:
        result["running"] = start(module, paths, lock, release_id, built)
        result["changed"] |= result["running"]["changed"]
        result.update(finish_run(paths.root, module.params["finish"]))
    lock.finish(ok=True)
    module.exit_json(lock=lock.report, **result)


def start(module, paths, lock, release_id, built):
    """Run the release's processes (module_utils/hop3_app_swap.py); a failure
    fails the module, with the release removed when this call built it."""
    if controller_gone():
        # Interrupted during the build: the old release keeps serving, and the
        # recovery (or the next run) removes the one built (hop3_app_orphans).
        lock.finish(ok=False)
        module.fail_json(msg="The run that asked for this deploy is gone (interrupted, or its "
                             "connection lost) before the switch: release %s was built, not "
                             "started." % release_id, step="start")  # fmt: skip
    options = module.params["start"]
    params = {"release": release_id, "state": "started", "remove_failed": built,
              "keep_releases": int(options.get("keep_releases", 5)),
              "upload": options.get("upload") or module.params["source"]}  # fmt: skip
    try:
        ok, running = run_swap(params, paths)
    except BaseException:
        lock.finish(ok=False)
        raise
    if not ok:
        lock.finish(ok=False)
        module.fail_json(**running)
    return running


def write_inline_source(path, encoded):
    """Write a source archive sent inside the module's arguments, as the upload would."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    write_file(path, base64.b64decode(encoded), mode=0o600, owner="root")


def forget_first_deploy(paths, upload):
    """A failed first deploy leaves no app behind (docs/apps.md): its user,
    directory, units and ports go; what to tell the user."""
    try:
        remove_app(paths, [upload])
    except StepFailed as err:
        return "Removing what the failed first deploy made failed too: %s" % err.message
    return "Nothing of app '%s' was kept on the host: fix the problem and deploy again." % (
        paths.app)  # fmt: skip


def current_release(paths, state, spec, digest):
    """The running release when it was built from this source and build spec."""
    current = find_release(state, state["current"]) if state["current"] else None
    if (
        current
        and current["digest"] == digest
        and current["build"] == build_identity(spec)
        and os.path.isdir(paths.release(current["id"]))
    ):
        return current
    return None


def release(module, paths, spec, lock):
    """(release id, built?, timings, changed?) of the release to run."""
    user_changed = ensure_user(paths)
    if module.params["launcher"]:
        user_changed |= write_file(LAUNCHER, module.params["launcher"], mode=0o755)
    state = load_state(paths)
    drop_unlisted_releases(paths, state)
    current = current_release(paths, state, spec, module.params["digest"])
    if current:
        return current["id"], False, {}, user_changed
    release_id, timings = build(module, paths, state, spec, lock)
    return release_id, True, timings, True


if __name__ == "__main__":
    main()
