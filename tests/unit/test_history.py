from __future__ import annotations

import json
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hop3 import history
from hop3.runner import HostFailure, HostStats, RunResult


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOP3_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("HOP3_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "state"


def make_result(verb: str = "deploy", status: str = "failed") -> RunResult:
    return RunResult(
        verb=verb,
        target="web",
        status=status,
        rc=2,
        duration=12.345,
        started="2026-11-27T10:00:00Z",
        run_dir=Path("/tmp/runs/20261127T100000Z-deploy-abc123"),
        stats={
            "web2": HostStats(ok=3, changed=1, failed=1),
            "web1": HostStats(ok=4, changed=2),
            "web3": HostStats(unreachable=1),
        },
        failures=[HostFailure(host="web2", task="t", message="m", hint=None)],
    )


def test_record_and_load_round_trip(state_dir):
    assert history.load() == []
    run_id = history.record(make_result())
    assert run_id == 1
    assert history.load() == [
        {
            "id": 1,
            "time": "2026-11-27T10:00:00Z",
            "verb": "deploy",
            "target": "web",
            "result": "failed",
            "changed": 3,
            "failed": 2,
            "duration": 12.3,
            "hosts": ["web1", "web2", "web3"],
            "run_dir": "/tmp/runs/20261127T100000Z-deploy-abc123",
        }
    ]
    path = state_dir / "history.jsonl"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().count("\n") == 1


def test_ids_increase_and_load_limit_keeps_the_newest():
    ids = [history.record(make_result(verb=f"v{i}")) for i in range(5)]
    assert ids == [1, 2, 3, 4, 5]
    assert [r["verb"] for r in history.load(limit=2)] == ["v3", "v4"]
    assert [r["id"] for r in history.load()] == ids
    assert history.load(limit=0) == []


def test_broken_lines_are_skipped_and_ids_continue(state_dir):
    history.record(make_result())
    with (state_dir / "history.jsonl").open("a") as f:
        f.write('{"id": 2, "verb": "cut sho')  # a crash mid-write, no newline
    assert [r["id"] for r in history.load()] == [1]
    assert history.record(make_result()) == 2
    assert history.record(make_result()) == 3
    assert [r["id"] for r in history.load()] == [1, 2, 3]


def test_concurrent_writers_get_distinct_ids(state_dir):
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(lambda i: history.record(make_result(verb=f"v{i}")), range(40)))
    assert sorted(ids) == list(range(1, 41))
    lines = (state_dir / "history.jsonl").read_text().splitlines()
    assert len(lines) == 40
    assert all(json.loads(line)["id"] for line in lines)
