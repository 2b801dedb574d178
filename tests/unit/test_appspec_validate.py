"""Single-value validators the CLI uses too: app names, env keys, domains, sizes, paths."""

from __future__ import annotations

import pytest

from hop3.appspec import (
    RESERVED_APP_NAMES,
    validate_app_name,
    validate_domain,
    validate_env_key,
)
from hop3.appspec.validate import (
    body_size_error,
    normalize_cpu,
    normalize_memory,
    normalize_rel_path,
    url_prefix_error,
)
from hop3.errors import HopError

# --- app names ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "my-app", "shop2", "a" * 30, "x-1-y", "www-2"])
def test_valid_app_names(name: str) -> None:
    assert validate_app_name(name) == name


RULE = "use 1-30 lowercase letters, digits or '-', starting with a letter (e.g. my-app)."


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "A B",
        "-x",
        "a" * 31,
        "",
        "MyApp",
        "1app",
        "app-",
        "my_app",
        "app.x",
        "é",
        "a\n",
        "a\nb",
        "a/b",
        "a$(id)",
    ],
)
def test_invalid_app_names(name: str) -> None:
    with pytest.raises(HopError) as caught:
        validate_app_name(name)
    assert caught.value.message == f"{name!r} is not a valid app name: {RULE}"


def test_invalid_app_name_message_matches_the_documented_example() -> None:
    with pytest.raises(HopError) as caught:
        validate_app_name("../x")
    assert caught.value.message == (
        "'../x' is not a valid app name: use 1-30 lowercase letters, digits or '-', "
        "starting with a letter (e.g. my-app)."
    )


@pytest.mark.parametrize("name", sorted(RESERVED_APP_NAMES))
def test_reserved_app_names(name: str) -> None:
    with pytest.raises(HopError) as caught:
        validate_app_name(name)
    assert caught.value.message.startswith(f"{name!r} is a reserved name")
    assert "root" in (caught.value.hint or "")


def test_reserved_list_is_the_documented_one() -> None:
    assert set(RESERVED_APP_NAMES) == {
        "root",
        "admin",
        "hop3",
        "nginx",
        "www-data",
        "postgres",
        "redis",
        "mysql",
        "mariadb",
        "daemon",
        "bin",
        "sys",
        "nobody",
        "systemd",
        "sshd",
        "git",
        "www",
        "api",
    }


# --- env keys ----------------------------------------------------------------


@pytest.mark.parametrize("key", ["SECRET_KEY", "_X", "lower_ok", "A1", "DATABASE_URL"])
def test_valid_env_keys(key: str) -> None:
    assert validate_env_key(key) == key


@pytest.mark.parametrize("key", ["1X", "A-B", "A B", "", "X=Y", "$X", "É", "A" * 129, "A\n"])
def test_invalid_env_keys(key: str) -> None:
    with pytest.raises(HopError, match="is not a valid variable name"):
        validate_env_key(key)


def test_port_is_reserved() -> None:
    with pytest.raises(HopError, match="PORT is reserved: Hop3 sets it"):
        validate_env_key("PORT")


# --- domains -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "normalized"),
    [
        ("shop.example.com", "shop.example.com"),
        ("Shop.Example.COM", "shop.example.com"),
        ("shop.example.com.", "shop.example.com"),
        ("*.example.com", "*.example.com"),
        ("a-b.c0.example", "a-b.c0.example"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("a" * 63 + ".com", "a" * 63 + ".com"),
    ],
)
def test_valid_domains(domain: str, normalized: str) -> None:
    assert validate_domain(domain) == normalized


