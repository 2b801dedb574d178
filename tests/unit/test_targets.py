"""Hop3's inventory (add/remove/register) and target resolution, without hosts."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from hop3 import targets
from hop3.errors import HopError
from hop3.targets import (
    add_server,
    hop_inventory_path,
    load_inventory,
    parse_address,
    register_group,
    remove_server,
    resolve_target,
    unregister_group,
    unregister_hosts,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "example" / "hosts.yml"


@pytest.fixture(autouse=True)
def config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HOP3_CONFIG_DIR", str(tmp_path / "config"))
    return tmp_path / "config"


def raw() -> dict:
    return yaml.safe_load(hop_inventory_path().read_text())


def ansible_view(path: Path) -> dict:
    """Parse with Ansible itself: {host: (groups, vars)}."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    manager = InventoryManager(loader=DataLoader(), sources=[str(path)])
    assert str(path) in manager._inventory.processed_sources
    return {
        h.name: (
            sorted(g.name for g in h.get_groups() if g.name != "all"),
            {k: v for k, v in h.vars.items() if not k.startswith("inventory_")},
        )
        for h in manager.hosts.values()
    }


# --------------------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    ("address", "host", "port", "user"),
    [
        ("203.0.113.10", "203.0.113.10", 22, "root"),
        ("deploy@203.0.113.10:2222", "203.0.113.10", 2222, "deploy"),
        ("Web1.Example.COM", "web1.example.com", 22, "root"),
        ("admin@host:65535", "host", 65535, "admin"),
        ("2001:db8::1", "2001:db8::1", 22, "root"),
        ("[2001:db8::1]", "2001:db8::1", 22, "root"),
        ("ops@[2001:DB8:0::1]:2222", "2001:db8::1", 2222, "ops"),
        ("[::1]:2222", "::1", 2222, "root"),
    ],
)
def test_parse_address(address, host, port, user):
    assert parse_address(address) == targets.Address(host=host, port=port, user=user)


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("", "is not a valid host"),
        ("root@", "is not a valid host"),
        ("a b", "is not a valid host"),
        ("host_.-x:22:", "is not a valid host"),
        ("999.1.1.1", "is not a valid host"),
        ("[::1", "is not a valid host"),
        ("[::1]2222", "is not a valid host"),
        ("[203.0.113.1]:22", "is not a valid host"),
        ("-bad.example.com", "is not a valid host"),
        ("host:0", "is not a valid port"),
        ("host:65536", "is not a valid port"),
        ("host:", "is not a valid port"),
        ("host:ssh", "is not a valid port"),
        ("[::1]:99999", "is not a valid port"),
        ("@host", "is not a valid user name"),
        ("bad user@host", "is not a valid user name"),
        ("-x@host", "is not a valid user name"),
    ],
)
def test_bad_addresses_are_clear_errors(address, problem):
    with pytest.raises(HopError) as info:
        parse_address(address)
    assert problem in str(info.value)
    assert f"in {address!r}" in str(info.value)


def test_non_root_user_gets_become():
    assert parse_address("deploy@h").host_vars() == {
        "ansible_host": "h",
        "ansible_user": "deploy",
        "ansible_become": True,
    }
    assert parse_address("root@h:2222").host_vars() == {
        "ansible_host": "h",
        "ansible_port": 2222,
        "ansible_user": "root",
    }


# --------------------------------------------------------------------------- add / remove


def test_first_add_creates_a_private_ansible_inventory(config_dir):
    assert add_server("web-1", "deploy@203.0.113.10:2222", groups=["web"]) is True
    path = hop_inventory_path()
    assert path == config_dir / "inventory.yml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert raw() == {
        "all": {
            "children": {
                "web": {
                    "hosts": {
                        "web-1": {
                            "ansible_host": "203.0.113.10",
                            "ansible_port": 2222,
                            "ansible_user": "deploy",
                            "ansible_become": True,
                        }
                    }
                }
            }
        }
    }
    assert not list(config_dir.glob(".inventory.*"))  # no temp file left behind


def test_written_inventory_is_what_ansible_reads():
    add_server("web-1", "deploy@203.0.113.10:2222", groups=["web", "prod"])
    add_server("db-1", "[2001:db8::1]:2200", groups=["db"])
    add_server("solo", "1:2:3:4:5:6:7:8")  # would be a YAML 1.1 number if unquoted
    seen = ansible_view(hop_inventory_path())
    assert seen["web-1"] == (
        ["prod", "web"],
        {"ansible_host": "203.0.113.10", "ansible_port": 2222, "ansible_user": "deploy",
         "ansible_become": True},
    )  # fmt: skip
    assert seen["db-1"] == (
        ["db"],
        {"ansible_host": "2001:db8::1", "ansible_port": 2200, "ansible_user": "root"},
    )
    assert seen["solo"] == (["ungrouped"], {"ansible_host": "1:2:3:4:5:6:7:8",
                                            "ansible_user": "root"})  # fmt: skip


