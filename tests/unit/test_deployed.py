"""The no-change fast path of `hop deploy` (hop3/deployed.py): the host's
report parsed, the decision, and the fingerprints."""

from __future__ import annotations

import json
import random
import subprocess

import pytest

from hop3 import deployed

FULL, CONFIG = "f" * 64, "c" * 64
STATE_SUM, ENV_SUM = "1" * 64, "2" * 64


# `nft list chain` of the app's route port, forwarding to its web instance.
ROUTE = """table ip hop3_routes {
	chain app_shop {
		meta l4proto 6 dnat to 127.0.0.1:20001
	}
}
"""


def state(**changes) -> dict:
    base = {
        "app": "shop",
        "current": "v3",
        "stopped": False,
        "instances": {
            "web": [{"id": "v3-20001", "number": 20001, "release": "v3"}],
            "worker": [{"id": "v3-1", "number": 1, "release": "v3"}],
        },
        "domains_extra": ["extra.example.com"],
        "domains_removed": ["old.example.com"],
        "route_port": 20000,
    }
    base.update(changes)
    return base


def report_text(
    *,
    record: str | None = None,
    sums: str | None = None,
    app_state: dict | None = None,
    locked: bool = False,
    nginx: str = "active",
    units: str | None = None,
    route: str = ROUTE,
) -> str:
    sep = "\n" + deployed._SEPARATOR + "\n"
    record = record if record is not None else (
        f"{FULL}\n{CONFIG}\n{STATE_SUM}  state.json\n{ENV_SUM}  env\n"
    )  # fmt: skip
    sums = sums if sums is not None else f"{STATE_SUM}  state.json\n{ENV_SUM}  env\n"
    units = units if units is not None else (
        "hop3-shop-web@v3-20001.service loaded active running Hop3 app shop\n"
        "hop3-shop-worker@v3-1.service loaded active running Hop3 app shop\n"
        "hop3-shop-web@v2-20002.service loaded inactive dead Hop3 app shop\n"
    )  # fmt: skip
    # state.json has no final newline: the separator starts with one.
    parts = [record, sums, json.dumps(app_state or state(), indent=2),
             "locked\n" if locked else "", f"{nginx}\n{units}", route]  # fmt: skip
    return sep.join(parts)


WEB_ONLY = "hop3-shop-web@v3-20001.service loaded active running x\n"
RESTARTING = (
    "hop3-shop-web@v3-20001.service loaded activating auto-restart x\n"
    "hop3-shop-worker@v3-1.service loaded active running x\n"
)


def test_a_full_report_is_parsed():
    found = deployed.parse_report(report_text())
    assert found is not None
    assert (found.fingerprint, found.config_fingerprint) == (FULL, CONFIG)
    assert found.digests_then == found.digests_now == {"state.json": STATE_SUM, "env": ENV_SUM}
    assert found.units["hop3-shop-web@v3-20001.service"] == "active"
    assert found.units["hop3-shop-web@v2-20002.service"] == "inactive"
    assert found.nginx_active and not found.locked
    assert found.unchanged(FULL)


@pytest.mark.parametrize(
    "why, text, fingerprint",
    [
        ("another source or spec", report_text(), "0" * 64),
        ("config set since", report_text(sums=f"{STATE_SUM}  state.json\n{'9' * 64}  env"), FULL),
        ("state changed since", report_text(sums=f"{'8' * 64}  state.json\n{ENV_SUM}  env"), FULL),
        ("another run holds the lock", report_text(locked=True), FULL),
        ("nginx is down", report_text(nginx="inactive"), FULL),
        ("the app is stopped", report_text(app_state=state(stopped=True)), FULL),
        ("a worker died", report_text(units=WEB_ONLY), FULL),
        ("an instance restarts", report_text(units=RESTARTING), FULL),
        ("the kernel lost the route", report_text(route=""), FULL),
        ("the route forwards elsewhere", report_text(route=ROUTE.replace("20001", "20005")), FULL),
    ],
)
def test_anything_else_runs_the_playbook(why, text, fingerprint):
    found = deployed.parse_report(text)
    assert found is not None, why
    assert not found.unchanged(fingerprint), why


def test_a_record_without_digests_is_not_trusted():
    found = deployed.parse_report(report_text(record=f"{FULL}\n{CONFIG}\n"))
    assert found is None or not found.unchanged(FULL)


@pytest.mark.parametrize(
    "text",
    ["", "garbage", deployed._SEPARATOR * 4, report_text(app_state=None).replace("{", "[", 1)],
)
def test_unexpected_output_is_no_report(text):
    found = deployed.parse_report(text)
    assert found is None or not found.unchanged(FULL)


