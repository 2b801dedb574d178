"""Cron (5 fields) -> systemd OnCalendar conversion."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timedelta

import pytest

from hop3.appspec.cron import CronError, to_on_calendar

VECTORS = [
    # the brief's vectors
    ("0 3 * * *", "*-*-* 03:00:00"),
    ("30 2 * * 1-5", "Mon..Fri *-*-* 02:30:00"),
    ("0 0 1 * *", "*-*-01 00:00:00"),
    ("*/15 9-17 * * *", "*-*-* 09..17:00/15:00"),
    ("*/5 * * * *", "*-*-* *:00/5:00"),
    # more shapes
    ("* * * * *", "*-*-* *:*:00"),
    ("0 * * * *", "*-*-* *:00:00"),
    ("0 0,12 * * *", "*-*-* 00,12:00:00"),
    ("1,15 * * * *", "*-*-* *:01,15:00"),
    ("0-30/10 * * * *", "*-*-* *:00,10,20,30:00"),  # a-b/n expanded (no a..b/n in systemd)
    ("5/10 * * * *", "*-*-* *:05/10:00"),
    ("0 */2 * * *", "*-*-* 00/2:00:00"),
    ("0 0 */2 * *", "*-*-01/2 00:00:00"),
    ("0 0 1 */3 *", "*-01/3-01 00:00:00"),
    ("0 0 1 jan,jul *", "*-01,07-01 00:00:00"),
    ("0 0 1 JAN-MAR *", "*-01..03-01 00:00:00"),
    ("0 0 * jan-may/2 *", "*-01,03,05-* 00:00:00"),
    ("0 0 * * 0", "Sun *-*-* 00:00:00"),
    ("0 0 * * 7", "Sun *-*-* 00:00:00"),
    ("0 0 * * 0,6", "Sat,Sun *-*-* 00:00:00"),
    ("0 0 * * sat,sun", "Sat,Sun *-*-* 00:00:00"),
    ("0 0 * * mon-fri", "Mon..Fri *-*-* 00:00:00"),
    ("0 0 * * 5-7", "Fri..Sun *-*-* 00:00:00"),
    ("0 0 * * 0-2", "Mon,Tue,Sun *-*-* 00:00:00"),  # systemd ranges cannot wrap past Sunday
    ("0 0 * * 1,3-5", "Mon,Wed..Fri *-*-* 00:00:00"),
    ("0 0 * * */2", "Tue,Thu,Sat,Sun *-*-* 00:00:00"),
    ("0 0 * * 0-7", "*-*-* 00:00:00"),  # every day is no restriction
    ("  0   3 *  * *  ", "*-*-* 03:00:00"),
    ("@hourly", "*-*-* *:00:00"),
    ("@daily", "*-*-* 00:00:00"),
    ("@weekly", "Sun *-*-* 00:00:00"),
    ("@monthly", "*-*-01 00:00:00"),
    ("@yearly", "*-01-01 00:00:00"),
]


@pytest.mark.parametrize(("schedule", "expected"), VECTORS)
def test_to_on_calendar(schedule: str, expected: str) -> None:
    assert to_on_calendar(schedule) == expected


ERRORS = [
    ("61 * * * *", "minute must be 0-59"),
    ("* 24 * * *", "hour must be 0-23"),
    ("* * 0 * *", "day-of-month must be 1-31"),
    ("* * 32 * *", "day-of-month must be 1-31"),
    ("* * * 13 *", "month must be 1-12 or jan-dec"),
    ("* * * foo *", "month must be 1-12 or jan-dec"),
    ("* * * * 8", "day-of-week must be 0-7 or sun-sat"),
    ("* * * * funday", "day-of-week must be 0-7 or sun-sat"),
    ("x * * * *", "minute must be 0-59"),
    ("-1 * * * *", "minute must be 0-59"),
    ("5-1 * * * *", "minute range 5-1 goes backwards"),
    ("*/0 * * * *", "minute step must be a positive integer, got '0'"),
    ("*/x * * * *", "minute step must be a positive integer, got 'x'"),
    ("1,,2 * * * *", "minute has an empty list item"),
    ("* * *", "it needs 5 fields (minute hour day-of-month month day-of-week), got 3"),
    ("* * * * * *", "it needs 5 fields (minute hour day-of-month month day-of-week), got 6"),
    ("@reboot", "unknown shortcut '@reboot'"),
    ("0 0 1 * 1", "restricting both day-of-month and day-of-week is not supported"),
    ("0 0 */2 * mon", "restricting both day-of-month and day-of-week is not supported"),
]


@pytest.mark.parametrize(("schedule", "message"), ERRORS)
def test_invalid_schedules(schedule: str, message: str) -> None:
    with pytest.raises(CronError) as caught:
        to_on_calendar(schedule)
    assert str(caught.value).startswith(message)


def _systemd_analyze() -> str:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: cannot check the expressions with systemd")
    return analyze


def test_outputs_are_what_systemd_normalizes_them_to() -> None:
    """Each expression parses in systemd and is already in systemd's normalized form."""
    expressions = sorted({expected for _, expected in VECTORS})
    result = subprocess.run(
        [_systemd_analyze(), "calendar", *expressions],
        capture_output=True,
        text=True,
        check=False,
        env={"TZ": "UTC", "PATH": "/usr/bin:/bin", "LC_ALL": "C"},
    )
    assert result.returncode == 0, result.stderr
    normalized = [
        line.split(":", 1)[1].strip()
        for line in result.stdout.splitlines()
        if line.strip().startswith("Normalized form:")
    ]
    assert normalized == expressions