def test_add_is_idempotent():
    assert add_server("web-1", "10.0.0.1", groups=["web"]) is True
    before = hop_inventory_path().stat().st_mtime_ns, hop_inventory_path().read_text()
    assert add_server("web-1", "root@10.0.0.1:22", groups=["web", "web"]) is False
    assert (hop_inventory_path().stat().st_mtime_ns, hop_inventory_path().read_text()) == before


@pytest.mark.parametrize(
    ("address", "groups"),
    [("10.0.0.2", ["web"]), ("deploy@10.0.0.1", ["web"]), ("10.0.0.1:2222", ["web"]),
     ("10.0.0.1", []), ("10.0.0.1", ["web", "db"])],
)  # fmt: skip
def test_add_with_other_values_needs_force(address, groups):
    add_server("web-1", "10.0.0.1", groups=["web"])
    before = hop_inventory_path().read_text()
    with pytest.raises(HopError) as info:
        add_server("web-1", address, groups=groups)
    assert "'web-1' is already registered as root@10.0.0.1:22 (groups: web)" in str(info.value)
    assert "--force" in str(info.value)
    assert hop_inventory_path().read_text() == before
    assert add_server("web-1", address, groups=groups, force=True) is True
    inv = load_inventory(hop_inventory_path())
    assert inv.groups_of("web-1") == sorted(groups)
    assert inv.address("web-1") == str(parse_address(address))


def test_force_replaces_all_variables_and_groups():
    add_server("web-1", "deploy@10.0.0.1:2222", groups=["web"])
    add_server("web-1", "10.0.0.9", force=True)
    assert raw() == {"all": {"hosts": {"web-1": {"ansible_host": "10.0.0.9",
                                                 "ansible_user": "root"}}}}  # fmt: skip


def test_key_order_is_stable():
    add_server("b", "10.0.0.2", groups=["web"])
    add_server("a", "10.0.0.1", groups=["web"])
    add_server("c", "10.0.0.3", groups=["db"])
    add_server("z", "10.0.0.4")
    add_server("b", "10.0.0.2", groups=["web"])
    tree = raw()["all"]
    assert list(tree) == ["children", "hosts"]
    assert list(tree["children"]) == ["web", "db"]
    assert list(tree["children"]["web"]["hosts"]) == ["b", "a"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("A B", "'A B' is not a valid server name: use lowercase letters, digits, '.', '_' or "
                "'-' (at most 63 characters), e.g. web-1."),
        ("Web", "'Web' is not a valid server name"),
        ("-web", "'-web' is not a valid server name"),
        ("x" * 64, "is not a valid server name"),
        ("all", "'all' is not a valid server name: Ansible reserves"),
        ("ungrouped", "'ungrouped' is not a valid server name"),
    ],
)  # fmt: skip
def test_bad_names(name, message):
    with pytest.raises(HopError) as info:
        add_server(name, "10.0.0.1")
    assert message in str(info.value)
    assert not hop_inventory_path().exists()


@pytest.mark.parametrize("group", ["Web", "web-servers", "1web", "all", "ungrouped", "a b", ""])
def test_bad_groups(group):
    with pytest.raises(HopError) as info:
        add_server("web-1", "10.0.0.1", groups=[group])
    assert f"{group!r} is not a valid group name" in str(info.value)
    assert not hop_inventory_path().exists()


def test_names_and_groups_must_not_clash():
    add_server("web-1", "10.0.0.1", groups=["web"])
    add_server("db", "10.0.0.3")
    before = hop_inventory_path().read_text()
    with pytest.raises(HopError, match="'web' is used both as a server name and as a group"):
        add_server("web", "10.0.0.2")
    with pytest.raises(HopError, match="'db' is used both as a server name and as a group"):
        add_server("db-1", "10.0.0.2", groups=["db"])
    assert hop_inventory_path().read_text() == before


def test_name_equal_to_own_group_is_refused():
    with pytest.raises(HopError, match="both as a server name and as a group name"):
        add_server("web", "10.0.0.1", groups=["web"])


