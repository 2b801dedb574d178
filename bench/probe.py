"""HTTP checks against a sandbox host's nginx, by address and Host header."""

from __future__ import annotations

import http.client
import time

POLL_INTERVAL = 0.05


def fetch(address: str, host_header: str, path: str, timeout: float = 5) -> tuple[int, str] | None:
    """(status, body) of one GET, or None when the request did not complete."""
    connection = http.client.HTTPConnection(address, 80, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": host_header, "Connection": "close"})
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def wait_for(address: str, host_header: str, path: str, expected: str, limit: float) -> float:
    """Poll until GET path answers 200 with body ``expected``; the monotonic
    time it first did. Raises TimeoutError after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        answer = fetch(address, host_header, path)
        if answer is not None and answer[0] == 200 and answer[1] == expected:
            return time.monotonic()
        time.sleep(POLL_INTERVAL)
    raise TimeoutError(
        f"http://{address}{path} (Host: {host_header}) did not answer {expected!r} "
        f"within {limit:.0f} s"
    )
