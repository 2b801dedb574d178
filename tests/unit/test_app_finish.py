"""What the last module call of a run does itself when nothing follows it on
the host (roles/hop3_app/module_utils/hop3_app_finish.py): the deploy record
that hop3/deployed.py reads, and the audit entry."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hop3 import deployed

ROLES = Path(__file__).resolve().parents[2] / "roles"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def finish(monkeypatch):
    # The module_utils it imports, under the names Ansible gives them.
    for name in ("hop3_app_routes", "hop3_app_host"):
        util = _load(name, ROLES / f"hop3_app/module_utils/{name}.py")
        monkeypatch.setitem(sys.modules, f"ansible.module_utils.{name}", util)
    return _load("hop3_app_finish", ROLES / "hop3_app/module_utils/hop3_app_finish.py")


@pytest.fixture
def app_dir(tmp_path):
    root = tmp_path / "apps" / "shop"
    root.mkdir(parents=True)
    (root / "state.json").write_text(json.dumps({"current": "v3", "releases": []}))
    (root / "env").write_text('{"A": "1"}')
    return root


def test_the_record_is_what_the_raw_task_writes(finish, app_dir):
    """Byte for byte what tasks/record.yml's `sha256sum state.json env` makes."""
    finish.write_deployed_record(str(app_dir), ["f" * 64, "c" * 64])
    sums = subprocess.run(["sha256sum", "state.json", "env"], cwd=app_dir, check=True,
                          capture_output=True, text=True).stdout  # fmt: skip
    assert (app_dir / ".hop3-deployed").read_text() == f"{'f' * 64}\n{'c' * 64}\n{sums}"
    assert not (app_dir / ".hop3-deployed.new").exists()


def test_hop3_deployed_reads_the_record_as_unchanged(finish, app_dir):
    finish.write_deployed_record(str(app_dir), ["f" * 64, "c" * 64])
    sums = subprocess.run(["sha256sum", "state.json", "env"], cwd=app_dir, check=True,
                          capture_output=True, text=True).stdout  # fmt: skip
    separator = "\n" + deployed._SEPARATOR + "\n"
    state = (app_dir / "state.json").read_text()
    report = separator.join([(app_dir / ".hop3-deployed").read_text(), sums, state, "",
                             "active", ""])  # fmt: skip
    found = deployed.parse_report(report)
    assert found is not None
    assert found.fingerprint == "f" * 64 and found.config_fingerprint == "c" * 64
    assert found.digests_then == found.digests_now and set(found.digests_now) == {
        "state.json",
        "env",
    }


def test_a_missing_env_is_left_out_as_sha256sum_does(finish, app_dir):
    (app_dir / "env").unlink()
    finish.write_deployed_record(str(app_dir), ["a", "b"])
    lines = (app_dir / ".hop3-deployed").read_text().splitlines()
    assert lines[:2] == ["a", "b"] and len(lines) == 3 and lines[2].endswith("  state.json")


def test_finish_writes_the_audit_entry_with_the_current_release(finish, app_dir, tmp_path):
    auditlog = _load("hop3_auditlog", ROLES / "hop3_auditlog/module_utils/hop3_auditlog.py")
    finish.record_run = auditlog.record_run
    audit = {"user": "ann@laptop", "command": ["hop", "deploy", "shop"], "app": "shop",
             "via": "cli", "step": "deploy", "key": "SHA256:x", "source": "10.0.0.1"}  # fmt: skip
    done = finish.finish_run(
        str(app_dir),
        {"record": ["a", "b"], "audit": audit},
        log_dir=str(tmp_path / "log"),
        apps_root=str(tmp_path / "apps"),
    )
    assert done == {"recorded": True, "audited": True}
    entry = json.loads((tmp_path / "log" / "audit.jsonl").read_text())
    assert entry["app"] == "shop" and entry["release"] == "v3" and entry["result"] == "ok"
    assert entry["command"] == ["hop", "deploy", "shop"] and entry["user"] == "ann@laptop"


def test_without_the_auditlog_role_the_entry_is_left_to_its_task(finish, app_dir):
    finish.record_run = None  # as when role hop3_auditlog is not in the playbook
    done = finish.finish_run(str(app_dir), {"record": [], "audit": {"command": ["hop"]}})
    assert done == {"recorded": False, "audited": False}
    assert not (app_dir / ".hop3-deployed").exists()


def test_an_audit_write_that_fails_is_reported_not_raised(finish, app_dir, tmp_path):
    auditlog = _load("hop3_auditlog", ROLES / "hop3_auditlog/module_utils/hop3_auditlog.py")
    finish.record_run = auditlog.record_run
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    done = finish.finish_run(
        str(app_dir),
        {"audit": {"command": ["hop"]}},
        log_dir=str(blocker / "log"),
        apps_root=str(tmp_path / "apps"),
    )
    assert done["audited"] is False and done["audit_error"]


def test_no_finish_does_nothing(finish, app_dir):
    assert finish.finish_run(str(app_dir), None) == {"recorded": False, "audited": False}