def test_remove_from_every_group_and_drop_empty_groups():
    add_server("web-1", "10.0.0.1", groups=["web", "prod"])
    add_server("web-2", "10.0.0.2", groups=["web"])
    add_server("solo", "10.0.0.3")
    remove_server("web-1")
    inv = load_inventory(hop_inventory_path())
    assert inv.hosts() == ["solo", "web-2"]
    assert inv.groups() == ["web"]
    remove_server("web-2")
    remove_server("solo")
    assert raw() == {"all": {}}
    assert ansible_view(hop_inventory_path()) == {}


def test_remove_unknown_names_known_hosts():
    with pytest.raises(HopError, match="no servers are configured"):
        remove_server("x")
    assert not hop_inventory_path().parent.exists()
    add_server("web-1", "10.0.0.1")
    remove_server("web-1")
    with pytest.raises(HopError, match="no servers are configured"):
        remove_server("web-1")
    add_server("web-1", "10.0.0.1")
    add_server("web-2", "10.0.0.2")
    with pytest.raises(HopError) as info:
        remove_server("web-3")
    assert "Unknown server 'web-3': known servers are web-1, web-2." in str(info.value)


def test_hand_edited_inventory_with_nulls_nesting_and_vars():
    path = hop_inventory_path()
    path.parent.mkdir(parents=True)
    path.write_text(
        "all:\n"
        "  vars: {ansible_user: deploy}\n"
        "  hosts:\n"
        "    lone:\n"
        "  children:\n"
        "    prod:\n"
        "      vars: {ansible_port: 2222}\n"
        "      children:\n"
        "        web:\n"
        "          hosts:\n"
        "            web-1: {ansible_host: 10.0.0.1}\n"
        "    empty:\n"
    )
    inv = load_inventory(path)
    assert inv.hosts() == ["lone", "web-1"]
    assert inv.groups() == ["empty", "prod", "web"]
    assert inv.groups_of("web-1") == ["prod", "web"]
    assert inv.address("web-1") == "deploy@10.0.0.1:2222"
    assert inv.address("lone") == "deploy@lone:22"
    # Adding to a nested group writes there, not to a second top-level "web".
    add_server("web-2", "10.0.0.2", groups=["web"])
    assert "web-2" in raw()["all"]["children"]["prod"]["children"]["web"]["hosts"]
    assert ansible_view(path)["web-2"][0] == ["prod", "web"]


def test_unreadable_own_inventory_is_a_clear_error():
    path = hop_inventory_path()
    path.parent.mkdir(parents=True)
    path.write_text("all: [\n")
    with pytest.raises(HopError, match="is not valid YAML"):
        add_server("web-1", "10.0.0.1")
    path.write_text("- a\n")
    with pytest.raises(HopError, match="is not an Ansible YAML inventory"):
        resolve_target(None, None)
    assert path.read_text() == "- a\n"


# --------------------------------------------------------------------------- sandbox groups


def sandbox_vars(address: str) -> dict:
    return {
        "ansible_host": address,
        "ansible_user": "root",
        "ansible_ssh_private_key_file": "/state/sandbox/id_ed25519",
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no",
    }


def test_register_group_sets_exactly_these_hosts():
    add_server("web-1", "10.0.0.1", groups=["web"])
    register_group("sandbox", {"sandbox-1": sandbox_vars("10.5.0.2"),
                               "sandbox-2": sandbox_vars("10.5.0.3")})  # fmt: skip
    inv = load_inventory(hop_inventory_path())
    assert inv.hosts_of("sandbox") == ["sandbox-1", "sandbox-2"]
    assert inv.host_vars("sandbox-2") == sandbox_vars("10.5.0.3")
    before = hop_inventory_path().read_text()
    register_group("sandbox", {"sandbox-1": sandbox_vars("10.5.0.2"),
                               "sandbox-2": sandbox_vars("10.5.0.3")})  # fmt: skip
    assert hop_inventory_path().read_text() == before  # idempotent
    register_group("sandbox", {"sandbox-1": sandbox_vars("10.5.0.9")})
    inv = load_inventory(hop_inventory_path())
    assert inv.hosts() == ["sandbox-1", "web-1"]
    assert inv.host_vars("sandbox-1")["ansible_host"] == "10.5.0.9"
    assert ansible_view(hop_inventory_path())["sandbox-1"] == (["sandbox"],
                                                              sandbox_vars("10.5.0.9"))  # fmt: skip


def test_register_group_without_replace_keeps_other_members():
    register_group("sandbox", {"sandbox-1": sandbox_vars("10.5.0.2")})
    register_group("sandbox", {"sandbox-2": sandbox_vars("10.5.0.3")}, replace=False)
    assert load_inventory(hop_inventory_path()).hosts_of("sandbox") == ["sandbox-1", "sandbox-2"]