# --- same firing times as cron ---------------------------------------------------

_NAMES = {
    3: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
    4: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
}
_BOUNDS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
_SHORTCUT_CRON = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
}


def _cron_sets(schedule: str) -> list[set[int]]:
    """A small independent reading of cron fields, as sets of values."""
    sets = []
    for index, text in enumerate(_SHORTCUT_CRON.get(schedule, schedule).split()):
        low, high = _BOUNDS[index]
        names = _NAMES.get(index, [])

        def number(word: str, names: list[str] = names, index: int = index) -> int:
            if word.lower() in names:
                return names.index(word.lower()) + (1 if index == 3 else 0)
            return int(word)

        values: set[int] = set()
        for item in text.split(","):
            base, slash, step = item.partition("/")
            if base == "*":
                first, last = low, high
            elif "-" in base:
                first, last = (number(w) for w in base.split("-"))
            else:
                first = number(base)
                last = high if slash else first
            values |= set(range(first, last + 1, int(step or 1)))
        if index == 4:
            values = {0 if v == 7 else v for v in values}
        sets.append(values)
    return sets


def _cron_times(schedule: str, start: datetime, count: int) -> list[datetime]:
    minutes, hours, days, months, weekdays = _cron_sets(schedule)
    found: list[datetime] = []
    day = start.replace(hour=0, minute=0)
    while len(found) < count:
        cron_weekday = (day.weekday() + 1) % 7  # cron: 0 = Sunday
        if day.month in months and day.day in days and cron_weekday in weekdays:
            for hour in sorted(hours):
                for minute in sorted(minutes):
                    moment = day.replace(hour=hour, minute=minute)
                    if moment > start and len(found) < count:
                        found.append(moment)
        day += timedelta(days=1)
    return found


def test_systemd_fires_when_cron_would() -> None:
    """The next 6 firing times agree with cron's, from a fixed base time, for every vector."""
    analyze = _systemd_analyze()
    base = datetime(2026, 1, 1, 0, 0)
    for schedule, expression in VECTORS:
        result = subprocess.run(
            [analyze, "calendar", "--iterations=6", "--base-time=2026-01-01 00:00:00", expression],
            capture_output=True,
            text=True,
            check=False,
            env={"TZ": "UTC", "PATH": "/usr/bin:/bin", "LC_ALL": "C"},
        )
        assert result.returncode == 0, result.stderr
        systemd_times = [
            datetime.strptime(" ".join(line.split()[-3:-1]), "%Y-%m-%d %H:%M:%S")
            for line in result.stdout.splitlines()
            if "Next elapse:" in line or "Iter. #" in line
        ]
        assert systemd_times == _cron_times(schedule.strip(), base, 6), schedule
