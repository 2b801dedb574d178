"""Two sandbox hosts for the bench, booted without removing anyone's hosts.

`hop sandbox up -n N` makes exactly sandbox-1..N run and removes the hosts
above N, so the bench asks for at least as many hosts as its network already
knows, and at the end takes down only the hosts it booted itself.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field

NEEDED = ("sandbox-1", "sandbox-2")


@dataclass
class Sandbox:
    hop: str
    addresses: dict[str, str] = field(default_factory=dict)
    booted: list[str] = field(default_factory=list)
    network_was_empty: bool = False

    def _hop(self, *args: str) -> str:
        return subprocess.run(
            [self.hop, *args], check=True, capture_output=True, text=True, timeout=900
        ).stdout

    def up(self) -> None:
        before = json.loads(self._hop("sandbox", "status", "--json"))
        running = {row["name"] for row in before if row["running"]}
        self.network_was_empty = not before
        count = host_count(row["name"] for row in before)
        hosts = json.loads(self._hop("sandbox", "up", "-n", str(count), "--json"))
        self.addresses = {h["name"]: h["address"] for h in hosts}
        self.booted = [name for name in NEEDED if name not in running]

    def down(self) -> list[str]:
        """Take down what up() booted (the whole network if it was empty)."""
        if self.network_was_empty:
            self._hop("sandbox", "down")
        elif self.booted:
            self._hop("sandbox", "down", *self.booted)
        return self.booted


def host_count(known_names) -> int:
    """How many hosts to ask `hop sandbox up -n` for: two, or more when the
    network already has higher-numbered hosts (which -n 2 would remove)."""
    indexes = [int(m.group(1)) for n in known_names if (m := re.fullmatch(r"sandbox-(\d+)", n))]
    return max([len(NEEDED), *indexes])
