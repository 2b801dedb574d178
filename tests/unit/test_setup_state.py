"""The record that lets `hop setup` leave out an unchanged host (role
hop3_setup_state), without hosts: its module run as Ansible runs it, on files
under tmp_path, and the fingerprint of a setup's inputs rendered by a real
ansible-playbook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from hop3.cli.platform import setup_steps_summary

from . import localplay

ROLE = Path(__file__).resolve().parents[2] / "roles" / "hop3_setup_state"
MODULE = ROLE / "library" / "hop3_setup_state.py"


def run_module(**args) -> dict:
    return localplay.run_module(MODULE, args)


def host(tmp_path: Path) -> dict:
    """A small 'host': a config file, a link, a log, a directory and a probe."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "app.conf").write_text("a = 1\n")
    (tmp_path / "etc" / "current").symlink_to("app.conf")
    (tmp_path / "log").write_text("line 1\n")
    (tmp_path / "probed").write_text("rule 1\n")
    return {
        "path": str(tmp_path / "state.json"),
        "paths": [
            {"path": str(tmp_path / "etc"), "state": "directory"},
            {"path": str(tmp_path / "etc" / "app.conf"), "state": "file"},
            {"path": str(tmp_path / "etc" / "current"), "state": "link"},
            {"path": str(tmp_path / "etc" / "gone"), "state": "absent"},
            {"path": str(tmp_path / "log"), "state": "touch"},
        ],
        "probes": [["cat", str(tmp_path / "probed")]],
    }


def record(tmp_path: Path, fingerprint: str = "f1") -> dict:
    spec = host(tmp_path)
    done = run_module(state="record", fingerprint=fingerprint, **spec)
    assert done["changed"] is False and not done.get("failed"), done
    return spec


def begin(spec: dict, fingerprint: str = "f1", **more) -> dict:
    return run_module(state="begin", fingerprint=fingerprint, path=spec["path"], **more)


def test_a_host_as_its_last_setup_left_it_is_unchanged_and_keeps_its_record(tmp_path):
    spec = record(tmp_path)
    result = begin(spec)
    assert result["unchanged"] is True and result["changed"] is False
    assert result["fingerprint"] == "f1"
    assert result["ansible_facts"]["hop3_report"]["setup"] == "unchanged"
    assert Path(spec["path"]).exists()
    assert oct(Path(spec["path"]).stat().st_mode & 0o777) == "0o600"


def test_a_log_that_grew_is_not_a_change(tmp_path):
    spec = record(tmp_path)
    with open(tmp_path / "log", "a") as f:
        f.write("line 2\n")
    assert begin(spec)["unchanged"] is True


def test_new_inputs_run_every_step_and_remove_the_record(tmp_path):
    spec = record(tmp_path)
    result = begin(spec, fingerprint="f2")
    assert result["unchanged"] is False
    assert "variables changed" in result["reason"]
    assert result["ansible_facts"]["hop3_report"]["setup"] == "converging"
    assert not Path(spec["path"]).exists()


def test_an_edited_file_is_named_as_the_reason(tmp_path):
    spec = record(tmp_path)
    (tmp_path / "etc" / "app.conf").write_text("a = 2\n")
    result = begin(spec)
    assert result["unchanged"] is False
    assert result["reason"] == f"{tmp_path / 'etc' / 'app.conf'} changed since the last setup"
    assert not Path(spec["path"]).exists()


def test_a_mode_a_link_or_a_path_that_came_back_each_count(tmp_path):
    changes = [
        lambda: os.chmod(tmp_path / "log", 0o600),
        lambda: ((tmp_path / "etc" / "current").unlink(),
                 (tmp_path / "etc" / "current").symlink_to("other")),
        lambda: (tmp_path / "etc" / "gone").write_text("back\n"),
        lambda: os.chmod(tmp_path / "etc", 0o700),
    ]  # fmt: skip
    for change in changes:
        for child in sorted(tmp_path.rglob("*"), reverse=True):
            child.unlink() if not child.is_dir() or child.is_symlink() else child.rmdir()
        spec = record(tmp_path)
        change()
        assert begin(spec)["unchanged"] is False


def test_a_probe_whose_output_changed_counts(tmp_path):
    spec = record(tmp_path)
    (tmp_path / "probed").write_text("rule 1\nrule 2\n")
    result = begin(spec)
    assert result["unchanged"] is False
    assert result["reason"].startswith(f"the output of `cat {tmp_path / 'probed'}` changed")


