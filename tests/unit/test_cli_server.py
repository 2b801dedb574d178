"""`hop server add/list/remove` through the real CLI group."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from hop3.cli.main import cli
from hop3.errors import HopError
from hop3.targets import hop_inventory_path


@pytest.fixture(autouse=True)
def config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HOP3_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("HOP3_INVENTORY", raising=False)
    return tmp_path / "config"


def hop(*args: str):
    return CliRunner().invoke(cli, list(args))


def ok(*args: str) -> str:
    result = hop(*args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def fails(*args: str) -> str:
    """Run a command that must fail with a HopError; return its message."""
    result = hop(*args)
    assert result.exit_code != 0
    assert isinstance(result.exception, HopError), result.exception
    return str(result.exception)


def servers(*args: str) -> list[dict]:
    return json.loads(ok("server", "list", "--json", *args))


def test_add_list_remove_round_trip():
    assert ok("server", "list").startswith("No servers configured.")
    assert servers() == []
    out = ok("server", "add", "web-1", "deploy@203.0.113.10:2222", "--group", "web")
    assert out == "Added server web-1 (deploy@203.0.113.10:2222) in web.\n"
    ok("server", "add", "db-1", "10.0.0.3", "-g", "db", "-g", "prod")
    ok("server", "add", "v6", "ops@[2001:db8::1]:2200")
    assert servers() == [
        {"name": "db-1", "address": "root@10.0.0.3:22", "groups": ["db", "prod"]},
        {"name": "v6", "address": "ops@[2001:db8::1]:2200", "groups": []},
        {"name": "web-1", "address": "deploy@203.0.113.10:2222", "groups": ["web"]},
    ]
    table = ok("server", "list")
    for cell in ("web-1", "deploy@203.0.113.10:2222", "db, prod", "ops@[2001:db8::1]:2200"):
        assert cell in table
    assert ok("server", "remove", "db-1") == "Removed server db-1.\n"
    assert [s["name"] for s in servers()] == ["v6", "web-1"]
    tree = yaml.safe_load(hop_inventory_path().read_text())
    assert set(tree["all"]["children"]) == {"web"}  # db and prod were left empty


def test_add_twice_is_a_no_op_and_force_replaces():
    ok("server", "add", "web-1", "10.0.0.1", "--group", "web")
    before = hop_inventory_path().read_text()
    out = ok("server", "add", "web-1", "root@10.0.0.1:22", "--group", "web")
    assert out == "Server web-1 is already registered as root@10.0.0.1:22 in web.\n"
    assert hop_inventory_path().read_text() == before
    message = fails("server", "add", "web-1", "deploy@10.0.0.2")
    assert message == (
        "Server 'web-1' is already registered as root@10.0.0.1:22 (groups: web). "
        "Add --force to replace it with deploy@10.0.0.2:22 (no group), or choose another name."
    )
    assert hop_inventory_path().read_text() == before
    out = ok("server", "add", "web-1", "deploy@10.0.0.2", "--force")
    assert out == "Replaced server web-1 (deploy@10.0.0.2:22).\n"
    assert servers() == [{"name": "web-1", "address": "deploy@10.0.0.2:22", "groups": []}]
    tree = yaml.safe_load(hop_inventory_path().read_text())
    assert tree["all"]["hosts"]["web-1"]["ansible_become"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["A B", "10.0.0.1"], "'A B' is not a valid server name: use lowercase letters, digits, "
                              "'.', '_' or '-' (at most 63 characters), e.g. web-1."),
        (["all", "10.0.0.1"], "'all' is not a valid server name: Ansible reserves 'all' and "
                              "'ungrouped'; choose another, e.g. web-1."),
        (["web-1", "bad host"], "'bad host' in 'bad host' is not a valid host: use a host name "
                                "or an IPv4/IPv6 address"),
        (["web-1", "h:0"], "'0' in 'h:0' is not a valid port: use a number from 1 to 65535"),
        (["web-1", "h:70000"], "'70000' in 'h:70000' is not a valid port"),
        (["web-1", "[::1]:x"], "'x' in '[::1]:x' is not a valid port"),
        (["web-1", "[::1"], "'[::1' in '[::1' is not a valid host"),
        (["web-1", "Bad User@h"], "'Bad User' in 'Bad User@h' is not a valid user name"),
        (["web-1", "h", "--group", "web-servers"], "'web-servers' is not a valid group name: "
                                                   "use lowercase letters, digits and '_'"),
        (["web-1", "h", "--group", "ungrouped"], "'ungrouped' is not a valid group name"),
        (["web", "h", "--group", "web"], "'web' is used both as a server name and as a group"),
    ],
)  # fmt: skip
def test_bad_input_is_one_clear_paragraph_and_writes_nothing(config_dir, args, message):
    text = fails("server", "add", *args)
    assert text.startswith(message)
    assert "\n" not in text
    assert not config_dir.exists()


def test_errors_are_printed_as_a_paragraph_by_main(monkeypatch, capsys):
    from hop3.cli import main

    monkeypatch.setattr("sys.argv", ["hop", "server", "add", "A B", "10.0.0.1"])
    with pytest.raises(SystemExit) as exit_info:
        main.main()
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert "'A B' is not a valid server name: use lowercase letters" in err
    assert "Traceback" not in err


def test_remove_unknown_names_known_servers():
    ok("server", "add", "web-1", "10.0.0.1")
    message = fails("server", "remove", "web-9")
    assert message.startswith("Unknown server 'web-9': known servers are web-1.")


def test_usage_errors_exit_non_zero():
    assert hop("server", "add", "web-1").exit_code == 2
    assert hop("server", "remove").exit_code == 2


def test_list_another_inventory(tmp_path):
    ini = tmp_path / "hosts.ini"
    ini.write_text("[web]\nweb1 ansible_host=10.0.0.1 ansible_user=deploy\n[db]\ndb1\n")
    assert servers("-i", str(ini)) == [
        {"name": "db1", "address": "db1:22", "groups": ["db"]},
        {"name": "web1", "address": "deploy@10.0.0.1:22", "groups": ["web"]},
    ]
    assert "deploy@10.0.0.1:22" in ok("server", "list", "-i", str(ini))


def test_list_malformed_inventory(tmp_path):
    bad = tmp_path / "hosts.yml"
    bad.write_text("all: {hosts: [\n")
    message = fails("server", "list", "-i", str(bad))
    assert message.startswith(f"Ansible cannot parse the inventory {bad}: YAML parsing failed")
    assert "ansible-inventory" in message


def test_list_does_not_import_ansible(tmp_path):
    """`hop server list` reads the inventory file itself: importing Ansible would
    cost it most of a second (speed is for bench/, not for timed assertions)."""
    import subprocess
    import sys

    code = (
        "import sys;"
        "from click.testing import CliRunner; from hop3.cli.main import cli;"
        "r = CliRunner().invoke(cli, ['server', 'list']); assert r.exit_code == 0, r.output;"
        "print('ansible' in sys.modules)"
    )
    env = {"HOP3_CONFIG_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.split()  # fmt: skip
    assert out == ["False"]
