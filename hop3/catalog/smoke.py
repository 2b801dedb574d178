"""The smoke check of a catalog app: one real request through the host's nginx
(and its WAF), as a visitor's browser would send it."""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass

# An app's health check has passed before this runs; a little slack covers
# apps that answer their first page after warming up (a JIT, a cache).
DEFAULT_WAIT = 30.0


@dataclass
class SmokeResult:
    ok: bool
    detail: str  # what was asked and what came back


def smoke_check(
    address: str, domain: str, path: str, contains: str, wait: float = DEFAULT_WAIT
) -> SmokeResult:
    """GET http://address/path with Host: domain until the body contains ``contains``."""
    deadline = time.monotonic() + wait
    asked = f"GET http://{domain}{path} (via {address})"
    while True:
        try:
            conn = http.client.HTTPConnection(address, 80, timeout=15)
            conn.request("GET", path, headers={"Host": domain, "User-Agent": "hop3-catalog-smoke"})
            response = conn.getresponse()
            body = response.read(2 * 1024 * 1024).decode("utf-8", "replace")
            conn.close()
            if response.status < 400 and contains in body:
                return SmokeResult(True, f"{asked}: {response.status}, found {contains!r}")
            found = "found" if contains in body else "did not find"
            detail = f"{asked}: status {response.status}, {found} {contains!r}"
        except OSError as exc:
            detail = f"{asked}: {exc}"
        if time.monotonic() >= deadline:
            return SmokeResult(False, detail)
        time.sleep(1.0)
