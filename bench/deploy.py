"""Deploy timings of Hop3 and Piku, side by side on two sandbox hosts (a benchmark, not a test).

Usage (as root, from the repository root):
    .venv/bin/python bench/deploy.py [--rounds 3] [--json out.json] [--load N] [--keep]

Boots sandbox-1 and sandbox-2 on network HOP3_SANDBOX_NET (default 2, so it
never disturbs a demo or the tests), with its own HOP3_CONFIG_DIR and
HOP3_STATE_DIR; hosts that already ran there are used and left running, and
only the hosts it booted are taken down at the end (unless --keep).
sandbox-1 gets `hop setup`; sandbox-2 gets Piku, installed from its
unmodified source (--piku-source, default /work/shared/anchors/piku) and
Debian packages.

Each round deploys the same Flask app (gunicorn) to both, interleaved (the
platform that goes first alternates), and times each step until the change
is visible over HTTP through nginx:
  first deploy      fresh app -> first HTTP 200
  code-only deploy  VERSION changed -> new text served
  no-change deploy  same source again -> command done (and did it say "unchanged")
  config:set        new value -> served by /config/BENCH
  ps:scale web=2    Hop3 only (Piku's web workers share one port) -> command done
During each redeploy, a bounded load (20 req/s on new connections, plus 10
keep-alive clients at 2 req/s each) counts 5xx answers, connection resets
and other errors. It prints median, min-max, the Hop3/Piku ratio and the
1-min load average at the start and the end; --json writes the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import load
import piku_host
import platforms
import probe
import summary
from sandbox import Sandbox

HOP = str(Path(sys.executable).with_name("hop"))
VISIBLE_LIMIT = 180.0  # seconds a change may take to show once its command is done
SETTLE = 1.5  # seconds of load before and after each redeploy
EXAMPLE_TEXT = "Hello from python-flask v{}"


def timed(platform, app: str, measure: str, run: int) -> dict:
    """One measure on one platform: seconds until visible (and load counts)."""
    header = platform.header(app)
    address = platform.address
    if measure == "first":
        started = time.monotonic()
        platform.deploy(app)
        seen = probe.wait_for(address, header, "/", EXAMPLE_TEXT.format("1.0.0"), VISIBLE_LIMIT)
        return {"seconds": seen - started}
    if measure == "code":
        version = f"2.0.{run}"
        platform.set_version(app, version)
    entry: dict = {}
    with load.Load(address, header) as traffic:
        time.sleep(SETTLE)
        started = time.monotonic()
        if measure == "code":
            platform.deploy(app)
            seen = probe.wait_for(address, header, "/", EXAMPLE_TEXT.format(version),
                                  VISIBLE_LIMIT)  # fmt: skip
        elif measure == "nochange":
            entry["unchanged"] = platform.deploy(app)
            seen = time.monotonic()
        elif measure == "config":
            platform.config_set(app, "APP_BENCH", f"v{run}")
            seen = probe.wait_for(address, header, "/config/BENCH", f"v{run}", VISIBLE_LIMIT)
        else:
            platform.scale(app, 2)
            seen = time.monotonic()
        entry["seconds"] = seen - started
        time.sleep(SETTLE)
    entry["load"] = traffic.result()
    return entry


def measures_of(platform) -> list[str]:
    return [m for m in summary.MEASURES if m != "scale" or hasattr(platform, "scale")]


def one_round(run: int, pair: list, echo) -> dict:
    """Every measure on both platforms, interleaved; the order alternates by round."""
    order = pair if run % 2 == 0 else pair[::-1]
    app = f"bench{run}"
    result: dict = {"round": run, "order": [p.name for p in order],
                    "loadavg": os.getloadavg()[0]}  # fmt: skip
    broken: set[str] = set()
    for platform in order:
        platform.create(app)
    for measure in summary.MEASURES:
        for platform in order:
            if platform.name in broken or measure not in measures_of(platform):
                continue
            try:
                entry = timed(platform, app, measure, run)
            except (platforms.CommandFailed, TimeoutError) as error:
                entry = {"error": str(error)}
                broken.add(platform.name)
            result.setdefault(platform.name, {})[measure] = entry
            shown = f"{entry['seconds']:.2f} s" if "seconds" in entry else "FAILED: "
            shown += entry.get("error", "").splitlines()[0] if "error" in entry else ""
            echo(f"round {run + 1} {platform.name:5} {measure:9} {shown}")
    for platform in order:
        try:
            platform.destroy(app)
        except platforms.CommandFailed as error:
            echo(f"(could not destroy {app} on {platform.name}: {error})")
    return result


def _timed_call(function, *args) -> float:
    started = time.monotonic()
    function(*args)
    return time.monotonic() - started


def bench(args, echo) -> dict:
    state = Path(os.environ["HOP3_STATE_DIR"])
    sandbox = Sandbox(HOP)
    busy: list = []
    report: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "busy_loops": args.load,
        "piku_revision": piku_host.revision(args.piku_source),
        "rounds": [],
    }
    try:
        echo("booting sandbox-1 (Hop3) and sandbox-2 (Piku)...")
        sandbox.up()
        hop3_host, piku_name = "sandbox-1", "sandbox-2"
        hop3 = platforms.Hop3(HOP, hop3_host, sandbox.addresses[hop3_host], args.workdir)
        key = piku_host.ensure_key(state / "bench" / "piku_ed25519")
        piku = platforms.Piku(piku_name, sandbox.addresses[piku_name], key, args.workdir)
        # Not measured: the two hosts are prepared at once, to save minutes.
        with ThreadPoolExecutor(2) as pool:
            setup = pool.submit(_timed_call, hop3.setup)
            install = pool.submit(_timed_call, piku_host.install, HOP, piku_name, key,
                                  args.piku_source)  # fmt: skip
            report["hop3_setup_seconds"] = setup.result()
            report["piku_install_seconds"] = install.result()
        echo(f"hosts ready (hop setup {report['hop3_setup_seconds']:.0f} s, "
             f"Piku install {report['piku_install_seconds']:.0f} s)")  # fmt: skip
        busy = load.start_busy_loops(args.load, seconds=4 * 3600)
        report["loadavg_start"] = os.getloadavg()[0]
        for run in range(args.rounds):
            report["rounds"].append(one_round(run, [hop3, piku], echo))
        report["loadavg_end"] = os.getloadavg()[0]
    finally:
        load.stop_busy_loops(busy)
        if args.keep:
            echo(f"--keep: sandbox hosts left running ({', '.join(sandbox.addresses)})")
        elif sandbox.addresses:
            taken = sandbox.down()
            echo(f"took down {', '.join(taken) or 'nothing'} (what this run booted)")
    return report


def parse_args(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds (at least 1, at most 20)")
    parser.add_argument("--json", type=Path, help="write the raw numbers to this file")
    parser.add_argument("--load", type=int, default=0, metavar="N",
                        help="run N busy-loop processes during the rounds")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="leave the hosts running")
    parser.add_argument("--piku-source", type=Path, default=piku_host.PIKU_SOURCE,
                        help="Piku's unmodified source (piku.py and its units)")  # fmt: skip
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 20 or not 0 <= args.load <= 32:
        parser.error("--rounds must be 1-20 and --load 0-32")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HOP3_SANDBOX_NET", "2")
    os.environ.setdefault("HOP3_CONFIG_DIR", "/tmp/hop3-bench/config")
    os.environ.setdefault("HOP3_STATE_DIR", "/tmp/hop3-bench/state")
    if os.geteuid() != 0:
        print("The bench boots sandbox hosts, which needs root: run it with sudo.", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="hop3-bench-") as workdir:
        args.workdir = Path(workdir)
        try:
            report = bench(args, print)
        except Exception as error:  # one paragraph, not a traceback
            hint = (
                "Hosts it booted were taken down unless --keep; PYTHONDEVMODE=1 shows a traceback."
            )
            print(f"The bench stopped: {error}\n({hint})", file=sys.stderr)
            if os.environ.get("PYTHONDEVMODE"):
                traceback.print_exc()
            return 1
    print()
    print(summary.render(report["rounds"], report["loadavg_start"], report["loadavg_end"]))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
        print(f"raw numbers: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
