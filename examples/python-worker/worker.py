"""Worker process: writes a heartbeat timestamp to the shared dir every 2 seconds."""

import os
import signal
import threading
from datetime import datetime, timezone

from common import heartbeat_file

INTERVAL = 2.0
stop = threading.Event()


def beat() -> None:
    path = heartbeat_file()
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(datetime.now(timezone.utc).isoformat() + "\n")
    os.replace(tmp, path)  # atomic: readers never see a half-written file


def main() -> None:
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    print(f"worker {os.getpid()} writing {heartbeat_file()} every {INTERVAL}s", flush=True)
    while not stop.is_set():
        beat()
        stop.wait(INTERVAL)
    print("worker stopping", flush=True)


if __name__ == "__main__":
    main()