def test_register_group_keeps_hosts_that_are_also_in_other_groups():
    register_group("sandbox", {"sandbox-1": sandbox_vars("10.5.0.2"),
                               "sandbox-2": sandbox_vars("10.5.0.3")})  # fmt: skip
    add_server("sandbox-2", "10.5.0.3", groups=["sandbox", "web"], force=True)
    register_group("sandbox", {"sandbox-1": sandbox_vars("10.5.0.2")})
    inv = load_inventory(hop_inventory_path())
    assert inv.groups_of("sandbox-2") == ["web"]
    unregister_group("sandbox")
    inv = load_inventory(hop_inventory_path())
    assert inv.hosts() == ["sandbox-2"]
    assert inv.groups() == ["web"]


def test_unregister_group_removes_only_its_own_hosts():
    add_server("web-1", "10.0.0.1", groups=["web"])
    register_group("sandbox", {"sandbox-1": sandbox_vars("10.5.0.2")})
    unregister_group("sandbox")
    inv = load_inventory(hop_inventory_path())
    assert inv.hosts() == ["web-1"]
    assert inv.groups() == ["web"]
    unregister_group("sandbox")  # absent: nothing to do


def test_unregister_group_without_inventory_writes_nothing(config_dir):
    unregister_group("sandbox")
    assert not config_dir.exists()


def test_unregister_hosts_removes_only_those_from_the_group():
    add_server("web-1", "10.0.0.1", groups=["web"])
    register_group("sandbox", {f"sandbox-{i}": sandbox_vars(f"10.5.0.{i}") for i in (1, 2, 3)})
    add_server("sandbox-3", "10.5.0.3", groups=["sandbox", "web"], force=True)
    unregister_hosts("sandbox", ["sandbox-2", "sandbox-3", "web-1", "nothere"])
    inv = load_inventory(hop_inventory_path())
    assert inv.hosts_of("sandbox") == ["sandbox-1"]
    assert inv.hosts_of("web") == ["sandbox-3", "web-1"]  # still in another group
    assert inv.hosts() == ["sandbox-1", "sandbox-3", "web-1"]
    before = hop_inventory_path().read_text()
    unregister_hosts("sandbox", ["sandbox-2"])
    assert hop_inventory_path().read_text() == before
    unregister_hosts("sandbox", ["sandbox-1"])
    assert load_inventory(hop_inventory_path()).groups() == ["web"]


def test_unregister_hosts_without_inventory_writes_nothing(config_dir):
    unregister_hosts("sandbox", ["sandbox-1"])
    assert not config_dir.exists()


def test_register_group_validates():
    with pytest.raises(HopError, match="not a valid group name"):
        register_group("sand-box", {})
    with pytest.raises(HopError, match="not a valid server name"):
        register_group("sandbox", {"Bad Name": {}})
    add_server("solo", "10.0.0.1")
    with pytest.raises(HopError, match="both as a server name and as a group name"):
        register_group("solo", {"sandbox-1": {}})
    with pytest.raises(HopError, match="both as a server name and as a group name"):
        register_group("sandbox", {"sandbox": {}})


# --------------------------------------------------------------------------- targets


@pytest.fixture
def fleet():
    add_server("web-1", "10.0.0.1", groups=["web"])
    add_server("web-2", "10.0.0.2", groups=["web"])
    add_server("db-1", "10.0.0.3", groups=["db"])
    return hop_inventory_path()


@pytest.mark.parametrize(
    ("target", "limit", "hosts"),
    [
        ("web-1", "web-1", ["web-1"]),
        ("web", "web", ["web-1", "web-2"]),
        ("all", "all", ["db-1", "web-1", "web-2"]),
        ("web, db-1", "web,db-1", ["db-1", "web-1", "web-2"]),
        ("web,web-1,web", "web,web-1", ["web-1", "web-2"]),
    ],
)
def test_resolve_target(fleet, target, limit, hosts):
    assert resolve_target(target, None) == targets.Target(fleet, limit, hosts)
    assert fleet.is_absolute()


def test_resolved_limit_selects_the_same_hosts_in_ansible(fleet):
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    target = resolve_target("web,db-1", None)
    manager = InventoryManager(loader=DataLoader(), sources=[str(target.inventory)])
    manager.subset(target.limit)
    assert sorted(h.name for h in manager.get_hosts("all")) == target.hosts


def test_unknown_target_lists_hosts_and_groups(fleet):
    with pytest.raises(HopError) as info:
        resolve_target("web,nope", None)
    assert str(info.value).startswith(
        "Unknown target 'nope': known hosts: db-1, web-1, web-2; groups: db, web."
    )


