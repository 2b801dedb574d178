"""Cron command: appends one line to ticks.log in the shared dir on each run."""

import os
from datetime import datetime, timezone

from common import VERSION, shared_dir

with open(shared_dir() / "ticks.log", "a") as log:
    log.write(f"{datetime.now(timezone.utc).isoformat()} v{VERSION} pid={os.getpid()}\n")
