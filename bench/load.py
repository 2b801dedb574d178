"""Bounded load during a redeploy: plain requests (a new connection each) at a
fixed rate, plus keep-alive clients that reuse one connection, counting
failures by kind; and optional busy-loop processes that load the controller.

Every loop stops on request or at a hard deadline, whichever comes first.
"""

from __future__ import annotations

import http.client
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass

PLAIN_THREADS = 4
PLAIN_RATE = 20.0  # requests per second, over all plain threads
KEEPALIVE_CLIENTS = 10
KEEPALIVE_RATE = 2.0  # requests per second, per keep-alive client
REQUEST_TIMEOUT = 5.0
MAX_SECONDS = 600.0

RESETS = (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)


@dataclass
class Counts:
    requests: int = 0
    ok: int = 0  # 2xx-4xx answers
    http_5xx: int = 0
    resets: int = 0  # connection reset / closed by the server mid-request
    errors: int = 0  # refused, timeouts, anything else

    def add(self, other: Counts) -> None:
        for key, value in asdict(other).items():
            setattr(self, key, getattr(self, key) + value)

    @property
    def failed(self) -> int:
        return self.http_5xx + self.resets + self.errors


def classify(counts: Counts, status: int | None, error: BaseException | None) -> None:
    """Count one request's outcome: an HTTP status, or the exception it raised."""
    counts.requests += 1
    if error is None:
        if status is not None and status >= 500:
            counts.http_5xx += 1
        else:
            counts.ok += 1
    elif isinstance(error, RESETS):
        counts.resets += 1
    else:
        counts.errors += 1


class Load:
    """Requests to ``address`` (Host: ``host_header``) until stop()."""

    def __init__(self, address: str, host_header: str, path: str = "/") -> None:
        self.address, self.header, self.path = address, host_header, path
        self.plain, self.keepalive = Counts(), Counts()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + MAX_SECONDS
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Load:
        period = PLAIN_THREADS / PLAIN_RATE
        for n in range(PLAIN_THREADS):
            offset = n * period / PLAIN_THREADS
            self._spawn(self._plain_loop, period, offset)
        for n in range(KEEPALIVE_CLIENTS):
            self._spawn(self._keepalive_loop, 1 / KEEPALIVE_RATE, n / KEEPALIVE_CLIENTS)
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT + 1)

    def _spawn(self, target, period: float, offset: float) -> None:
        thread = threading.Thread(target=target, args=(period, offset), daemon=True)
        thread.start()
        self._threads.append(thread)

    def _ticks(self, period: float, offset: float):
        """Yield at a fixed rate (skipping ticks missed while a request was slow)."""
        next_at = time.monotonic() + offset
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            delay = next_at - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            yield
            next_at += period
            while next_at < time.monotonic():
                next_at += period

    def _record(self, counts: Counts, status: int | None, error: BaseException | None) -> None:
        with self._lock:
            classify(counts, status, error)

    def _plain_loop(self, period: float, offset: float) -> None:
        for _ in self._ticks(period, offset):
            connection = http.client.HTTPConnection(self.address, 80, timeout=REQUEST_TIMEOUT)
            try:
                status = self._get(connection, close=True)
                self._record(self.plain, status, None)
            except (OSError, http.client.HTTPException) as error:
                self._record(self.plain, None, error)
            finally:
                connection.close()

    def _keepalive_loop(self, period: float, offset: float) -> None:
        connection = None
        for _ in self._ticks(period, offset):
            if connection is None:
                connection = http.client.HTTPConnection(self.address, 80, timeout=REQUEST_TIMEOUT)
            try:
                status = self._get(connection, close=False)
                self._record(self.keepalive, status, None)
            except (OSError, http.client.HTTPException) as error:
                self._record(self.keepalive, None, error)
                connection.close()
                connection = None  # a real client reconnects; the failure is counted
        if connection is not None:
            connection.close()

    def _get(self, connection: http.client.HTTPConnection, close: bool) -> int:
        headers = {"Host": self.header, "Connection": "close" if close else "keep-alive"}
        connection.request("GET", self.path, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status

    def result(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {"plain": asdict(self.plain), "keepalive": asdict(self.keepalive)}


BUSY_LOOP = (
    "import sys, time\n"
    "end = time.monotonic() + float(sys.argv[1])\n"
    "while time.monotonic() < end: pass\n"
)


def start_busy_loops(count: int, seconds: float) -> list[subprocess.Popen]:
    """``count`` processes that each spin one CPU for at most ``seconds``."""
    return [subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(seconds)]) for _ in range(count)]


def stop_busy_loops(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
