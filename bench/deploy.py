"""Deploy timings on a sandbox host (a benchmark, not a test).

Usage (as root, from the repository root):
    .venv/bin/python bench/deploy.py [--runs 3] [--host sandbox-1]

Boots/uses the sandbox on network HOP3_SANDBOX_NET (default 2, so it never
disturbs a demo or the tests), sets the host up, then times with the real
`hop` CLI, each until the change is visible over HTTP through nginx:
  first deploy      fresh app -> first HTTP 200
  code-only deploy  VERSION changed -> new text served
  no-change deploy  same source again -> command done
  config:set        new value -> served by /config/NAME
and prints the median of the runs. Piku, on the same kind of host, needs
about 8.4 s for a first Flask deploy and 7.6 s for a code-only change.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOP = str(Path(sys.executable).with_name("hop"))


def hop(*args: str) -> None:
    subprocess.run([HOP, *args], check=True, capture_output=True, text=True)


def fetch(address: str, host_header: str, path: str) -> str | None:
    request = urllib.request.Request(f"http://{address}{path}", headers={"Host": host_header})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.read().decode()
    except (OSError, urllib.error.HTTPError):
        return None


def wait_for(address: str, host_header: str, path: str, expected: str, limit: float = 120):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if fetch(address, host_header, path) == expected:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{path} never returned {expected!r}")


def one_run(run: int, host: str, address: str) -> dict[str, float]:
    app, timings = f"bench{run}", {}
    header = f"{app}.{host}"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "app"
        shutil.copytree(ROOT / "examples/python-flask", src)
        deploy = ("deploy", str(src), "--app", app, "-t", host)

        started = time.monotonic()
        hop(*deploy)
        wait_for(address, header, "/", "Hello from python-flask v1.0.0")
        timings["first"] = time.monotonic() - started

        (src / "VERSION").write_text(f"2.0.{run}\n")
        started = time.monotonic()
        hop(*deploy)
        wait_for(address, header, "/", f"Hello from python-flask v2.0.{run}")
        timings["code"] = time.monotonic() - started

        started = time.monotonic()
        hop(*deploy)
        timings["nochange"] = time.monotonic() - started

        started = time.monotonic()
        hop("config:set", app, f"APP_BENCH=v{run}", "-t", host)
        wait_for(address, header, "/config/BENCH", f"v{run}")
        timings["config"] = time.monotonic() - started
    hop("destroy", app, "--yes", "-t", host)
    return timings


def bench(runs: int, host: str) -> dict[str, list[float]]:
    hop("sandbox", "up", "-n", "1")
    hop("setup", "-t", host)
    listing = subprocess.run([HOP, "server", "list", "--json"], capture_output=True, text=True,
                             check=True).stdout  # fmt: skip
    entry = next(s["address"] for s in json.loads(listing) if s["name"] == host)
    address = entry.split("@")[-1].rsplit(":", 1)[0]
    results: dict[str, list[float]] = {}
    for run in range(runs):
        for key, value in one_run(run, host, address).items():
            results.setdefault(key, []).append(value)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--host", default="sandbox-1")
    args = parser.parse_args()
    os.environ.setdefault("HOP3_SANDBOX_NET", "2")
    os.environ.setdefault("HOP3_CONFIG_DIR", "/tmp/hop3-bench/config")
    os.environ.setdefault("HOP3_STATE_DIR", "/tmp/hop3-bench/state")
    results = bench(args.runs, args.host)
    labels = {
        "first": ("first deploy (Flask) to HTTP 200", 8.4),
        "code": ("code-only redeploy to new code served", 7.6),
        "nochange": ("no-change redeploy", None),
        "config": ("config:set to new value served", None),
    }
    print(f"{'measure':42} {'median':>8} {'min':>7} {'max':>7}  piku")
    for key, (label, piku) in labels.items():
        values = results[key]
        print(f"{label:42} {statistics.median(values):7.2f}s {min(values):6.2f}s "
              f"{max(values):6.2f}s  {f'{piku:.1f}s' if piku else '-'}")  # fmt: skip


if __name__ == "__main__":
    main()
