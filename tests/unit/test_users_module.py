"""Module hop3_users (role hop3_users) through a real `ansible-playbook`, with
its files under tmp_path: the registry and the forced-command key file change
together, fingerprints are those of ssh-keygen, and bad input changes nothing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from . import localplay


def keypair(tmp_path: Path, name: str) -> tuple[str, str]:
    """(public key line, fingerprint) of a new ed25519 key, as ssh-keygen reports it."""
    path = tmp_path / f"{name}_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@laptop",
                    "-f", str(path)], check=True)  # fmt: skip
    line = (tmp_path / f"{name}_key.pub").read_text().strip()
    fingerprint = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(path) + ".pub"],
        capture_output=True, text=True, check=True,
    ).stdout.split()[1]  # fmt: skip
    return line, fingerprint


def task(tmp_path: Path, register: str, **params) -> dict:
    return {
        "name": register,
        "hop3_users": {
            "users_file": str(tmp_path / "users.json"),
            "authorized_keys": str(tmp_path / "ssh" / "authorized_keys"),
            **params,
        },
        "register": register,
        "ignore_errors": True,
    }


def run(tmp_path: Path, *tasks: dict) -> dict:
    return localplay.run_tasks(tmp_path, list(tasks), "hop3_users")


@pytest.fixture
def keys(tmp_path):
    return {name: keypair(tmp_path, name) for name in ("ana", "bob", "vic")}


def test_add_set_remove_keep_both_files_in_step(tmp_path, keys):
    ana, ana_fp = keys["ana"]
    bob, bob_fp = keys["bob"]
    results = run(
        tmp_path,
        task(tmp_path, "add_ana", action="add", name="ana", role="deployer", apps=["shop"],
             keys=[ana]),
        task(tmp_path, "add_bob", action="add", name="bob", role="admin", apps=["*"], keys=[bob]),
        task(tmp_path, "again", action="set", name="ana", role="deployer", apps=["shop"]),
        task(tmp_path, "more_apps", action="set", name="ana", apps=["shop", "blog"]),
        task(tmp_path, "listed", action="list"),
    )  # fmt: skip
    assert results["add_ana"]["changed"] and results["add_bob"]["changed"]
    assert not results["again"]["changed"]
    assert results["more_apps"]["changed"]
    users = {u["name"]: u for u in results["listed"]["users"]}
    assert users["ana"]["apps"] == ["blog", "shop"] and users["ana"]["keys"] == [ana_fp]
    assert users["bob"] == {**users["bob"], "role": "admin", "apps": ["*"], "keys": [bob_fp]}
    registry = json.loads((tmp_path / "users.json").read_text())
    assert oct((tmp_path / "users.json").stat().st_mode & 0o777) == "0o600"
    assert registry["users"]["ana"]["keys"][0]["fingerprint"] == ana_fp
    lines = (tmp_path / "ssh" / "authorized_keys").read_text().splitlines()
    body = ana.split()[1]
    assert (f'restrict,command="/opt/hop3/bin/hop3-shell --key {ana_fp}" ssh-ed25519 {body} '
            "hop3:ana") in lines  # fmt: skip
    assert not any("laptop" in line for line in lines)  # the user's comment is not kept

    removed = run(tmp_path, task(tmp_path, "gone", action="remove", name="ana"))
    assert removed["gone"]["changed"]
    text = (tmp_path / "ssh" / "authorized_keys").read_text()
    assert ana_fp not in text and body not in text and bob_fp in text


def test_a_key_belongs_to_one_user(tmp_path, keys):
    ana, ana_fp = keys["ana"]
    results = run(
        tmp_path,
        task(tmp_path, "ana", action="add", name="ana", role="viewer", apps=["*"], keys=[ana]),
        task(tmp_path, "copy", action="add", name="eve", role="admin", apps=["*"], keys=[ana]),
    )  # fmt: skip
    assert results["copy"]["failed"]
    assert results["copy"]["msg"].startswith(f"Key {ana_fp} already belongs to user ana")
    registry = json.loads((tmp_path / "users.json").read_text())
    assert sorted(registry["users"]) == ["ana"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"action": "add", "name": "Ana", "role": "admin", "keys": ["x"]}, "is not valid"),
        ({"action": "add", "name": "ana", "role": "root", "keys": ["x"]}, "is not one of"),
        ({"action": "add", "name": "ana", "role": "admin"}, "needs a public key"),
        ({"action": "add", "name": "ana", "role": "admin", "keys": ["ssh-ed25519"]},
         "is not an SSH public key"),
        ({"action": "add", "name": "ana", "role": "admin", "keys": ["ssh-ed25519 AAAA%%%"]},
         "not valid base64"),
        ({"action": "add", "name": "ana", "role": "admin",
          "keys": ['command="sh" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI x']},
         "is not an SSH public key"),
        ({"action": "set", "name": "nobody", "role": "admin"}, "There is no user named nobody"),
        ({"action": "remove", "name": "nobody"}, "There is no user named nobody"),
        ({"action": "add", "name": "ana", "role": "deployer", "apps": ["a b"], "keys": ["x"]},
         "is not an app name"),
    ],
)  # fmt: skip
def test_bad_input_fails_before_any_file_is_written(tmp_path, params, message):
    results = run(tmp_path, task(tmp_path, "bad", **params))
    assert results["bad"]["failed"] and message in results["bad"]["msg"]
    assert not (tmp_path / "users.json").exists()
    assert not (tmp_path / "ssh" / "authorized_keys").exists()


def test_a_key_of_another_type_inside_is_refused(tmp_path, keys):
    ana, _ = keys["ana"]
    forged = "ssh-rsa " + ana.split()[1]
    results = run(tmp_path, task(tmp_path, "bad", action="add", name="ana", role="admin",
                                 apps=["*"], keys=[forged]))  # fmt: skip
    assert "holds a ssh-ed25519 key" in results["bad"]["msg"]