@pytest.mark.parametrize(
    ("domain", "why"),
    [
        ("exa mple.com", "label 'exa mple' may only contain letters, digits and '-'"),
        ("localhost", "it needs at least one dot"),
        ("-x.example.com", "label '-x' starts or ends with '-'"),
        ("x-.example.com", "label 'x-' starts or ends with '-'"),
        ("a..b.com", "it has an empty label"),
        (".example.com", "it has an empty label"),
        ("a" * 64 + ".com", "is longer than 63 characters"),
        (".".join(["abcdefghi"] * 26) + ".com", "it is longer than 253 characters"),
        ("*.com", "it needs at least one dot"),
        ("a.*.example.com", "a wildcard is only allowed as the first label"),
        ("1.2.3.4", "it looks like an IP address"),
        ("shop.example.com;", "may only contain letters, digits and '-'"),
        ("shop.example.com/x", "may only contain letters, digits and '-'"),
        ("", "it is empty"),
        ("ex_ample.com", "may only contain letters, digits and '-'"),
    ],
)
def test_invalid_domains(domain: str, why: str) -> None:
    with pytest.raises(HopError) as caught:
        validate_domain(domain)
    assert caught.value.message.startswith(f"{domain[:20]!r}"[:-1])
    assert " is not a valid domain name: " in caught.value.message
    assert why in caught.value.message


# --- sizes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "normalized"),
    [
        ("512M", "512M"),
        ("512m", "512M"),
        ("2G", "2G"),
        ("16M", "16M"),
        ("64G", "64G"),
        ("16384K", "16384K"),
    ],
)
def test_memory(value: str, normalized: str) -> None:
    assert normalize_memory(value) == normalized


@pytest.mark.parametrize("value", ["12X", "15M", "65G", "512", "512MB", "-1M", "", 512, "1.5G"])
def test_bad_memory(value: object) -> None:
    with pytest.raises(ValueError, match=r"must be a size like '512M' or '2G'"):
        normalize_memory(value)


@pytest.mark.parametrize(
    ("value", "normalized"), [("50%", "50%"), ("1%", "1%"), ("6400%", "6400%")]
)
def test_cpu(value: str, normalized: str) -> None:
    assert normalize_cpu(value) == normalized


@pytest.mark.parametrize("value", ["0%", "6401%", "50", "0.5", 50, "abc%"])
def test_bad_cpu(value: object) -> None:
    with pytest.raises(ValueError, match="must be a percentage"):
        normalize_cpu(value)


@pytest.mark.parametrize("value", ["20m", "512k", "1g", "100", "1M"])
def test_body_size_ok(value: str) -> None:
    assert body_size_error(value) is None


@pytest.mark.parametrize("value", ["20mb", "1.5m", "", "20m; return 200", 20])
def test_body_size_bad(value: object) -> None:
    assert "must be an nginx size" in (body_size_error(value) or "")


# --- paths and URL prefixes ------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "normalized"),
    [
        ("public", "public"),
        ("./dist/", "dist"),
        ("dist//site", "dist/site"),
        (".", "."),
        ("./", "."),
        (".well-known", ".well-known"),
    ],
)
def test_rel_paths(value: str, normalized: str) -> None:
    assert normalize_rel_path(value) == normalized


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("/etc", "must be a path relative to the app directory"),
        ("../up", "must stay inside the app directory"),
        ("a/../../b", "must stay inside the app directory"),
        ("a b", "is not a valid path"),
        ("x;rm -rf /", "is not a valid path"),
        ("", "got an empty string"),
        ("*.log", "is not a valid path"),
    ],
)
def test_bad_rel_paths(value: str, why: str) -> None:
    with pytest.raises(ValueError) as caught:
        normalize_rel_path(value)
    assert why in str(caught.value)


def test_globs_are_allowed_for_backup_excludes() -> None:
    assert normalize_rel_path("cache/*.tmp", glob=True) == "cache/*.tmp"


@pytest.mark.parametrize("prefix", ["/static", "/", "/a/b_c-d.e~f"])
def test_url_prefix_ok(prefix: str) -> None:
    assert url_prefix_error(prefix) is None


@pytest.mark.parametrize("prefix", ["static", "/a b", "/x;", "/../etc", "/a{b}", "//x"])
def test_url_prefix_bad(prefix: str) -> None:
    assert "is not a valid URL prefix" in (url_prefix_error(prefix) or "")
