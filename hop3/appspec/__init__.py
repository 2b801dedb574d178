"""The app definition: ``hop3.toml``, ``Procfile`` and ``app.json`` -> ``AppSpec``.

Use ``load_app(path, name=None)``; ``resolve_addons`` names the databases and
Redis instances of its ``[[addons]]``; the ``validate_*`` helpers check single
values given on the command line (``config:set``, ``domains:add``, ``--app``).
"""

from hop3.appspec.addons import resolve_addons
from hop3.appspec.cron import CronError, to_on_calendar
from hop3.appspec.load import load_app
from hop3.appspec.model import (
    RUNTIMES,
    AppSpec,
    AppSpecError,
    CronJob,
    HealthCheck,
    Problem,
    Process,
)
from hop3.appspec.validate import (
    RESERVED_APP_NAMES,
    RESERVED_ENV_KEYS,
    validate_app_name,
    validate_domain,
    validate_env_key,
)

__all__ = [
    "RESERVED_APP_NAMES",
    "RESERVED_ENV_KEYS",
    "RUNTIMES",
    "AppSpec",
    "AppSpecError",
    "CronError",
    "CronJob",
    "HealthCheck",
    "Problem",
    "Process",
    "load_app",
    "resolve_addons",
    "to_on_calendar",
    "validate_app_name",
    "validate_domain",
    "validate_env_key",
]
