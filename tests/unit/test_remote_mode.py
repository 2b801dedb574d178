"""`hop --remote USER@HOST ...` and the git remote `hop3`: which calls leave for
hop3-shell, to where, and with which words."""

from __future__ import annotations

import subprocess

import pytest

from hop3.cli import remote_mode
from hop3.errors import HopError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hop3@srv.example.com", ("hop3@srv.example.com", None)),
        ("hop3@srv.example.com:shop", ("hop3@srv.example.com", None)),
        ("ssh://hop3@10.0.0.5:2222/shop", ("hop3@10.0.0.5", "2222")),
        ("ssh://hop3@srv/shop.git", ("hop3@srv", None)),
    ],
)
def test_remotes_are_read(text, expected):
    assert remote_mode.parse_remote(text) == expected


@pytest.mark.parametrize("text", ["srv.example.com", "hop3@", "-oProxyCommand=x", "a b@c"])
def test_bad_remotes_are_refused(text):
    with pytest.raises(HopError, match="is not a remote"):
        remote_mode.parse_remote(text)


def test_explicit_remote_takes_the_rest_of_the_line(monkeypatch):
    assert remote_mode.remote_for(["--remote", "hop3@srv", "logs", "shop", "-f"]) == (
        "hop3@srv", None, ["logs", "shop", "-f"])  # fmt: skip
    assert remote_mode.remote_for(["--remote=hop3@srv", "apps"]) == ("hop3@srv", None, ["apps"])
    with pytest.raises(HopError, match="needs a host and a command"):
        remote_mode.remote_for(["--remote", "hop3@srv"])


def test_git_remote_hop3_is_used_only_without_an_inventory(monkeypatch, tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path / "app")], check=True)
    subprocess.run(["git", "-C", str(tmp_path / "app"), "remote", "add", "hop3",
                    "hop3@srv.example.com:shop"], check=True)  # fmt: skip
    monkeypatch.chdir(tmp_path / "app")
    monkeypatch.delenv("HOP3_INVENTORY", raising=False)
    monkeypatch.setenv("HOP3_CONFIG_DIR", str(tmp_path / "config"))
    assert remote_mode.remote_for(["apps"]) == ("hop3@srv.example.com", None, ["apps"])
    assert remote_mode.remote_for(["sandbox", "status"]) is None
    assert remote_mode.remote_for(["apps", "-i", "inv.yml"]) is None
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "inventory.yml").write_text("all: {}\n")
    assert remote_mode.remote_for(["apps"]) is None


def test_forward_runs_ssh_with_the_words_quoted(monkeypatch):
    seen = {}

    def fake_run(args, check):
        seen["args"] = args
        return subprocess.CompletedProcess(args, 3)

    monkeypatch.setattr(remote_mode.subprocess, "run", fake_run)
    code = remote_mode.forward("hop3@srv", "2222", ["config:set", "shop", "A=two words"])
    assert code == 3
    assert seen["args"] == ["ssh", "-o", "BatchMode=yes", "-p", "2222", "hop3@srv",
                            "config:set shop 'A=two words'"]  # fmt: skip
