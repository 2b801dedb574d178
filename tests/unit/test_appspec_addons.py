"""resolve_addons: instance names, record files and config variables of [[addons]]."""

from __future__ import annotations

from pathlib import Path

import pytest

from hop3.appspec import load_app, resolve_addons
from hop3.errors import HopError


def test_no_addons_resolve_to_nothing() -> None:
    assert resolve_addons("shop", []) == []


def test_unnamed_addons_take_the_app_name_and_the_usual_variables() -> None:
    resolved = resolve_addons("my-shop", [{"type": "postgres"}, {"type": "redis"}])
    assert resolved == [
        {
            "type": "postgres",
            "instance": "my_shop",
            "file": "/srv/hop3/services/postgres/my_shop.json",
            "env": {"DATABASE_URL": "url"},
        },
        {
            "type": "redis",
            "instance": "my_shop",
            "file": "/srv/hop3/services/redis/my_shop.json",
            "env": {"REDIS_URL": "url", "REDIS_KEY_PREFIX": "key_prefix"},
        },
    ]


def test_named_addons_add_their_name_to_the_instance_and_the_variables() -> None:
    resolved = resolve_addons(
        "shop", [{"type": "postgres", "name": "analytics"}, {"type": "redis", "name": "jobs_2"}]
    )
    assert [(a["instance"], a["file"], a["env"]) for a in resolved] == [
        (
            "shop_analytics",
            "/srv/hop3/services/postgres/shop_analytics.json",
            {"ANALYTICS_DATABASE_URL": "url"},
        ),
        (
            "shop_jobs_2",
            "/srv/hop3/services/redis/shop_jobs_2.json",
            {"JOBS_2_REDIS_URL": "url", "JOBS_2_REDIS_KEY_PREFIX": "key_prefix"},
        ),
    ]


def test_longest_names_fit_the_services_name_rule() -> None:
    app, name = "a" * 30, "b" * 31
    (resolved,) = resolve_addons(app, [{"type": "postgres", "name": name}])
    assert resolved["instance"] == f"{app}_{name}" and len(resolved["instance"]) <= 63


@pytest.mark.parametrize(
    ("app", "kind"),
    [
        ("public", "postgres"),
        ("template1", "postgres"),
        ("default", "redis"),
        ("hop3admin", "redis"),
    ],
)
def test_an_unnamed_addon_may_not_take_a_name_the_service_keeps(app: str, kind: str) -> None:
    with pytest.raises(HopError) as caught:
        resolve_addons(app, [{"type": kind}])
    assert f"'{app}' is reserved" in caught.value.message
    assert "name = " in (caught.value.hint or "")
    assert resolve_addons(app, [{"type": kind, "name": "main"}])[0]["instance"] == f"{app}_main"


def test_addons_from_hop3_toml(tmp_path: Path) -> None:
    (tmp_path / "hop3.toml").write_text(
        '[run]\nstart = "python app.py"\n\n'
        '[[addons]]\ntype = "postgres"\n\n'
        '[[addons]]\ntype = "redis"\nname = "cache"\n'
    )
    spec = load_app(tmp_path, "blog")
    assert [(a["instance"], sorted(a["env"])) for a in resolve_addons(spec.name, spec.addons)] == [
        ("blog", ["DATABASE_URL"]),
        ("blog_cache", ["CACHE_REDIS_KEY_PREFIX", "CACHE_REDIS_URL"]),
    ]
