"""The hop3_firewall role without hosts: its module's rule handling (run as Ansible
runs it, as a process reading its arguments) and the ruleset template, rendered with
Ansible's own templating for typical inputs and, when nft is installed and we are
root, checked by `nft -c -f` (syntax and kernel support; nothing is applied)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from hop3.cli import firewall as cli

from . import localplay

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "hop3_firewall"
MODULE = ROLE / "library" / "hop3_firewall.py"
NFT = shutil.which("nft") or ("/usr/sbin/nft" if Path("/usr/sbin/nft").exists() else None)
needs_nft = pytest.mark.skipif(
    NFT is None or os.geteuid() != 0, reason="nft -c needs nftables installed and root"
)


@pytest.fixture(scope="module")
def module():
    spec = importlib.util.spec_from_file_location("hop3_firewall", MODULE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_module(**args) -> dict:
    """Run the module as Ansible does: a process with its arguments on stdin."""
    return localplay.run_module(MODULE, args)


def config(module, ssh_port=22, ssh_sources=(), web_ports=(80, 443), inventory=(), extra=()):
    """What the role's "Gather the firewall rules" task registers."""
    rules = module.effective_rules(
        ssh_port, list(ssh_sources), list(web_ports),
        [module.normalize(r) for r in inventory], [module.normalize(r) for r in extra],
    )  # fmt: skip
    return {"rules": rules, "header": module.HEADER + json.dumps(rules)}


def render(hop3_firewall_config: dict, **variables) -> str:
    loader = DataLoader()
    defaults = loader.load_from_file(str(ROLE / "defaults/main.yml"), trusted_as_template=True)
    templar = Templar(
        loader=loader,
        variables={**defaults, "hop3_firewall_config": hop3_firewall_config, **variables},
    )
    source = trust_as_template((ROLE / "templates" / "hop3-firewall.nft.j2").read_text())
    return templar.template(
        source, escape_backslashes=False, overrides={"trim_blocks": True, "lstrip_blocks": False}
    )


def rules_of(text: str) -> list[str]:
    """The chain's lines after the fixed preamble (SSH, web, inventory, admin rules)."""
    lines = [line.strip() for line in text.splitlines()]
    start = lines.index('ip6 saddr fe80::/10 udp dport 546 accept comment "dhcpv6-client"') + 1
    return [line for line in lines[start:] if line not in ("}", "")]


