"""The audit log (roles/hop3_auditlog/module_utils/hop3_auditlog.py, through
hop3.auditlog): masking, entries, appending and reading back with rotated
files, --since, what the runner records, and `hop audit:log`'s validation."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import shutil
import subprocess
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from hop3 import auditlog, runner
from hop3.cli.main import cli

NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)


# --- masking -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "masked"),
    [
        (["hop", "config:set", "shop", "SECRET_TOKEN=s3cr3t", "DEBUG=1", "--no-restart"],
         ["hop", "config:set", "shop", "SECRET_TOKEN=***", "DEBUG=***", "--no-restart"]),
        (["hop", "ps:scale", "shop", "web=2"], ["hop", "ps:scale", "shop", "web=2"]),
        (["hop", "x", "API_KEY=abc", "db_password=x", "MODE=fast"],
         ["hop", "x", "API_KEY=***", "db_password=***", "MODE=fast"]),
        (["hop", "backup", "shop", "--key-file", "/root/key.txt", "-t", "web"],
         ["hop", "backup", "shop", "--key-file", "***", "-t", "web"]),
        (["hop", "x", "--password=hunter2", "--token", "t", "--app", "shop"],
         ["hop", "x", "--password=***", "--token", "***", "--app", "shop"]),
        (["hop", "pg:create", "--show-secrets", "shopdb"],
         ["hop", "pg:create", "--show-secrets", "shopdb"]),
        (["hop", "x", "postgres://shop:pw@db:5432/shop"],
         ["hop", "x", "postgres://shop:***@db:5432/shop"]),
    ],
)  # fmt: skip
def test_mask_argv(argv, masked):
    assert auditlog.mask_argv(argv) == masked
    assert auditlog.mask_argv(masked) == masked  # masking twice changes nothing


def test_current_command_is_masked(monkeypatch):
    monkeypatch.setattr("sys.argv", ["/x/bin/hop", "config:set", "shop", "TOKEN=abc"])
    assert auditlog.current_command() == ["hop", "config:set", "shop", "TOKEN=***"]
    auditlog.set_command(["hop", "restart", "shop"])
    try:
        assert auditlog.current_command() == ["hop", "restart", "shop"]
    finally:
        auditlog.set_command(None)


# --- entries and identity ------------------------------------------------------


def test_entry_shape():
    entry = auditlog.make_entry(
        "alice@laptop", ["hop", "config:set", "shop", "A_SECRET=x"], result="failed",
        app="shop", via="cli", release="v3", error="boom\nsecond line", host="web-1", now=NOW,
    )  # fmt: skip
    assert list(entry) == list(auditlog.FIELDS)
    assert entry == {
        "time": "2026-11-20T12:00:00Z", "host": "web-1", "user": "alice@laptop", "key": None,
        "source": None, "via": "cli", "command": ["hop", "config:set", "shop", "A_SECRET=***"],
        "step": None, "app": "shop", "result": "failed", "release": "v3", "error": "boom",
    }  # fmt: skip
    ok = auditlog.make_entry("bob", ["hop", "deploy"], error="ignored", now=NOW)
    assert ok["error"] is None and ok["app"] is None and ok["result"] == "ok"


@pytest.mark.parametrize(("field", "value"), [("result", "maybe"), ("via", "carrier-pigeon")])
def test_entry_rejects_unknown_values(field, value):
    with pytest.raises(ValueError, match=field):
        auditlog.make_entry("bob", ["hop"], **{field: value})


def test_identity_from_controller_and_from_hop3_shell():
    local = auditlog.identity({})
    assert local["via"] == "cli" and "@" in local["user"]
    assert local["key"] is None and local["source"] is None
    env = {"HOP3_AUDIT_USER": "carol", "HOP3_AUDIT_KEY": "SHA256:abc",
           "HOP3_AUDIT_SOURCE": "10.0.0.9", "HOP3_AUDIT_VIA": "git"}  # fmt: skip
    assert auditlog.identity(env) == {
        "user": "carol",
        "key": "SHA256:abc",
        "source": "10.0.0.9",
        "via": "git",
    }


@pytest.mark.skipif(not shutil.which("ssh-keygen"), reason="needs ssh-keygen")
def test_session_key_matches_ssh_keygen(tmp_path):
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    expected = subprocess.run(["ssh-keygen", "-lf", f"{key}.pub"], check=True,
                              capture_output=True, text=True).stdout.split()[1]  # fmt: skip
    auth = tmp_path / "auth"
    auth.write_text(f"publickey {key.with_suffix('.pub').read_text()}")
    assert auditlog.session_key({"SSH_USER_AUTH": str(auth)}) == expected
    assert auditlog.session_key({"SSH_USER_AUTH": str(tmp_path / "gone")}) is None
    assert auditlog.session_key({}) is None


def test_key_fingerprint_checks_the_blob():
    blob = b"\x00\x00\x00\x0bssh-ed25519" + b"\x00" * 36
    line = "ssh-ed25519 " + base64.b64encode(blob).decode()
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    assert auditlog.key_fingerprint(line) == f"SHA256:{digest}"
    assert auditlog.key_fingerprint("ssh-rsa " + base64.b64encode(blob).decode()) is None
    assert auditlog.key_fingerprint("garbage") is None


def test_session_source():
    assert auditlog.session_source({"SSH_CONNECTION": "10.1.2.3 5000 10.1.2.4 22"}) == "10.1.2.3"
    assert auditlog.session_source({"SSH_CLIENT": "::1 5000 22"}) == "::1"
    assert auditlog.session_source({}) is None


# --- appending and reading -------------------------------------------------------


def entry_at(time: str, app: str | None = "shop", **fields) -> dict:
    moment = datetime.fromisoformat(time.replace("Z", "+00:00"))
    return auditlog.make_entry("u", ["hop", "deploy"], app=app, now=moment, host="h", **fields)


def test_append_writes_one_line_per_entry(tmp_path):
    log_dir = tmp_path / "log"
    for n in range(3):
        auditlog.append_entry(entry_at(f"2026-11-20T10:0{n}:00Z"), str(log_dir))
    lines = (log_dir / "audit.jsonl").read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["app"] == "shop" for line in lines)
    assert oct((log_dir / "audit.jsonl").stat().st_mode & 0o777) == "0o640"


def test_concurrent_writers_never_interleave(tmp_path):
    log_dir = str(tmp_path)
    big = "x" * 20000  # larger than a pipe buffer: one write(2) must still keep it whole
    pids = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            for _ in range(25):
                entry = {**entry_at("2026-11-20T10:00:00Z"), "user": big}
                auditlog.append_entry(entry, log_dir)
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        assert os.waitpid(pid, 0)[1] == 0
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert len(lines) == 100 and all(json.loads(line)["user"] == big for line in lines)


def test_read_entries_across_rotations(tmp_path):
    """logrotate with delaycompress leaves audit.jsonl.1 plain and gzips older ones."""

    def write(name, *entries):
        data = "".join(json.dumps(e) + "\n" for e in entries)
        if name.endswith(".gz"):
            with gzip.open(tmp_path / name, "wt") as handle:
                handle.write(data)
        else:
            (tmp_path / name).write_text(data)

    write("audit.jsonl.3.gz", entry_at("2026-11-01T00:00:00Z"))
    write("audit.jsonl.2.gz", entry_at("2026-11-08T00:00:00Z", app="blog"))
    write("audit.jsonl.1", entry_at("2026-11-15T00:00:00Z"), entry_at("2026-11-16T00:00:00Z"))
    write("audit.jsonl", entry_at("2026-11-20T00:00:00Z", app=None))
    (tmp_path / "audit.jsonl").open("a").write('{"time": "2026-11-2')  # a line cut short
    (tmp_path / "other.log").write_text("not ours\n")

    files = [os.path.basename(p) for p in auditlog.log_files(str(tmp_path))]
    assert files == ["audit.jsonl.3.gz", "audit.jsonl.2.gz", "audit.jsonl.1", "audit.jsonl"]
    times = [e["time"][:10] for e in auditlog.read_entries(str(tmp_path))]
    assert times == ["2026-11-01", "2026-11-08", "2026-11-15", "2026-11-16", "2026-11-20"]
    shop = auditlog.read_entries(str(tmp_path), app="shop")
    assert [e["time"][:10] for e in shop] == ["2026-11-01", "2026-11-15", "2026-11-16"]
    since = auditlog.parse_since("2026-11-10")
    assert len(auditlog.read_entries(str(tmp_path), app="shop", since=since)) == 2
    assert len(auditlog.read_entries(str(tmp_path), limit=2)) == 2
    assert auditlog.read_entries(str(tmp_path / "missing")) == []


# --- --since -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", "2026-11-20T10:00:00Z"),
        ("30m", "2026-11-20T11:30:00Z"),
        ("3d", "2026-11-17T12:00:00Z"),
        ("1w", "2026-11-13T12:00:00Z"),
        ("2026-11-01", "2026-11-01T00:00:00Z"),
        ("2026-11-01T14:30Z", "2026-11-01T14:30:00Z"),
        ("2026-11-01T14:30:00+02:00", "2026-11-01T12:30:00Z"),
    ],
)
def test_parse_since(text, expected):
    assert auditlog.format_time(auditlog.parse_since(text, now=NOW)) == expected


@pytest.mark.parametrize("text", ["yesterday", "2h ago", "-3d", "2026-13-01", ""])
def test_parse_since_rejects(text):
    with pytest.raises(ValueError, match="not a time"):
        auditlog.parse_since(text, now=NOW)


# --- what the runner records ------------------------------------------------------------


@pytest.mark.parametrize(
    ("playbook", "verb", "extravars", "audited"),
    [
        ("deploy", "deploy", {"hop3_app_name": "shop"}, True),
        ("config", "config:set", {"hop3_app_name": "shop"}, True),
        ("app-state", "restart", {"hop3_app_name": "shop"}, True),
        ("setup", "setup", {}, True),
        ("pg", "pg:create", {"hop3_pg_action": "create"}, True),
        ("pg", "pg:list", {"hop3_pg_action": "list"}, False),
        ("backup", "backup:key", {"hop3_backup_action": "set_key"}, True),
        ("backup", "backup:key", {"hop3_backup_action": "key"}, False),
        ("backup", "backup:check", {"hop3_backup_action": "check"}, False),
        ("firewall", "firewall:allow", {"hop3_firewall_action": "allow"}, True),
        ("firewall", "firewall", {"hop3_firewall_action": "show"}, False),
        ("app-info", "rollback", {"hop3_app_name": "shop"}, False),  # its read-only pre-check
        ("deploy", "catalog:install", {"hop3_app_name": "kinto"}, True),
        ("deploy", "catalog:upgrade", {"hop3_app_name": "kinto"}, True),
        ("app-info", "catalog:install", {"hop3_app_name": "kinto"}, False),
        ("status", "status", {}, False),
        ("auditlog", "audit:log", {}, False),
    ],
)
def test_which_runs_are_audited(playbook, verb, extravars, audited):
    assert runner.changes_state(playbook, verb, extravars) is audited


def test_every_audited_playbook_ends_with_the_record_play():
    from hop3 import resources

    for name in runner.AUDITED_PLAYBOOKS:
        text = resources.playbook(name).read_text().rstrip()
        assert text.endswith("ansible.builtin.import_playbook: audit-record.yml"), name


def test_audited_app():
    assert runner.audited_app({"hop3_app_name": "shop"}) == "shop"
    assert runner.audited_app({"hop3_backup_app": "blog"}) == "blog"
    assert runner.audited_app({"hop3_postgresql_name": "db"}) is None


# --- hop audit:log ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["audit:log", "--since", "last tuesday"], "--since 'last tuesday' is not a time"),
        (["audit:log", "Bad_App!"], "app name"),
    ],
)
def test_audit_log_rejects_bad_input_before_any_run(monkeypatch, args, message):
    def no_run(*_args, **_kwargs):
        raise AssertionError("no playbook may run on bad input")

    monkeypatch.setattr(runner, "run_playbook", no_run)
    result = CliRunner().invoke(cli, args, standalone_mode=False)
    assert result.exception is not None
    assert message.lower() in str(getattr(result.exception, "message", "")).lower()


def test_the_step_of_a_command_of_several_runs_is_shown():
    from hop3.cli.auditlog import command_text

    upgrade = ["hop", "catalog", "upgrade", "kinto", "-t", "web-1"]
    assert command_text({"command": upgrade, "step": "restore"}).endswith("  [restore]")
    assert "[" not in command_text({"command": upgrade, "step": "catalog:upgrade"})
    assert "[" not in command_text({"command": ["hop", "deploy", "."], "step": "deploy"})
    assert "[" not in command_text({"command": ["hop", "deploy", "."]})
    assert auditlog.audit_var("shop", {}, step="backup")["step"] == "backup"
