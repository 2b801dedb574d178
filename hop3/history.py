"""The run history: one JSON line per playbook run in ``state_dir()/history.jsonl``.

Several ``hop`` commands may finish at the same time (one per target group), so
``record`` takes an exclusive lock on the file while it picks the next id and
appends its line in a single write.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from hop3 import paths

if TYPE_CHECKING:
    from hop3.runner import RunResult

_TAIL_BYTES = 64 * 1024


def history_file() -> Path:
    return paths.ensure(paths.state_dir()) / "history.jsonl"


def entry(result: RunResult, run_id: int) -> dict:
    failed_hosts = [h for h, s in result.stats.items() if s.failed or s.unreachable]
    return {
        "id": run_id,
        "time": result.started,
        "verb": result.verb,
        "target": result.target,
        "result": result.status,
        "changed": result.changed,
        "failed": len(failed_hosts) or len({f.host for f in result.failures}),
        "duration": round(result.duration, 1),
        "hosts": sorted(result.stats),
        "run_dir": str(result.run_dir),
    }


def record(result: RunResult) -> int:
    """Append the run to the history and return its id."""
    fd = os.open(history_file(), os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        run_id = _last_id(fd) + 1
        line = json.dumps(entry(result, run_id), separators=(",", ":")) + "\n"
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = "\n" + line  # a writer died mid-line: do not glue onto its fragment
        os.write(fd, line.encode("utf-8"))
        return run_id
    finally:
        os.close(fd)  # also releases the lock


def _last_id(fd: int) -> int:
    """The id of the last readable line (0 for an empty file)."""
    size = os.fstat(fd).st_size
    start = max(0, size - _TAIL_BYTES)
    tail = os.pread(fd, size - start, start).decode("utf-8", errors="replace")
    lines = tail.splitlines()
    if start > 0:
        lines = lines[1:]  # the first one may be cut
    for line in reversed(lines):
        try:
            return int(json.loads(line)["id"])
        except (ValueError, KeyError, TypeError):
            continue
    # No readable id near the end: fall back to counting lines.
    return os.pread(fd, size, 0).count(b"\n")


def load(limit: int | None = None) -> list[dict]:
    """Recorded runs, oldest first; ``limit`` keeps only the newest ones."""
    path = history_file()
    if not path.exists():
        return []
    runs = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                item = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash or a full disk
            if isinstance(item, dict):
                runs.append(item)
    if limit is not None:
        runs = runs[-limit:] if limit > 0 else []
    return runs