def nft_check(text: str, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "firewall.nft"
    path.write_text(text)
    return subprocess.run([NFT, "-c", "-f", str(path)], capture_output=True, text=True)


# -- rules


def test_cli_and_module_agree_on_rules(module):
    for port, source in [("8000", None), ("51820/udp", "2001:db8::7/128"), ("9", "10.0.0.0/8")]:
        rule = cli.parse_rule(port, source, "allow")
        assert module.normalize(rule) == rule


@pytest.mark.parametrize(
    "rule",
    [{"port": 0}, {"port": "80x"}, {"port": True}, {"port": 80, "proto": "icmp"},
     {"port": 80, "source": "10.0.0.1/8"}, {"port": 80, "source": 'x" accept'},
     {"port": 80, "sport": 1}, "80"],
)  # fmt: skip
def test_module_refuses_bad_rules(module, rule):
    with pytest.raises(module.RuleError):
        module.normalize(rule)


def test_effective_rules_order_and_sources(module):
    rules = config(
        module, ssh_port=2222, ssh_sources=["192.0.2.0/24", "2001:db8::/32"],
        web_ports=[80, 443, 80], inventory=[{"port": 5432, "source": "10.1.0.0/16"}],
        extra=[{"port": 8000}],
    )["rules"]  # fmt: skip
    assert rules == [
        {"port": 2222, "proto": "tcp", "sources": ["192.0.2.0/24", "2001:db8::/32"],
         "origin": "ssh"},
        {"port": 80, "proto": "tcp", "sources": [], "origin": "web"},
        {"port": 443, "proto": "tcp", "sources": [], "origin": "web"},
        {"port": 5432, "proto": "tcp", "sources": ["10.1.0.0/16"], "origin": "inventory"},
        {"port": 8000, "proto": "tcp", "sources": [], "origin": "cli"},
    ]  # fmt: skip


def test_allow_and_deny_keep_the_rules_on_the_host(tmp_path):
    files = {"state_file": str(tmp_path / "hop3" / "firewall.json"),
             "path": str(tmp_path / "hop3" / "firewall.nft")}  # fmt: skip
    rule = {"port": 8000, "proto": "tcp", "source": None}
    first = run_module(state="allow", rule=rule, **files)
    assert first["changed"] and first["rule_changed"]
    again = run_module(state="allow", rule={"port": "8000"}, **files)
    assert not again["changed"] and not again["rule_changed"]
    run_module(state="allow", rule={"port": 53, "proto": "udp", "source": "10.0.0.5/32"}, **files)
    stored = json.loads(Path(files["state_file"]).read_text())
    assert stored == {"version": 1, "rules": [
        {"port": 53, "proto": "udp", "source": "10.0.0.5"},
        {"port": 8000, "proto": "tcp", "source": None},
    ]}  # fmt: skip
    listed = run_module(state="rules", **files)
    assert not listed["changed"]
    assert [r["origin"] for r in listed["rules"]] == ["ssh", "web", "web", "cli", "cli"]
    assert listed["header"].startswith("# hop3-rules: [")
    gone = run_module(state="deny", rule={"port": 53, "proto": "udp", "source": "10.0.0.5"},
                      **files)  # fmt: skip
    assert gone["rule_changed"] and [r["port"] for r in gone["extra"]] == [8000]
    absent = run_module(state="deny", rule={"port": 53, "proto": "udp"}, **files)
    assert not absent["changed"] and not absent["rule_changed"]


def test_module_refuses_to_touch_base_rules(tmp_path):
    files = {"state_file": str(tmp_path / "fw.json"), "path": str(tmp_path / "fw.nft")}
    result = run_module(state="deny", rule={"port": 2222}, ssh_port=2222, **files)
    assert result["failed"] and "2222/tcp is a base rule" in result["msg"]
    result = run_module(state="allow", rule={"port": 8443}, web_ports=[80, 8443], **files)
    assert result["failed"] and "hop3_firewall_web_ports" in result["msg"]
    assert not (tmp_path / "fw.json").exists()


def test_module_refuses_a_corrupt_state_file(tmp_path):
    state = tmp_path / "fw.json"
    state.write_text('{"rules": [{"port": "22; flush ruleset"}]}')
    result = run_module(state="rules", state_file=str(state), path=str(tmp_path / "fw.nft"))
    assert result["failed"] and str(state) in result["msg"]


def test_module_refuses_bad_ssh_sources(tmp_path):
    result = run_module(state="rules", ssh_sources=["10.0.0.0/8 }"],
                        state_file=str(tmp_path / "a"), path=str(tmp_path / "b"))  # fmt: skip
    assert result["failed"] and "Invalid firewall settings" in result["msg"]


# -- the ruleset template


def test_default_ruleset(module):
    text = render(config(module))
    assert text.startswith("#!/usr/sbin/nft -f\n")
    # Only Hop3's own table is replaced, in one transaction.
    assert "table inet hop3\ndelete table inet hop3\ntable inet hop3 {\n" in text
    assert "flush ruleset" not in text
    assert "type filter hook input priority filter; policy drop;" in text
    for needed in ('iif "lo" accept', "ct state established,related accept",
                   "ct state invalid drop", "nd-neighbor-solicit", "packet-too-big"):  # fmt: skip
        assert needed in text
    assert "echo-request" in text
    assert rules_of(text) == [
        'tcp dport 22 accept comment "ssh"',
        'tcp dport 80 accept comment "web"',
        'tcp dport 443 accept comment "web"',
    ]
    header = next(line for line in text.splitlines() if line.startswith("# hop3-rules: "))
    assert json.loads(header.removeprefix("# hop3-rules: ")) == config(module)["rules"]


def test_sources_split_by_family(module):
    text = render(config(
        module, ssh_sources=["192.0.2.0/24", "2001:db8::/32", "198.51.100.7"],
        inventory=[{"port": 51820, "proto": "udp", "source": "fd00::/8"}],
        extra=[{"port": 8000, "source": "10.0.0.0/8"}, {"port": 9000}],
    ))  # fmt: skip
    assert rules_of(text) == [
        'ip saddr { 192.0.2.0/24, 198.51.100.7 } tcp dport 22 accept comment "ssh"',
        'ip6 saddr { 2001:db8::/32 } tcp dport 22 accept comment "ssh"',
        'tcp dport 80 accept comment "web"',
        'tcp dport 443 accept comment "web"',
        'ip6 saddr { fd00::/8 } udp dport 51820 accept comment "inventory"',
        'ip saddr { 10.0.0.0/8 } tcp dport 8000 accept comment "cli"',
        'tcp dport 9000 accept comment "cli"',
    ]


def test_options_ping_and_logging(module):
    text = render(config(module), hop3_firewall_icmp_echo=False, hop3_firewall_log_dropped=True)
    assert "echo-request" not in text
    assert re.search(r'limit rate 5/minute .* log prefix "hop3-firewall drop: "', text)


@needs_nft
@pytest.mark.parametrize(
    "variables",
    [{}, {"ssh_sources": ["192.0.2.0/24", "2001:db8::/32"]},
     {"ssh_port": 2222, "web_ports": [80, 443, 8443],
      "inventory": [{"port": 51820, "proto": "udp", "source": "fd00::/8"}],
      "extra": [{"port": 8000}, {"port": 8000, "source": "10.0.0.7"},
                {"port": 53, "proto": "udp"}]},
     {"web_ports": []}],
)  # fmt: skip
def test_rendered_rulesets_pass_nft_check(module, tmp_path, variables):
    text = render(config(module, **variables), hop3_firewall_log_dropped=True)
    check = nft_check(text, tmp_path)
    assert check.returncode == 0, check.stderr + text


@needs_nft
def test_nft_check_catches_a_broken_ruleset(module, tmp_path):
    text = render(config(module)).replace("policy drop;", "policy maybe;")
    assert nft_check(text, tmp_path).returncode != 0
