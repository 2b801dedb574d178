"""Parse a Procfile: ``name: command`` lines.

Special kinds: ``release: <cmd>`` (once per deploy, before the switch),
``cron: <5 fields> <command>`` (several allowed) and ``static: <dir>`` (a
static site served by nginx at /). Blank lines and ``#`` comments are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hop3.appspec.cron import CronError, normalize_schedule, to_on_calendar
from hop3.appspec.model import CronJob, Problems
from hop3.appspec.validate import command_error, normalize_rel_path, process_name_error, show

FILE = "Procfile"
SPECIAL_KINDS = ("release", "cron", "static")


@dataclass
class ProcfileData:
    processes: dict[str, str] = field(default_factory=dict)  # name -> command, in file order
    lines: dict[str, int] = field(default_factory=dict)  # name/release/static -> line number
    release: str | None = None
    cron: list[CronJob] = field(default_factory=list)
    static_dir: str | None = None


def _split_cron(rest: str) -> tuple[str, str]:
    """'*/5 * * * * python job.py' -> ('*/5 * * * *', 'python job.py')."""
    rest = rest.strip()
    fields = 1 if rest.startswith("@") else 5
    pattern = r"((?:\S+\s+){" + str(fields - 1) + r"}\S+)(?:\s+(.*))?$"
    match = re.fullmatch(pattern, rest, re.DOTALL)
    if not match:
        return rest, ""
    return match.group(1), (match.group(2) or "").strip()


def parse_procfile(text: str, problems: Problems) -> ProcfileData:
    data = ProcfileData()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"line {number}"
        name, colon, rest = line.partition(":")
        name = name.strip()
        if not colon or any(char.isspace() for char in name):
            problems.add(
                FILE,
                where,
                f"expected 'name: command', got {show(line)}",
                incomplete=True,
            )
            continue
        error = process_name_error(name)
        if error:
            problems.add(FILE, where, error, incomplete=True)
            continue
        command = rest.strip()

        if name == "cron":
            _parse_cron(command, where, data, problems)
            continue
        if name in data.lines:
            problems.add(
                FILE,
                where,
                f"{show(name)} is defined twice (first on line {data.lines[name]}); keep one",
            )
            continue
        if name == "static":
            if not command:
                problems.add(FILE, where, "static needs a directory, e.g. 'static: public'")
                problems.incomplete = True
                continue
            try:
                data.static_dir = normalize_rel_path(command)
            except ValueError as exc:
                problems.add(FILE, where, f"static directory {exc}", incomplete=True)
                continue
            data.lines[name] = number
            continue
        error = command_error(command)
        if error:
            problems.add(FILE, where, f"{show(name)} {error}", incomplete=True)
            continue
        data.lines[name] = number
        if name == "release":
            data.release = command
        else:
            data.processes[name] = command
    return data


def _parse_cron(rest: str, where: str, data: ProcfileData, problems: Problems) -> None:
    schedule, command = _split_cron(rest)
    if not command:
        problems.add(
            FILE,
            where,
            "cron needs a 5-field schedule and a command, e.g. 'cron: */5 * * * * python job.py'",
        )
        return
    try:
        on_calendar = to_on_calendar(schedule)
    except CronError as exc:
        problems.add(FILE, where, f"cron schedule {show(schedule)} is invalid: {exc}")
        return
    error = command_error(command)
    if error:
        problems.add(FILE, where, f"cron command {error}")
        return
    data.cron.append(
        CronJob(
            name=f"cron-{len(data.cron) + 1}",
            schedule=normalize_schedule(schedule),
            on_calendar=on_calendar,
            command=command,
        )
    )
