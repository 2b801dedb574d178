"""The host-side backup tool (roles/hop3_backup/files/hop3-backup) without a
host: restic's errors as advice, the repository rules (a key made once, a
known repository never re-created silently), keys, retention flags, records,
and the Redis protocol reader."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import io
import json
import subprocess
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "roles/hop3_backup/files/hop3-backup"


@pytest.fixture
def tool(tmp_path, monkeypatch):
    loader = importlib.machinery.SourceFileLoader("hop3_backup_tool", str(TOOL))
    spec = importlib.util.spec_from_loader("hop3_backup_tool", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    monkeypatch.setattr(module, "KNOWN_REPOS", str(tmp_path / "etc/known.json"))
    monkeypatch.setattr(module, "SCHEDULES", str(tmp_path / "etc/apps"))
    monkeypatch.setattr(module, "SERVICES", str(tmp_path / "services"))
    monkeypatch.setattr(module, "PROBE_KEY", str(tmp_path / "probe"))
    return module


@pytest.fixture
def config(tmp_path):
    return {
        "repository": str(tmp_path / "repo"),
        "password_file": str(tmp_path / "etc/key"),
        "ssh_key": "/etc/hop3/backup/id_ed25519",
        "host": "web-1",
    }


class FakeRestic:
    """Stands for restic: answers `cat config` with a canned state, records the rest."""

    def __init__(self, state: str):
        self.state = state
        self.calls: list[tuple] = []

    def __call__(self, config, *args, password_file=None, check=True):
        self.calls.append(args)
        errors = {
            "ok": "",
            "missing": "Is there a repository at the following location?",
            "wrong-key": "Fatal: wrong password or no key found",
        }
        if args[:2] == ("cat", "config"):
            rc = 0 if self.state == "ok" else 1
            return subprocess.CompletedProcess(args, rc, "{}", errors[self.state])
        return subprocess.CompletedProcess(args, 0, "", "")


@pytest.mark.parametrize(
    ("stderr", "advice"),
    [
        ("Fatal: wrong password or no key found", "refused this host's key"),
        (
            "Fatal: unable to open config file: stat /r/config: no such file or directory\n"
            "Is there a repository at the following location?",
            "hop backup:init --new",
        ),
        (
            "Fatal: unable to save snapshot: write /r/data/x: no space left on device",
            "is full: free space",
        ),
        ("Fatal: something else", "restic failed on"),
    ],
)
def test_restic_errors_become_advice(tool, config, stderr, advice):
    assert advice in tool.explain(config, stderr)


def test_first_backup_makes_the_key_and_the_repository(tool, config, monkeypatch):
    restic = FakeRestic("missing")
    monkeypatch.setattr(tool, "restic", restic)
    result = tool.ensure_repository(config)
    assert result["key_created"] and result["repo_created"]
    key = Path(config["password_file"])
    assert len(key.read_text().strip()) >= 32
    assert key.stat().st_mode & 0o777 == 0o600
    assert ("init",) in restic.calls
    assert tool.known_repositories() == [config["repository"]]


def test_a_known_repository_that_went_missing_is_not_recreated(tool, config, monkeypatch):
    monkeypatch.setattr(tool, "restic", FakeRestic("missing"))
    Path(config["password_file"]).parent.mkdir(parents=True)
    Path(config["password_file"]).write_text("k" * 32)
    tool.remember_repository(config["repository"])
    with pytest.raises(tool.Failure, match="no restic repository"):
        tool.ensure_repository(config)


def test_a_wrong_key_changes_nothing(tool, config, monkeypatch):
    restic = FakeRestic("wrong-key")
    monkeypatch.setattr(tool, "restic", restic)
    Path(config["password_file"]).parent.mkdir(parents=True)
    Path(config["password_file"]).write_text("k" * 32)
    with pytest.raises(tool.Failure, match="refused this host's key"):
        tool.ensure_repository(config)
    assert restic.calls == [("cat", "config")]


def test_set_key_installs_once_and_refuses_another(tool, config):
    assert tool.cmd_set_key(config, "a" * 43 + "\n") == {"changed": True}
    assert tool.cmd_set_key(config, "a" * 43) == {"changed": False}
    with pytest.raises(tool.Failure, match="already has another backup key"):
        tool.cmd_set_key(config, "b" * 43)
    with pytest.raises(tool.Failure, match="not a Hop3 backup key"):
        tool.cmd_set_key(config, "short")


def test_retention_flags_and_count(tool, config, monkeypatch, tmp_path):
    calls = []

    def restic(config, *args, **kwargs):
        calls.append(args)
        groups = [{"keep": [{}], "remove": [{}, {}]}]
        return subprocess.CompletedProcess(args, 0, json.dumps(groups) + "\n", "")

    monkeypatch.setattr(tool, "restic", restic)
    assert tool.cmd_forget(config, "shop") == {"app": "shop", "removed": 0, "kept": None}
    assert calls == []  # no retention: nothing is ever forgotten
    tool.write_json(str(tmp_path / "etc/apps/shop.json"), {"keep": {"daily": 7, "last": 2}})
    assert tool.cmd_forget(config, "shop")["removed"] == 2
    args = calls[0]
    assert args[:2] == ("forget", "--json") and "--prune" in args
    assert args[args.index("--tag") + 1] == "app:shop"
    assert args[args.index("--host") + 1] == "web-1"
    assert args[args.index("--keep-last") + 1] == "2"
    assert args[args.index("--keep-daily") + 1] == "7"


def test_restored_records_never_replace_other_credentials(tool, tmp_path):
    staged = tmp_path / "staged.json"
    staged.write_text(json.dumps({"name": "shop", "password": "p1", "links": ["shop"]}))
    assert tool.place_record("postgres", "shop", str(staged)) == "shop"
    placed = tmp_path / "services/postgres/shop.json"
    assert placed.stat().st_mode & 0o777 == 0o600
    assert tool.place_record("postgres", "shop", str(staged)) is None  # same record: kept
    placed.write_text(json.dumps({"name": "shop", "password": "other"}))
    with pytest.raises(tool.Failure, match="other credentials"):
        tool.place_record("postgres", "shop", str(staged))


def test_linked_services_are_found_by_record(tool, tmp_path):
    folder = tmp_path / "services/redis"
    folder.mkdir(parents=True)
    (folder / "a.json").write_text(json.dumps({"links": ["shop"]}))
    (folder / "b.json").write_text(json.dumps({"links": ["blog"]}))
    assert tool.linked_services("shop", "redis") == ["a"]
    assert tool.linked_services("shop", "postgres") == []


def test_sftp_command_and_glob_escape(tool, config):
    config["repository"] = "sftp:hop3-backup@10.0.0.3:/srv/hop3/backup-store/restic"
    command = tool.sftp_command(config)
    assert command.startswith("ssh -i /etc/hop3/backup/id_ed25519 ")
    assert command.endswith("hop3-backup@10.0.0.3 -s sftp")
    assert tool.glob_escape("a*b?[c]\\") == "a\\*b\\?\\[c\\]\\\\"


def test_redis_replies_are_parsed(tool):
    redis = tool.Redis.__new__(tool.Redis)
    redis.reader = io.BytesIO(b"*2\r\n$1\r\n0\r\n*2\r\n$5\r\nk:a\r\n\r\n$-1\r\n:42\r\n+OK\r\n")
    assert redis.reply() == [b"0", [b"k:a\r\n", None]]
    assert redis.reply() == 42
    assert redis.reply() == b"OK"
    redis.reader = io.BytesIO(b"-NOPERM no\r\n")
    with pytest.raises(tool.Failure, match="NOPERM"):
        redis.reply()
