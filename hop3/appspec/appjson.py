"""Read a Heroku/Dokku ``app.json`` into a ``Layer``.

Used: ``name`` (a human title), ``env``, ``formation`` (scale), ``healthchecks``
(Dokku startup checks for ``web``), ``scripts.dokku.predeploy`` (an extra
after-build command) and ``addons`` (Heroku Postgres / Redis plans). Everything
else Heroku defines (logo, repository, keywords, buildpacks, stack,
scripts.postdeploy...) is ignored without error.
"""

from __future__ import annotations

import json
from typing import Any

from hop3.appspec.model import SCALE_MAX, Layer, Problems
from hop3.appspec.validate import (
    command_error,
    env_key_error,
    env_value_error,
    health_path_error,
    key_label,
    process_name_error,
)
from hop3.appspec.validate import show as _show

FILE = "app.json"

#: Heroku add-on services (the part of the plan before ':') Hop3 can provide.
ADDON_PLANS = {
    "heroku-postgresql": "postgres",
    "heroku-redis": "redis",
    "rediscloud": "redis",
}

#: generator "secret" becomes this generated value.
SECRET_GENERATOR = {"generate": "hex", "length": 64}


def show(value: Any) -> str:
    """Like validate.show, in JSON words."""
    return "an object" if isinstance(value, dict) else _show(value)


def _int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def parse_app_json(text: str, problems: Problems) -> Layer | None:
    """Parse and validate app.json text; None if it is not a JSON object."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        problems.add(
            FILE,
            f"line {exc.lineno}",
            f"invalid JSON: {exc.msg} (column {exc.colno})",
            incomplete=True,
        )
        return None
    if not isinstance(data, dict):
        problems.add(FILE, "", f"must be a JSON object, got {show(data)}", incomplete=True)
        return None

    layer = Layer(file=FILE)

    def add(where: str, message: str) -> None:
        problems.add(FILE, where, message)

    def obj(key: str, value: Any) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            add(key, f"must be an object, got {show(value)}")
            return None
        return value

    name = data.get("name")
    if name is not None:
        if isinstance(name, str):
            layer.title = name
        else:
            add("name", f"must be a string, got {show(name)}")

    env = obj("env", data["env"]) if "env" in data else None
    for key, entry in (env or {}).items():
        _env_entry(layer, add, key, entry)

    formation = obj("formation", data["formation"]) if "formation" in data else None
    for process, entry in (formation or {}).items():
        where = f"formation.{key_label(process)}"
        error = process_name_error(process)
        if error:
            add(where, error)
            continue
        if not isinstance(entry, dict):
            add(where, f'must be an object like {{"quantity": 1}}, got {show(entry)}')
            continue
        if "quantity" not in entry:
            continue
        quantity = entry["quantity"]
        if not _int_in(quantity, 0, SCALE_MAX):
            add(
                f"{where}.quantity",
                f"must be an integer between 0 and {SCALE_MAX}, got {show(quantity)}",
            )
            continue
        layer.scale[process] = (quantity, f"{where}.quantity")

    checks = obj("healthchecks", data["healthchecks"]) if "healthchecks" in data else None
    if checks and "web" in checks:
        _healthchecks(layer, add, checks["web"])

    scripts = obj("scripts", data["scripts"]) if "scripts" in data else None
    dokku = (scripts or {}).get("dokku")
    if isinstance(dokku, dict) and "predeploy" in dokku:
        command = dokku["predeploy"]
        error = command_error(command, single_line=False)
        if error:
            add("scripts.dokku.predeploy", error)
        else:
            layer.after_build = [command]

    if "addons" in data:
        _addons(layer, add, data["addons"])
    return layer


def _env_entry(layer: Layer, add: Any, key: str, entry: Any) -> None:
    where = f"env.{key_label(key)}"
    error = env_key_error(key)
    if error:
        add(where, error)
        return
    if isinstance(entry, str):
        error = env_value_error(entry)
        if error:
            add(where, error)
        else:
            layer.env[key] = entry
        return
    if not isinstance(entry, dict):
        add(where, f'must be a string or an object like {{"value": "..."}}, got {show(entry)}')
        return
    if "required" in entry and not isinstance(entry["required"], bool):
        add(f"{where}.required", f"must be true or false, got {show(entry['required'])}")
    if "generator" in entry:
        if entry["generator"] != "secret":
            add(
                f"{where}.generator",
                f'only "secret" is supported, got {show(entry["generator"])}',
            )
            return
        layer.env_generate[key] = dict(SECRET_GENERATOR)
        return
    if "value" in entry:
        error = env_value_error(entry["value"])
        if error:
            add(f"{where}.value", error)
        else:
            layer.env[key] = entry["value"]


def _healthchecks(layer: Layer, add: Any, checks: Any) -> None:
    if not isinstance(checks, list):
        add("healthchecks.web", f"must be a list of checks, got {show(checks)}")
        return
    for index, check in enumerate(checks):
        where = f"healthchecks.web[{index}]"
        if not isinstance(check, dict):
            add(where, f"must be an object, got {show(check)}")
            continue
        if check.get("type", "startup") != "startup":
            continue  # liveness/readiness checks are not used
        hc = layer.healthcheck
        if "path" in check:
            error = health_path_error(check["path"])
            if error:
                add(f"{where}.path", error)
            else:
                hc["path"] = check["path"]
        if "content" in check:
            content = check["content"]
            if isinstance(content, str) and content:
                hc["contains"] = content
            else:
                add(f"{where}.content", f"must be a non-empty string, got {show(content)}")
        for key, target, low, high in (
            ("timeout", "timeout", 1, 300),
            ("attempts", "retries", 1, 20),
        ):
            if key in check:
                if _int_in(check[key], low, high):
                    hc[target] = check[key]
                else:
                    add(
                        f"{where}.{key}",
                        f"must be an integer between {low} and {high}, got {show(check[key])}",
                    )
        return  # the first startup check is the one used


def _addons(layer: Layer, add: Any, addons: Any) -> None:
    if not isinstance(addons, list):
        add("addons", f"must be a list, got {show(addons)}")
        return
    layer.addons = []
    for index, item in enumerate(addons):
        plan = item.get("plan") if isinstance(item, dict) else item
        if not isinstance(plan, str):
            add(f"addons[{index}]", f'must be a plan name or {{"plan": "..."}}, got {show(item)}')
            continue
        kind = ADDON_PLANS.get(plan.split(":", 1)[0].strip())
        if kind and {"type": kind} not in layer.addons:
            layer.addons.append({"type": kind})
