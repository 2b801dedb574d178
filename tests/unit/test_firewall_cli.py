"""`hop firewall`, `firewall:allow`, `firewall:deny`: input checked before any host is
touched, what each command hands to playbooks/firewall.yml, and what it prints (the
runner is faked)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from hop3.cli import firewall
from hop3.errors import HopError
from hop3.runner import HostStats, RunResult
from hop3.targets import Target


class FakeRunner:
    """Stands for run_playbook: records each call and returns a canned result."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.calls: list[dict] = []
        self.reports: dict[str, dict] = {}
        self.status = "successful"

    def __call__(self, name, **kwargs):
        self.calls.append({"playbook": name, **kwargs})
        hosts = self.reports or {"web-1": {}}
        return RunResult(
            verb=kwargs["verb"], target=kwargs["limit"], status=self.status,
            rc=0 if self.status == "successful" else 2, duration=0.1,
            started="2024-01-01T00:00:00Z", run_dir=self.tmp_path,
            stats={h: HostStats(changed=1) for h in hosts}, reports=self.reports,
        )  # fmt: skip


@pytest.fixture
def runner(monkeypatch, tmp_path):
    fake = FakeRunner(tmp_path)
    monkeypatch.setattr("hop3.runner.run_playbook", fake)
    target = Target(inventory=tmp_path / "inventory.yml", limit="web", hosts=["web-1", "web-2"])
    monkeypatch.setattr("hop3.targets.resolve_target", lambda target_, inventory: target)
    return fake


@pytest.fixture
def no_run(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a playbook ran although the input was invalid")

    monkeypatch.setattr("hop3.runner.run_playbook", refuse)


def invoke(*args):
    group = click.Group("hop")
    for command in firewall.COMMANDS:
        group.add_command(command)
    return CliRunner().invoke(group, list(args))


def run_main(monkeypatch, capsys, *args) -> tuple[int, str]:
    """Run the real entry point (friendly errors, exit codes)."""
    from hop3.cli import main

    monkeypatch.setattr("sys.argv", ["hop", *args])
    with pytest.raises(SystemExit) as exit_info:
        main.main()
    return exit_info.value.code, capsys.readouterr().err


def test_commands_are_exported_and_registered():
    from hop3.cli.main import cli

    names = {c.name for c in firewall.COMMANDS}
    assert names == {"firewall", "firewall:allow", "firewall:deny"}
    assert names <= set(cli.commands)


@pytest.mark.parametrize("name", ["firewall", "firewall:allow", "firewall:deny"])
def test_every_command_has_help_and_run_options(name):
    result = invoke(name, "--help")
    assert result.exit_code == 0, result.output
    for flag in ("-t, --target", "-i, --inventory", "--json", "-v, --verbose"):
        assert flag in result.output
    assert ("--raw" if name == "firewall" else "--from") in result.output


@pytest.mark.parametrize(
    ("text", "expected"),
    [("8000", (8000, "tcp")), ("8000/tcp", (8000, "tcp")), ("51820/udp", (51820, "udp")),
     ("1", (1, "tcp")), ("65535/UDP", (65535, "udp")), (" 443/tcp ", (443, "tcp"))],
)  # fmt: skip
def test_ports(text, expected):
    assert firewall.parse_port(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("0", "Port 0 is out of range."), ("65536", "Port 65536 is out of range."),
     ("99999999", "out of range"), ("abc", "'abc' is not a port."), ("", "is not a port"),
     ("80/icmp", "'icmp' is not a protocol"), ("80/", "is not a port"),
     ("8000-8010", "is not a port"), ("-1", "is not a port"), ("80/tcp/udp", "is not a port"),
     ("8000; drop", "is not a port")],
)  # fmt: skip
def test_bad_ports(text, message):
    with pytest.raises(HopError) as err:
        firewall.parse_port(text)
    assert message in err.value.message
    assert err.value.hint


@pytest.mark.parametrize(
    ("text", "expected"),
    [(None, None), ("203.0.113.0/24", "203.0.113.0/24"), ("203.0.113.7", "203.0.113.7"),
     ("203.0.113.7/32", "203.0.113.7"), ("2001:db8::/32", "2001:db8::/32"),
     ("2001:DB8:0::7", "2001:db8::7"), ("0.0.0.0/0", "0.0.0.0/0"), ("::/0", "::/0")],
)  # fmt: skip
def test_sources(text, expected):
    assert firewall.parse_source(text) == expected


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [("10.0.0.1/8", "its host bits are set", "--from 10.0.0.0/8"),
     ("2001:db8::1/32", "its host bits are set", "--from 2001:db8::/32"),
     ("10.0.0.300", "is not an IP address or network", "CIDR"),
     ("example.com", "is not an IP address or network", "CIDR"),
     ("10.0.0.0/33", "is not an IP address or network", "CIDR"),
     ("", "is not an IP address or network", "CIDR"),
     ("10.0.0.0/8 }", "is not an IP address or network", "CIDR")],
)  # fmt: skip
def test_bad_sources(text, message, hint):
    with pytest.raises(HopError) as err:
        firewall.parse_source(text)
    assert message in err.value.message
    assert hint in err.value.hint


@pytest.mark.parametrize("verb", ["allow", "deny"])
@pytest.mark.parametrize(("port", "name"), [("22", "SSH"), ("80", "HTTP"), ("443/tcp", "HTTPS")])
def test_base_rules_are_refused(no_run, verb, port, name):
    result = invoke(f"firewall:{verb}", port)
    assert result.exit_code != 0
    assert isinstance(result.exception, HopError)
    assert f"({name}) is a base rule" in result.exception.message
    assert "hop setup" in result.exception.hint


