"""``load_app``: read an app directory into a validated ``AppSpec``.

Reads any subset of ``hop3.toml``, ``Procfile`` and ``app.json``; hop3.toml
wins over app.json when both set something. Every problem found in any file is
collected and reported at once in one ``AppSpecError``.
"""

from __future__ import annotations

from pathlib import Path

from hop3.appspec.appjson import parse_app_json
from hop3.appspec.model import (
    AppSpec,
    AppSpecError,
    HealthCheck,
    Layer,
    Problem,
    Problems,
    Process,
    default_backup,
    default_build,
    default_limits,
    default_php,
    default_proxy,
    default_tls,
    default_waf,
)
from hop3.appspec.procfile import ProcfileData, parse_procfile
from hop3.appspec.runtime import CANNOT_TELL, detect_runtime, read_app_file, read_package_json
from hop3.appspec.toml_spec import parse_hop3_toml
from hop3.appspec.validate import app_name_error, show
from hop3.errors import HopError

DEFAULT_GO_WEB = "bin/app"  # the builder builds Go apps to bin/app
DEFAULT_NODE_WEB = "npm start"
# PHP-FPM in the foreground as the app's user, with the pool config the build
# writes into the release (roles/hop3_app/library/hop3_app_release.py).
DEFAULT_PHP_WEB = (
    "exec /usr/sbin/php-fpm8.2 --nodaemonize --force-stderr --fpm-config .hop3-php-fpm.conf"
)

NOTHING_TO_RUN = (
    "nothing to run: add a Procfile with a process (web: <command>), [run] start in "
    "hop3.toml, a static dir ([build] static-dir or 'static: <dir>') or build commands"
)


def load_app(path: Path | str, name: str | None = None) -> AppSpec:
    """Read and validate the app in ``path``; raise ``AppSpecError`` listing every problem."""
    root = Path(path)
    if not root.is_dir():
        raise HopError(
            f"{path} is not a directory.",
            hint="Point to the directory that holds the app's Procfile, hop3.toml or app.json.",
        )
    problems = Problems()
    sources: list[str] = []

    toml_text = read_app_file(root, "hop3.toml", problems)
    toml_layer = parse_hop3_toml(toml_text, problems) if toml_text is not None else None
    procfile_text = read_app_file(root, "Procfile", problems)
    procfile = parse_procfile(procfile_text, problems) if procfile_text else ProcfileData()
    json_text = read_app_file(root, "app.json", problems)
    json_layer = parse_app_json(json_text, problems) if json_text is not None else None
    for file, text in (
        ("hop3.toml", toml_text),
        ("Procfile", procfile_text),
        ("app.json", json_text),
    ):
        if text is not None:
            sources.append(file)

    toml = toml_layer or Layer(file="hop3.toml")
    appjson = json_layer or Layer(file="app.json")

    spec = AppSpec(
        name=_app_name(root, name, toml, problems),
        root=root,
        runtime="generic",
        version=toml.version,
        title=toml.title or appjson.title,
        catalog=toml.catalog,
        sources=sources,
    )
    commands = _processes(procfile, toml, problems)
    spec.release = _release(procfile, toml, problems)
    spec.cron = procfile.cron
    static_dir, static_origin = _static_dir(procfile, toml, problems)
    spec.static_paths = dict(toml.static_paths or {})

    build = default_build()
    build["packages"] = list(toml.packages or [])
    build["before_build"] = list(toml.before_build or [])
    build["build"] = list(toml.build or [])
    build["after_build"] = list(toml.after_build or []) + list(appjson.after_build or [])
    spec.build = build

    spec.env, spec.env_generate = _env(appjson, toml)
    spec.healthcheck = HealthCheck(**{**appjson.healthcheck, **toml.healthcheck})
    spec.domains = list(toml.domains or [])
    spec.addons = list(toml.addons if toml.addons is not None else appjson.addons or [])
    spec.backup = toml.backup or default_backup()
    spec.limits = {**default_limits(), **toml.limits}
    spec.proxy = {**default_proxy(), **toml.proxy}
    spec.waf = {**default_waf(), **toml.waf}
    spec.tls = {**default_tls(), **toml.tls}
    if spec.tls["mode"] == "acme":
        for domain in spec.domains:
            if domain.startswith("*."):
                problems.add(
                    "hop3.toml",
                    "[tls] mode",
                    f"'acme' cannot certify the wildcard domain {show(domain)}: Let's Encrypt "
                    "and other ACME servers check each name over HTTP (HTTP-01), which a "
                    "wildcard cannot answer; list the names instead or use 'self-signed'",
                )

    has_build = any(build[key] for key in ("before_build", "build", "after_build"))
    runtime, auto_static = detect_runtime(
        root,
        override=toml.runtime,
        static_dir=static_dir,
        has_web="web" in commands,
        has_work=bool(commands or has_build or spec.release or spec.cron),
    )
    if auto_static and not static_dir:
        static_dir, static_origin = auto_static, ("", "")
    complete = not problems.incomplete

    if runtime is None:
        if complete:
            problems.add("", "", CANNOT_TELL)
    else:
        spec.runtime = runtime
    if runtime == "node":
        node = read_package_json(root, problems)
        build["node_build_script"] = node.build_script
        build["node_lockfile"] = node.lockfile
        if "web" not in commands and not static_dir and node.start_script:
            commands = {"web": DEFAULT_NODE_WEB, **commands}
    elif runtime == "go" and "web" not in commands and not static_dir:
        commands = {"web": DEFAULT_GO_WEB, **commands}
    elif runtime == "php":
        spec.php = {**default_php(), **toml.php, "fpm": "web" not in commands}
        if spec.php["fpm"] and not static_dir:
            commands = {"web": DEFAULT_PHP_WEB, **commands}
    elif runtime == "static" and not static_dir and complete:
        complete = False  # that problem says it all
        problems.add(
            "hop3.toml",
            "[build] runtime",
            "'static' needs a static directory: set [build] static-dir, add "
            "'static: <dir>' to the Procfile, or add public/index.html",
        )
    spec.static_dir = static_dir
    if toml.php and runtime and runtime != "php":
        problems.add(
            "hop3.toml",
            "[php]",
            f"is for PHP apps, but this app's runtime is {runtime!r}: remove [php], or set "
            '[build] runtime = "php"',
        )

    if static_dir and "web" in commands:
        file, where = static_origin
        problems.add(
            file,
            where,
            f"a static site ({show(static_dir)}) and a web process both want to serve /: keep "
            "one, or serve the files under a URL prefix with [proxy] static",
        )

    if runtime and complete and not commands and not static_dir:
        if runtime in ("python", "node") and not spec.cron:
            extra = ', or a "start" script to package.json' if runtime == "node" else ""
            problems.add(
                "",
                "",
                "no web process: add `web: <command>` to the Procfile or [run] start to "
                f"hop3.toml{extra}",
            )
        elif not (has_build or spec.release or spec.cron):
            problems.add("", "", NOTHING_TO_RUN)

    spec.processes = {
        process: Process(name=process, command=command) for process, command in commands.items()
    }
    _apply_scale(spec, appjson, toml, problems, check=complete)

    if problems:
        raise AppSpecError(path, problems.items)
    return spec