def test_parser_survives_hostile_bytes_from_a_fixed_seed():
    rng = random.Random(1203)
    good = report_text()
    for _ in range(500):
        chars = list(good)
        for _ in range(rng.randint(1, 20)):
            chars[rng.randrange(len(chars))] = chr(rng.choice([0, 7, 10, 27, 64, 0xFFFD, 0x202E]))
        noisy = "".join(chars)
        found = deployed.parse_report(noisy)  # never raises
        if found is not None and found.unchanged(FULL):
            # Only noise that left every checked value intact may pass.
            assert found.fingerprint == FULL and found.digests_now == found.digests_then
    raw = bytes(rng.randrange(256) for _ in range(4096)).decode("utf-8", "replace")
    assert deployed.parse_report(raw) is None


def test_the_read_script_is_valid_shell_and_quotes_the_app():
    script = deployed.read_script("shop")
    subprocess.run(["sh", "-n", "-c", script], check=True)
    assert "/srv/hop3/apps/shop" in script and "'hop3-shop-*'" in script


def test_the_read_script_runs_and_reports_a_missing_app():
    done = subprocess.run(["sh", "-c", deployed.read_script("no-such-app-here")], check=False)
    assert done.returncode == 3  # no app dir: the CLI runs the playbook


def fingerprints(**changes):
    extravars = {
        "hop3_app_spec": {"name": "shop", "domains": []},
        "hop3_app_addons": [],
        "hop3_app_source_digest": "abc",
        "hop3_app_source_inline": "c29tZQ==",
    }
    extravars.update(changes)
    return deployed.fingerprints(extravars, {"ansible_host": "10.0.0.1"})


def test_fingerprints_are_stable_and_leave_the_inline_copy_out():
    assert fingerprints() == fingerprints()
    assert fingerprints() == fingerprints(hop3_app_source_inline="")


def test_a_code_change_keeps_the_config_fingerprint():
    full, config = fingerprints()
    full2, config2 = fingerprints(hop3_app_source_digest="def")
    assert full != full2 and config == config2


def test_a_spec_change_changes_both():
    full, config = fingerprints()
    full2, config2 = fingerprints(hop3_app_spec={"name": "shop", "domains": ["a.example.com"]})
    assert full != full2 and config != config2


def test_the_unchanged_report_matches_a_deploy_report():
    found = deployed.parse_report(report_text())
    spec = {"domains": ["shop.example.com", "old.example.com"]}
    report = deployed.unchanged_report("shop", "web-1", "10.0.0.1", spec, found)
    assert report["release"] == "v3" and report["built"] is False and report["unchanged"]
    assert report["domains"] == ["shop.web-1", "shop.example.com", "extra.example.com"]
    assert report["ports"] == [20001] and report["address"] == "10.0.0.1"


def test_the_plan_skips_unchanged_hosts_and_the_vhost_of_code_only_ones(tmp_path, monkeypatch):
    from hop3.targets import Target

    inventory = tmp_path / "hosts.yml"
    hosts = "".join(f"    {h}: {{ansible_host: 10.0.0.{i}}}\n" for i, h in enumerate("abc"))
    inventory.write_text("all:\n  hosts:\n" + hosts)
    target = Target(inventory=inventory, limit="all", hosts=["a", "b", "c"])
    extravars = {"hop3_app_spec": {"name": "shop", "tls": {"mode": "off"}},
                 "hop3_app_addons": [], "hop3_app_source_digest": "new"}  # fmt: skip
    host_vars = deployed.host_vars_of(target)

    def read_host(_target, host, app):
        assert app == "shop"
        full, config = deployed.fingerprints(extravars, host_vars[host])
        if host == "a":  # this very deploy
            return deployed.parse_report(report_text(record=report_text().split("\n@@")[0]
                                                     .replace(FULL, full)))  # fmt: skip
        if host == "b":  # the same config, another source
            return deployed.parse_report(report_text().replace(CONFIG, config))
        return None  # c: could not be read

    monkeypatch.setattr(deployed, "read_host", read_host)
    plan = deployed.plan(target, "shop", extravars)
    assert set(plan.unchanged) == {"a"}
    assert plan.proxy_unchanged == ["b"]
    assert set(plan.fingerprints) == {"a", "b", "c"}

    extravars["hop3_app_spec"]["tls"] = {"mode": "self-signed"}  # certificates age: check them
    host_vars = deployed.host_vars_of(target)
    assert deployed.plan(target, "shop", extravars).proxy_unchanged == []