def test_full_runs_every_step_and_removes_the_record(tmp_path):
    spec = record(tmp_path)
    result = begin(spec, full=True)
    assert result["unchanged"] is False and "--full" in result["reason"]
    assert not Path(spec["path"]).exists()


def test_no_record_or_a_damaged_one_runs_every_step(tmp_path):
    path = tmp_path / "state.json"
    assert "no record" in run_module(state="begin", fingerprint="f", path=str(path))["reason"]
    for damaged in (b"{not json", b'{"version": 99}', b"\xff\xfe\x00", b'{"version": 1}'):
        path.write_bytes(damaged)
        result = run_module(state="begin", fingerprint="f", path=str(path))
        assert result["unchanged"] is False and not result.get("failed"), result
        assert not path.exists()


def test_packages_are_watched_by_install_status(tmp_path):
    spec = {"path": str(tmp_path / "state.json"), "packages": ["dpkg", "hop3-no-such-package"]}
    run_module(state="record", fingerprint="f", **spec)
    saved = json.loads((tmp_path / "state.json").read_text())["observed"]
    assert saved["package dpkg"].startswith("ii")
    assert saved["package hop3-no-such-package"] == "not installed"
    assert begin(spec, fingerprint="f")["unchanged"] is True


def test_a_path_entry_without_a_path_fails_clearly(tmp_path):
    result = run_module(state="record", fingerprint="f", path=str(tmp_path / "s.json"),
                        paths=[{"state": "file"}])  # fmt: skip
    assert result["failed"] and "has no path" in result["msg"]


def fingerprints(tmp_path: Path, runs: list[dict]) -> list[str]:
    """The role's fingerprint as ansible-playbook renders it, once per extra-vars set."""
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    out = tmp_path / "fp.txt"
    play = [{
        "name": "Fingerprint",
        "hosts": "localhost",
        "gather_facts": False,
        "vars": defaults,
        "tasks": [{"name": "Save", "ansible.builtin.copy": {
            "content": "{{ hop3_setup_state_fingerprint }}", "dest": str(out), "mode": "0600"}}],
    }]  # fmt: skip
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump(play, sort_keys=False))
    found = []
    for extravars in runs:
        proc = subprocess.run(
            [str(Path(sys.executable).with_name("ansible-playbook")), "-c", "local",
             "-i", "localhost,", "-e", f"ansible_python_interpreter={sys.executable}",
             "-e", json.dumps(extravars), str(playbook)],
            capture_output=True, text=True, check=False, timeout=180,
            env={**os.environ, "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
                 "ANSIBLE_LOCALHOST_WARNING": "false"},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        found.append(out.read_text())
    return found


def test_the_fingerprint_follows_the_inputs_and_ignores_what_changes_each_run(tmp_path):
    base = {"hop3_wheelhouse_sha256": "aaa", "hop3_firewall_rules": [{"port": 8080}]}
    noise = {"hop3_audit": {"time": "now"}, "hop3_app_lock_run": "r2",
             "hop3_setup_state_full": True, "unrelated_var": 1}  # fmt: skip
    same, noisy, new_sha, new_rule = fingerprints(tmp_path, [
        base,
        {**base, **noise},
        {**base, "hop3_wheelhouse_sha256": "bbb"},
        {**base, "hop3_firewall_rules": [{"port": 8081}]},
    ])  # fmt: skip
    assert len(same) == 64
    assert same == noisy
    assert len({same, new_sha, new_rule}) == 3


def test_the_summary_names_the_hosts_left_out_and_with_v_why_the_others_ran():
    reports = {
        "web-1": {"setup": "unchanged", "reason": "nothing changed since the last setup"},
        "web-2": {"setup": "converging", "reason": "/etc/x changed since the last setup"},
    }
    quiet = setup_steps_summary(reports, verbose=0)
    assert quiet == ["Unchanged since their last setup, checked in one step: web-1 "
                     "(hop setup --full runs every step)."]  # fmt: skip
    assert setup_steps_summary(reports, verbose=1)[1] == (
        "web-2: every step ran: /etc/x changed since the last setup."
    )
    assert setup_steps_summary({}, verbose=1) == []
