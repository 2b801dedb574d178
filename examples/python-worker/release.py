"""Release command: runs once per deploy, before the new release gets traffic."""

import os
import sys
from datetime import datetime, timezone

from common import VERSION, shared_dir

if os.environ.get("APP_FAIL_RELEASE") == "1":
    sys.exit("APP_FAIL_RELEASE=1: failing the release on purpose")

path = shared_dir() / f"release-{VERSION}.txt"
path.write_text(datetime.now(timezone.utc).isoformat() + "\n")
print(f"release {VERSION}: wrote {path}")