def test_empty_group_is_an_error(fleet):
    path = hop_inventory_path()
    path.write_text(path.read_text() + "    spare:\n")
    with pytest.raises(HopError, match="Group 'spare' has no hosts"):
        resolve_target("spare", None)


def test_default_target_is_the_only_host():
    add_server("solo", "10.0.0.1")
    assert resolve_target(None, None) == targets.Target(hop_inventory_path(), "solo", ["solo"])


def test_no_default_target_with_several_hosts(fleet):
    with pytest.raises(HopError) as info:
        resolve_target(None, None)
    assert "3 hosts (known hosts: db-1, web-1, web-2; groups: db, web)" in str(info.value)
    assert "-t" in str(info.value) and "HOP3_TARGET" in str(info.value)


def test_no_servers_configured():
    with pytest.raises(HopError) as info:
        resolve_target("all", None)
    assert str(info.value) == (
        "No servers configured. Add one with `hop server add NAME user@host` "
        "or boot local test hosts with `hop sandbox up`."
    )


# --------------------------------------------------------------------------- -i inventories


def test_ini_inventory(tmp_path):
    ini = tmp_path / "hosts.ini"
    ini.write_text(
        "[web]\nweb1 ansible_host=10.0.0.1 ansible_user=deploy\nweb2 ansible_port=2222\n"
        "[db]\ndb1\n[prod:children]\nweb\n"
    )
    target = resolve_target("prod,db1", ini)
    assert target == targets.Target(ini, "prod,db1", ["db1", "web1", "web2"])
    inv = load_inventory(ini)
    assert inv.groups_of("web1") == ["prod", "web"]
    assert inv.address("web1") == "deploy@10.0.0.1:22"
    assert inv.address("web2") == "web2:2222"
    with pytest.raises(HopError) as info:
        resolve_target("nope", ini)
    assert "Unknown target 'nope': known hosts: db1, web1, web2; groups: db, prod, web." in str(
        info.value
    )


def test_relative_inventory_becomes_absolute(tmp_path, monkeypatch):
    (tmp_path / "hosts.ini").write_text("only ansible_host=10.0.0.1\n")
    monkeypatch.chdir(tmp_path)
    target = resolve_target(None, Path("hosts.ini"))
    assert target.inventory == tmp_path / "hosts.ini"
    assert target.hosts == ["only"]


def test_example_inventory_parses():
    inv = load_inventory(EXAMPLE)
    assert inv.hosts_of("web") == ["web-1", "web-2"]
    assert inv.hosts_of("db") == ["db-1"]
    assert inv.address("web-2") == "deploy@203.0.113.11:2222"
    assert inv.host_vars("web-1")["ansible_become"] is True
    assert inv.address("db-1") == "root@[2001:db8::20]:22"


@pytest.mark.parametrize(
    ("text", "suffix", "reason"),
    [
        ("all: {hosts: [\n", ".yml", "YAML parsing failed"),
        ("all:\n  hosts:\n    - a\n", ".yaml", 'Invalid "hosts" entry'),
        ("[web\nweb1 ansible_host=1.2.3.4\n", ".ini", "ini plugin"),
    ],
)
def test_malformed_inventory_is_a_clear_error(tmp_path, capfd, text, suffix, reason):
    bad = tmp_path / f"hosts{suffix}"
    bad.write_text(text)
    with pytest.raises(HopError) as info:
        resolve_target("all", bad)
    message = str(info.value)
    assert message.startswith(f"Ansible cannot parse the inventory {bad}: ")
    assert reason in message
    assert "\n" not in message
    out, err = capfd.readouterr()
    assert "WARNING" not in out + err  # Ansible's own warnings stay off the terminal
    from ansible import constants

    assert constants.INVENTORY_ANY_UNPARSED_IS_FAILED is False  # restored


def test_inventory_directory_with_a_bad_file_names_it(tmp_path):
    (tmp_path / "inv").mkdir()
    (tmp_path / "inv" / "good.ini").write_text("web1\n")
    (tmp_path / "inv" / "bad.yml").write_text("all: {hosts: [\n")
    with pytest.raises(HopError) as info:
        resolve_target("all", tmp_path / "inv")
    assert f"(in {tmp_path / 'inv' / 'bad.yml'})" in str(info.value)


def test_missing_and_empty_inventories(tmp_path):
    with pytest.raises(HopError, match="does not exist"):
        resolve_target("all", tmp_path / "nope.ini")
    empty = tmp_path / "empty.yml"
    empty.write_text("hello: world\n")
    with pytest.raises(HopError) as info:
        resolve_target(None, empty)
    assert f"The inventory {empty} has no hosts." in str(info.value)
    assert "not a valid group definition" in str(info.value)