def test_base_ports_over_udp_are_ordinary_rules(runner):
    assert invoke("firewall:allow", "443/udp").exit_code == 0


@pytest.mark.parametrize(
    "args",
    [["firewall:allow", "0"], ["firewall:allow", "80/sctp"], ["firewall:deny", "http"],
     ["firewall:allow", "8000", "--from", "10.1.2.3/16"], ["firewall:deny", "22"],
     ["firewall:allow", "8000", "--from", "nowhere"]],
)  # fmt: skip
def test_bad_input_exits_non_zero_with_one_paragraph(monkeypatch, capsys, no_run, args):
    code, err = run_main(monkeypatch, capsys, *args)
    assert code == 1
    assert err.startswith("Error: ")
    assert "\n" not in err.strip()
    assert "Traceback" not in err


def test_allow_hands_the_rule_to_the_playbook(runner):
    runner.reports = {"web-1": {"rule_changed": True}, "web-2": {"rule_changed": False}}
    result = invoke("firewall:allow", "8000", "--from", "2001:db8::/48")
    assert result.exit_code == 0, result.output
    (call,) = runner.calls
    assert call["playbook"] == "firewall" and call["verb"] == "firewall:allow"
    assert call["extravars"] == {
        "hop3_firewall_action": "allow",
        "hop3_firewall_rule": {"port": 8000, "proto": "tcp", "source": "2001:db8::/48"},
    }
    assert call["record"] is True and call["limit"] == "web"
    assert result.output.splitlines() == [
        "Allowed 8000/tcp from 2001:db8::/48 on web-1.",
        "8000/tcp from 2001:db8::/48 was already allowed on web-2.",
    ]


def test_deny_hands_the_rule_to_the_playbook(runner):
    runner.reports = {
        "web-1": {"rule_changed": True},
        "web-2": {"rule_changed": False, "in_inventory": True},
        "web-3": {"rule_changed": False},
    }
    result = invoke("firewall:deny", "51820/udp")
    assert result.exit_code == 0, result.output
    assert runner.calls[0]["extravars"] == {
        "hop3_firewall_action": "deny",
        "hop3_firewall_rule": {"port": 51820, "proto": "udp", "source": None},
    }
    assert runner.calls[0]["verb"] == "firewall:deny"
    assert result.output.splitlines() == [
        "Removed the rule 51820/udp from any source on web-1.",
        "On web-2, 51820/udp from any source comes from hop3_firewall_rules in the inventory: "
        "remove it there, then run `hop setup`.",
        "No rule 51820/udp from any source on web-3: nothing removed. "
        "`hop firewall` lists the rules.",
    ]


def test_a_failed_run_exits_non_zero(runner):
    runner.status = "failed"
    result = invoke("firewall:allow", "8000")
    assert result.exit_code != 0


REPORT = {
    "loaded": True,
    "in_sync": True,
    "pending": False,
    "guard": False,
    "applied_rules": [
        {"port": 22, "proto": "tcp", "sources": ["192.0.2.0/24", "2001:db8::/32"],
         "origin": "ssh"},
        {"port": 80, "proto": "tcp", "sources": [], "origin": "web"},
        {"port": 8000, "proto": "tcp", "sources": ["10.0.0.0/8"], "origin": "cli"},
    ],
    "raw": "table inet hop3 {\n}\n",
}  # fmt: skip


def test_show_prints_a_table_per_host(runner):
    runner.reports = {"web-1": REPORT, "web-2": {"loaded": False, "applied_rules": None}}
    result = invoke("firewall")
    assert result.exit_code == 0, result.output
    (call,) = runner.calls
    assert call["verb"] == "firewall" and call["record"] is False and call["quiet"] is True
    assert call["extravars"] == {"hop3_firewall_action": "show", "hop3_firewall_raw": False}
    assert result.output.splitlines() == [
        "web-1: inbound traffic dropped unless allowed below (IPv4 and IPv6)",
        f"  {'PORT':<7}{'PROTO':<7}{'FROM':<34}RULE",
        f"  {'22':<7}{'tcp':<7}{'192.0.2.0/24, 2001:db8::/32':<34}SSH",
        f"  {'80':<7}{'tcp':<7}{'any':<34}web (nginx)",
        f"  {'8000':<7}{'tcp':<7}{'10.0.0.0/8':<34}firewall:allow",
        "",
        "web-2: no Hop3 firewall (run `hop setup`): all ports are open.",
    ]


def test_show_warns_when_the_live_rules_are_not_the_files(runner):
    runner.reports = {"web-1": {**REPORT, "in_sync": False, "pending": True, "guard": True}}
    output = invoke("firewall").output
    assert "differ from /etc/hop3/firewall.nft" in output
    assert "changed since they were applied" in output
    assert "rollback guard is armed" in output


def test_show_raw_and_json(runner):
    runner.reports = {"web-1": REPORT}
    result = invoke("firewall", "--raw")
    assert result.output == REPORT["raw"]
    assert runner.calls[0]["extravars"]["hop3_firewall_raw"] is True
    runner.reports = {"web-1": REPORT, "web-2": REPORT}
    assert invoke("firewall", "--raw").output.startswith("==> web-1 <==\ntable inet hop3")
    import json

    assert json.loads(invoke("firewall", "--json").output) == {"web-1": REPORT, "web-2": REPORT}