def _app_name(root: Path, name: str | None, toml: Layer, problems: Problems) -> str:
    if name is not None:
        error = app_name_error(name)
        if error:
            problems.items.insert(0, Problem("", "app name", error))
        return name
    if toml.name is not None:
        error = app_name_error(toml.name)
        if error:
            problems.items.insert(0, Problem("hop3.toml", toml.name_where, error))
        return toml.name
    base = root.resolve().name.lower()
    error = app_name_error(base)
    if error:
        message = (
            f"the directory name is used as the app name, but {error} "
            "Pass --app NAME or set [metadata] id in hop3.toml."
        )
        problems.items.insert(0, Problem("", "app name", message))
    return base


def _conflict(problems: Problems, kind: str, line: int, toml_key: str) -> None:
    problems.add(
        "Procfile",
        f"line {line}",
        f"{kind!r} is defined in both Procfile and hop3.toml {toml_key}; keep one",
    )


def _processes(procfile: ProcfileData, toml: Layer, problems: Problems) -> dict[str, str]:
    """Process commands, web first, then Procfile order, then [run.workers]."""
    commands: dict[str, str] = {}
    if toml.start is not None:
        if "web" in procfile.processes:
            _conflict(problems, "web", procfile.lines["web"], "[run] start")
        commands["web"] = toml.start
    elif "web" in procfile.processes:
        commands["web"] = procfile.processes["web"]
    for process, command in procfile.processes.items():
        commands.setdefault(process, command)
    for process, command in toml.workers.items():
        if process in procfile.processes:
            _conflict(problems, process, procfile.lines[process], f"[run.workers] {process}")
            continue
        commands[process] = command
    return commands


def _release(procfile: ProcfileData, toml: Layer, problems: Problems) -> str | None:
    if toml.release is not None and procfile.release is not None:
        _conflict(problems, "release", procfile.lines["release"], "[run] release")
    return toml.release if toml.release is not None else procfile.release


def _static_dir(
    procfile: ProcfileData, toml: Layer, problems: Problems
) -> tuple[str | None, tuple[str, str]]:
    """The whole-site static dir and where it was set (file, where)."""
    if toml.static_dir is not None:
        if procfile.static_dir is not None:
            _conflict(problems, "static", procfile.lines["static"], "[build] static-dir")
        return toml.static_dir, ("hop3.toml", "[build] static-dir")
    if procfile.static_dir is not None:
        return procfile.static_dir, ("Procfile", f"line {procfile.lines['static']}")
    return None, ("", "")


def _env(appjson: Layer, toml: Layer) -> tuple[dict[str, str], dict[str, dict]]:
    env = dict(appjson.env)
    generate = dict(appjson.env_generate)
    for key, value in toml.env.items():
        env[key] = value
        generate.pop(key, None)
    for key, value in toml.env_generate.items():
        generate[key] = value
        env.pop(key, None)
    return env, generate


def _apply_scale(
    spec: AppSpec, appjson: Layer, toml: Layer, problems: Problems, *, check: bool
) -> None:
    for layer in (appjson, toml):  # hop3.toml last: it wins
        for process, (scale, where) in layer.scale.items():
            if process in spec.processes:
                spec.processes[process].scale = scale
            elif check:
                known = ", ".join(spec.processes) or "none"
                problems.add(
                    layer.file, where, f"no process named {process!r} (processes: {known})"
                )
