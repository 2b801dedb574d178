"""What the user sees while a playbook runs.

This module only draws: hop3.runner folds ansible-runner events into task names
and per-host counts and calls the methods below. Three displays share one
interface: a rich Live table on a terminal, one plain line per task when the
output is a pipe or a CI log, and Ansible's own output with ``-v``. Each ends
with a one-line recap per host.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Protocol

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

MAX_LIVE_ROWS = 15


class Counts(Protocol):
    """Per-host counters (hop3.runner.HostStats has this shape)."""

    ok: int
    changed: int
    failed: int
    unreachable: int
    skipped: int


class Display:
    """No output at all (``--json``, tests); the base of the other displays."""

    def __enter__(self) -> Display:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def task_started(self, name: str) -> None:
        pass

    def update(self, stats: Mapping[str, Counts]) -> None:
        pass

    def output(self, text: str) -> None:
        pass

    def recap(self, stats: Mapping[str, Counts]) -> None:
        pass

    def timings(self, timings: Sequence[tuple[str, float]]) -> None:
        pass


class _Recapping(Display):
    def __init__(self, console: Console):
        self.console = console

    def recap(self, stats: Mapping[str, Counts]) -> None:
        width = max((len(host) for host in stats), default=0)
        for host, counts in stats.items():
            self.console.print(recap_line(host, counts, width), soft_wrap=True, highlight=False)

    def timings(self, timings: Sequence[tuple[str, float]]) -> None:
        """Seconds per task, slowest first (``-v``)."""
        if not timings:
            return
        self.console.print(Text("Timings (s, slowest host per task):", style="bold"))
        for line in timing_lines(timings):
            self.console.print(Text(line), soft_wrap=True, highlight=False)


class PlainDisplay(_Recapping):
    """One line per task, for logs and pipes where a live table would be noise."""

    def task_started(self, name: str) -> None:
        self.console.print(Text(f"• {name}"), soft_wrap=True, highlight=False)


class StreamDisplay(_Recapping):
    """Ansible's normal output, event by event (``-v``)."""

    def output(self, text: str) -> None:
        if text:
            text = text.replace("\r\n", "\n")
            self.console.print(Text.from_ansi(text), soft_wrap=True, highlight=False)


class LiveDisplay(_Recapping):
    """A table of hosts that updates in place, replaced by the recap at the end."""

    def __init__(self, console: Console, title: str):
        super().__init__(console)
        self.title = title
        self.task = "starting"
        self.stats: dict[str, Counts] = {}
        self.started = time.monotonic()
        self._spinner = Spinner("dots", style="cyan")
        self._live = Live(
            console=console, refresh_per_second=8, transient=True, get_renderable=self._render
        )

    def start(self) -> None:
        self.started = time.monotonic()
        self._live.start()

    def stop(self) -> None:
        self._live.stop()

    def task_started(self, name: str) -> None:
        self.task = name

    def update(self, stats: Mapping[str, Counts]) -> None:
        self.stats = dict(stats)

    def _render(self) -> RenderableType:
        header = Table.grid(padding=(0, 1))
        elapsed = Text(format_elapsed(time.monotonic() - self.started), style="cyan")
        header.add_row(
            self._spinner, Text(self.title, style="bold"), elapsed, Text(self.task, style="dim")
        )
        return Group(header, hosts_table(self.stats))


def hosts_table(stats: Mapping[str, Counts], max_rows: int = MAX_LIVE_ROWS) -> Table:
    table = Table(box=None, padding=(0, 2), show_edge=False)
    table.add_column("host")
    for name, style in (("ok", "green"), ("changed", "yellow"), ("failed", "red")):
        table.add_column(name, justify="right", style=style)
    table.add_column("unreachable", justify="right", style="red")
    # Hosts in trouble first, so they stay visible when the fleet is large.
    hosts = sorted(stats, key=lambda h: not (stats[h].failed or stats[h].unreachable))
    for host in hosts[:max_rows]:
        c = stats[host]
        table.add_row(
            Text(host, style=host_style(c)),
            str(c.ok),
            str(c.changed),
            str(c.failed),
            str(c.unreachable),
        )
    if len(hosts) > max_rows:
        table.add_row(Text(f"… and {len(hosts) - max_rows} more hosts", style="dim"))
    return table


def format_elapsed(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


def timing_lines(timings: Sequence[tuple[str, float]]) -> list[str]:
    return [f"{seconds:7.2f}  {task}" for task, seconds in timings]


def host_style(counts: Counts) -> str:
    if counts.failed or counts.unreachable:
        return "red"
    if counts.changed:
        return "yellow"
    return "green"


def recap_line(host: str, counts: Counts, width: int = 0) -> Text:
    style = host_style(counts)
    mark = {"red": "✗", "yellow": "~", "green": "✓"}[style]
    return Text(
        f"{mark} {host:<{width}}  ok={counts.ok} changed={counts.changed} "
        f"failed={counts.failed} unreachable={counts.unreachable} skipped={counts.skipped}",
        style=style,
    )


def make_display(
    title: str, *, verbose: int = 0, quiet: bool = False, console: Console | None = None
) -> Display:
    if quiet:
        return Display()
    console = console or Console(highlight=False)
    if verbose > 0:
        return StreamDisplay(console)
    if console.is_terminal:
        return LiveDisplay(console, title)
    return PlainDisplay(console)
