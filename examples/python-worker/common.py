"""Helpers shared by the web, worker, release and cron processes."""

import os
from pathlib import Path

VERSION = (Path(__file__).parent / "VERSION").read_text().strip()


def shared_dir() -> Path:
    """The app's persistent directory (kept across deploys), set by Hop3."""
    path = os.environ.get("HOP3_SHARED_DIR")
    if not path:
        raise RuntimeError("HOP3_SHARED_DIR is not set")
    return Path(path)


def heartbeat_file() -> Path:
    return shared_dir() / "heartbeat.txt"
