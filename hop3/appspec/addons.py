"""``[[addons]]`` -> the PostgreSQL and MariaDB databases and Redis instances a
deploy creates and links.

An app's addon of a type gets the instance named after the app ('-' becomes
'_'), plus ``_<name>`` for a named addon: app ``my-shop`` has database
``my_shop`` and, for ``name = "cache"``, Redis instance ``my_shop_cache``.
"""

from __future__ import annotations

from typing import Any

from hop3.errors import HopError

#: Where roles hop3_postgresql, hop3_mariadb and hop3_redis keep each instance's record
#: (their *_services_dir defaults).
SERVICES_DIR = "/srv/hop3/services"

#: Per type: the config variable (before its name prefix) -> the record field
#: whose value it gets.
ENV_FIELDS: dict[str, dict[str, str]] = {
    "postgres": {"DATABASE_URL": "url"},
    "redis": {"REDIS_URL": "url", "REDIS_KEY_PREFIX": "key_prefix"},
    # PHP apps configure their database from its parts.
    "mariadb": {
        "DATABASE_URL": "url",
        "MARIADB_HOST": "host",
        "MARIADB_PORT": "port",
        "MARIADB_DATABASE": "database",
        "MARIADB_USER": "user",
        "MARIADB_PASSWORD": "password",
    },
}

#: Instance names the services keep for themselves.
RESERVED_INSTANCES: dict[str, frozenset[str]] = {
    "postgres": frozenset({"postgres", "template0", "template1", "public"}),
    "redis": frozenset({"default", "hop3admin"}),
    "mariadb": frozenset({"mysql", "information_schema", "performance_schema", "sys"}),
}


def resolve_addons(app: str, addons: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``hop3_app_addons`` of the deploy playbook for app ``app`` (validated).

    Each item: ``type``, ``instance``, ``file`` (the instance's record on the
    host) and ``env`` ({config variable: record field}).
    """
    resolved = []
    for addon in addons:
        kind, name = addon["type"], addon.get("name")
        instance = app.replace("-", "_") + (f"_{name}" if name else "")
        if instance in RESERVED_INSTANCES[kind]:
            raise HopError(
                f"App '{app}' cannot have an unnamed {kind} addon: '{instance}' is reserved "
                f"by {kind}.",
                hint=f'Name the addon in hop3.toml: [[addons]] type = "{kind}", name = "main".',
            )
        prefix = f"{name.upper()}_" if name else ""
        resolved.append(
            {
                "type": kind,
                "instance": instance,
                "file": f"{SERVICES_DIR}/{kind}/{instance}.json",
                "env": {prefix + var: field for var, field in ENV_FIELDS[kind].items()},
            }
        )
    return resolved
