"""hop3-shell's decisions (hop3/access.py): how an SSH command is read, which
app it acts on (found by the hop command's own click parser) and who may run
it. Hostile strings are refused before anything runs."""

from __future__ import annotations

import pytest

from hop3.access import (
    COMMANDS,
    READ_ONLY,
    Refused,
    User,
    authorize,
    effective_args,
    find_user,
    git_app,
    parse,
    split_command,
)
from hop3.cli.main import cli

ADMIN = User("root-ops", "admin", (), "SHA256:a")
ANA = User("ana", "deployer", ("shop",), "SHA256:b")
VIC = User("vic", "viewer", ("*",), "SHA256:c")


def request(text: str):
    return parse(split_command(text), cli)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "No command given"),
        ("apps\nrm -rf /", "control characters"),
        ("apps\r", "control characters"),
        ("apps\x00", "control characters"),
        ("logs shop\t-f", "control characters"),
        ("apps " + "x" * 5000, "the limit is 4096"),
        ("config:set shop 'A=1", "cannot be read"),
    ],
)
def test_unreadable_commands_are_refused(text, why):
    with pytest.raises(Refused, match=why):
        split_command(text)


@pytest.mark.parametrize(
    "text",
    [
        "apps; rm -rf /",
        "; rm -rf /",
        "$(touch /tmp/pwned)",
        "`touch /tmp/pwned`",
        "bash -c 'touch /tmp/pwned'",
        "setup",
        "sandbox up",
        "pg:psql db",
        "../../bin/sh",
    ],
)
def test_anything_but_a_known_command_is_refused(text):
    with pytest.raises(Refused, match="is not a command of hop3-shell"):
        request(text)


@pytest.mark.parametrize(
    "text",
    [
        "logs 'shop; rm -rf /'",
        "logs '$(id)'",
        "config:set `id` A=1",
        "destroy ../shop",
    ],
)
def test_hostile_app_names_are_refused(text):
    with pytest.raises(Refused, match="needs an app name"):
        request(text)


@pytest.mark.parametrize(
    "text",
    ["apps -t other", "logs shop --target=all", "ps shop -i /tmp/inventory.py",
     "ps shop --inventory /x", "apps -vt other"],
)  # fmt: skip
def test_target_and_inventory_options_are_refused(text):
    with pytest.raises(Refused, match="is not accepted here"):
        request(text)


@pytest.mark.parametrize(
    ("text", "why"),
    [("apps && touch /tmp/pwned", "unexpected extra arguments"),
     ("logs", "Missing argument 'APP'"), ("ps:scale shop", "Missing argument")],
)  # fmt: skip
def test_malformed_arguments_are_refused_with_clicks_message(text, why):
    with pytest.raises(Refused, match=why):
        request(text)


def test_help_of_a_command_is_allowed_and_normalised():
    assert request("destroy --help").args == ("--help",)


def test_the_app_is_found_wherever_the_options_are():
    assert request("logs -n 5 shop -f").app == "shop"
    assert request("config:set shop A=1 B='two words'").args == ("shop", "A=1", "B=two words")
    assert request("ps:scale shop web=2").app == "shop"
    assert request("apps").app is None


@pytest.mark.parametrize("path", ["shop", "/shop", "~/shop", "shop.git", "/shop.git"])
def test_git_paths_name_the_app(path):
    assert git_app(path) == "shop"
    assert request(f"git-receive-pack '{path}'").app == "shop"


@pytest.mark.parametrize("path", ["../etc", "Shop", "a/b", "-x", ""])
def test_bad_git_paths_are_refused(path):
    with pytest.raises(Refused, match="is not an app"):
        git_app(path)


def test_viewer_reads_but_changes_nothing():
    for text in ("apps", "status", "ps shop", "releases shop", "logs shop -f", "config shop"):
        authorize(VIC, request(text))
    denied = [("config:set shop A=1", "config:set"), ("git-receive-pack shop", "push to"),
              ("config:get shop A", "config:get"), ("destroy shop --yes", "destroy")]  # fmt: skip
    for text, verb in denied:
        with pytest.raises(Refused, match=f"permission denied: viewer 'vic' may not {verb} 'shop'"):
            authorize(VIC, request(text))


def test_viewer_sees_config_names_only():
    assert effective_args(VIC, request("config shop")) == ["config", "shop", "--masked"]
    assert effective_args(ANA, request("config shop")) == ["config", "shop"]


def test_deployer_acts_on_its_apps_only():
    for text in ("git-receive-pack shop", "git-upload-pack 'shop'", "config:set shop A=1",
                 "ps:scale shop web=2", "restart shop", "rollback shop", "run shop -- ls",
                 "deploy shop"):  # fmt: skip
        authorize(ANA, request(text))
    with pytest.raises(Refused) as denied:
        authorize(ANA, request("destroy shop --yes"))
    assert denied.value.message.startswith(
        "permission denied: deployer 'ana' may not destroy 'shop'"
    )
    assert denied.value.app == "shop"
    with pytest.raises(Refused, match="it is not one of its apps"):
        authorize(ANA, request("config:set blog A=1"))
    with pytest.raises(Refused, match="may not users:add"):
        authorize(ANA, request("users:add bob --key x --role admin"))


def test_admin_may_run_every_command():
    authorize(ADMIN, request("destroy shop --yes"))
    authorize(ADMIN, request("users:list"))
    authorize(ADMIN, request("git-receive-pack blog"))


def test_every_command_exists_in_the_cli_or_the_shell():
    shell_only = {"help", "whoami", "git-receive-pack", "git-upload-pack"}
    for name in COMMANDS:
        assert name in shell_only or cli.get_command(None, name) is not None, name
    assert set(COMMANDS) >= READ_ONLY


def test_users_are_found_by_key_fingerprint():
    registry = {"users": {"ana": {"role": "deployer", "apps": ["shop"],
                                  "keys": [{"fingerprint": "SHA256:b"}]}}}  # fmt: skip
    assert find_user(registry, "SHA256:b") == ANA
    assert find_user(registry, "SHA256:zz") is None
    assert find_user({}, "SHA256:b") is None
