"""`hop users:*` on the controller: input checked before any host is touched,
and what reaches playbooks/users.yml. The runner is replaced by a recorder
(the playbook itself runs in tests/integration/test_hop3_shell.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hop3.runner import HostStats, RunResult
from hop3.targets import Target


@pytest.fixture
def calls(monkeypatch, tmp_path):
    recorded: list[dict] = []

    def record(name, **kwargs):
        recorded.append({"playbook": name, **kwargs})
        return RunResult(
            verb=kwargs["verb"], target="web", status="successful", rc=0, duration=0.1,
            started="2024-01-01T00:00:00Z", run_dir=tmp_path,
            stats={"web-1": HostStats(changed=1)}, reports={"web-1": {"users": []}},
        )  # fmt: skip

    monkeypatch.setattr("hop3.runner.run_playbook", record)
    target = Target(inventory=tmp_path / "inventory.yml", limit="web", hosts=["web-1"])
    monkeypatch.setattr("hop3.targets.resolve_target", lambda target_, inventory: target)
    return recorded


def run_main(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    from hop3.cli import main

    monkeypatch.setattr("sys.argv", ["hop", *args])
    monkeypatch.setenv("HOP3_INVENTORY", "/dev/null")  # never the git-remote mode
    try:
        main.main()
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def pub(tmp_path) -> Path:
    key = tmp_path / "ana"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return Path(str(key) + ".pub")


def test_add_passes_the_key_line_role_and_apps(monkeypatch, capsys, calls, pub):
    code, out, _ = run_main(monkeypatch, capsys, "users:add", "ana", "--key", str(pub),
                            "--role", "deployer", "--apps", "shop, blog")  # fmt: skip
    assert code == 0
    extravars = calls[0]["extravars"]
    assert calls[0]["playbook"] == "users" and calls[0]["verb"] == "users:add"
    assert extravars == {
        "hop3_users_action": "add", "hop3_users_name": "ana", "hop3_users_role": "deployer",
        "hop3_users_apps": ["shop", "blog"], "hop3_users_keys": [pub.read_text().strip()],
    }  # fmt: skip
    assert "Added deployer ana" in out


def test_viewer_without_apps_sees_every_app(monkeypatch, capsys, calls, pub):
    run_main(monkeypatch, capsys, "users:add", "vic", "--key", str(pub), "--role", "viewer")
    assert calls[0]["extravars"]["hop3_users_apps"] == ["*"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["users:add", "Ana", "--key", "KEY", "--role", "admin"], "'Ana' is not a valid user name"),
        (["users:add", "ana", "--key", "KEY", "--role", "deployer"], "A deployer needs the apps"),
        (["users:add", "ana", "--key", "KEY", "--role", "viewer", "--apps", "a b"],
         "Not an app name"),
        (["users:add", "ana", "--key", "/nonexistent.pub", "--role", "admin"],
         "Cannot read the public key file /nonexistent.pub"),
        (["users:add", "ana", "--key", "PRIVATE", "--role", "admin"], "is a private key"),
        (["users:set", "ana"], "Nothing to change"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_before_any_run(monkeypatch, capsys, calls, pub, args, message):
    private = pub.with_suffix("")
    args = [str(pub) if a == "KEY" else str(private) if a == "PRIVATE" else a for a in args]
    code, _, err = run_main(monkeypatch, capsys, *args)
    assert code != 0 and message in err
    assert calls == []


def test_remove_and_list(monkeypatch, capsys, calls):
    code, out, _ = run_main(monkeypatch, capsys, "users:remove", "ana")
    assert code == 0
    assert calls[0]["extravars"] == {"hop3_users_action": "remove", "hop3_users_name": "ana"}
    assert "its keys no longer open a session" in out
    run_main(monkeypatch, capsys, "users:list")
    assert calls[1]["extravars"] == {"hop3_users_action": "list"} and not calls[1]["record"]
