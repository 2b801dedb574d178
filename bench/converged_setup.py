"""Timings of a converged `hop setup`: one host and five, interleaved (a benchmark, not a test).

Usage (as root, from the repository root):
    .venv/bin/python bench/converged_setup.py [--rounds 3] [--hosts 5] [--full]
        [--json out.json] [--keep]

Boots sandbox-1..N from the converged image on network HOP3_SANDBOX_NET
(default 8, so it never disturbs a demo, the tests or bench/deploy.py), with
its own HOP3_CONFIG_DIR and HOP3_STATE_DIR, runs one `hop setup` of all of
them (the first on a host booted from the image runs every step), then
times, interleaved, `hop setup -t sandbox-1` and `hop setup -t sandbox` per
round. Every timed run must report 0 changes. --full times `hop setup --full`
(every step) instead. Prints median, min-max, the N-host / 1-host ratio and
the 1-min load average; the hosts are taken down at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOP = str(Path(sys.executable).with_name("hop"))


def hop(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([HOP, *args], capture_output=True, text=True, timeout=1800, check=False)


def timed_setup(target: str, full: bool) -> float:
    started = time.monotonic()
    proc = hop("setup", "-t", target, "--json", *(["--full"] if full else []))
    seconds = time.monotonic() - started
    result = json.loads(proc.stdout) if proc.stdout.strip() else {}
    if proc.returncode != 0 or result.get("changed") != 0:
        why = proc.stdout + proc.stderr
        raise SystemExit(f"hop setup -t {target} failed or changed something:\n{why}")
    return seconds


def spread(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{statistics.median(values):6.2f} s ({low:.2f}-{high:.2f}, n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hosts", type=int, default=5)
    parser.add_argument("--full", action="store_true", help="time `hop setup --full`")
    parser.add_argument("--json", type=Path, help="write the raw timings here")
    parser.add_argument("--keep", action="store_true", help="leave the hosts running")
    args = parser.parse_args()
    home = Path(tempfile.gettempdir()) / "hop3-bench-setup"
    os.environ.setdefault("HOP3_SANDBOX_NET", "8")
    os.environ.setdefault("HOP3_CONFIG_DIR", str(home / "config"))
    os.environ.setdefault("HOP3_STATE_DIR", str(home / "state"))
    up = hop("sandbox", "up", "-n", str(args.hosts), "--image", "converged")
    if up.returncode != 0:
        raise SystemExit(f"hop sandbox up failed:\n{up.stdout}{up.stderr}")
    try:
        hop("setup", "-t", "sandbox")
        one, many = [], []
        for round_ in range(args.rounds):
            pair = [("1", "sandbox-1"), ("N", "sandbox")]
            for kind, target in pair if round_ % 2 == 0 else pair[::-1]:
                (one if kind == "1" else many).append(timed_setup(target, args.full))
        load = os.getloadavg()[0]
        what = "hop setup --full" if args.full else "hop setup"
        print(f"{what}, converged hosts, load {load:.1f}:")
        print(f"  1 host   {spread(one)}")
        print(f"  {args.hosts} hosts  {spread(many)}")
        print(f"  {args.hosts} / 1    {statistics.median(many) / statistics.median(one):6.2f}")
        if args.json:
            raw = {"one": one, "many": many, "hosts": args.hosts, "full": args.full, "load": load}
            args.json.write_text(json.dumps(raw, indent=2))
    finally:
        if not args.keep:
            hop("sandbox", "down")


if __name__ == "__main__":
    main()
