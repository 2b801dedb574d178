"""Convert 5-field cron schedules to systemd ``OnCalendar=`` expressions.

Supported per field: ``*``, numbers, lists (``1,15``), ranges (``1-5``), steps
(``*/n``, ``a/n``, ``a-b/n``), month names (jan..dec) and day names (sun..sat,
0 and 7 are both Sunday). Also the shortcuts @hourly, @daily, @midnight,
@weekly, @monthly, @yearly and @annually.

systemd has no "range with step" (``a..b/n`` is invalid), so ``a-b/n`` is
expanded to an explicit list. Restricting both day-of-month and day-of-week is
refused: cron runs when *either* matches, systemd only when *both* do.
"""

from __future__ import annotations

from dataclasses import dataclass

MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_SYSTEMD_DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
# systemd orders weekdays Mon..Sun (a range may not wrap past Sunday).
_SYSTEMD_DAY_ORDER = [1, 2, 3, 4, 5, 6, 0]

SHORTCUTS = {
    "@hourly": "*-*-* *:00:00",
    "@daily": "*-*-* 00:00:00",
    "@midnight": "*-*-* 00:00:00",
    "@weekly": "Sun *-*-* 00:00:00",
    "@monthly": "*-*-01 00:00:00",
    "@yearly": "*-01-01 00:00:00",
    "@annually": "*-01-01 00:00:00",
}


class CronError(ValueError):
    """The schedule is not valid; the message says why (e.g. 'minute must be 0-59')."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: list[str] | None = None

    @property
    def rule(self) -> str:
        if self.name == "month":
            return "month must be 1-12 or jan-dec"
        if self.name == "day-of-week":
            return "day-of-week must be 0-7 or sun-sat"
        return f"{self.name} must be {self.low}-{self.high}"


FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, MONTHS),
    _Field("day-of-week", 0, 7, DAYS),
)


@dataclass(frozen=True)
class _Item:
    start: int
    end: int
    step: int
    star: bool  # written as '*' (possibly '*/n')
    open_end: bool  # written as 'a/n' (runs to the field's maximum)

    def values(self) -> list[int]:
        return list(range(self.start, self.end + 1, self.step))


def _number(text: str, spec: _Field) -> int:
    if spec.names and text.lower() in spec.names:
        return spec.names.index(text.lower()) + (1 if spec.name == "month" else 0)
    if not text.isdigit():
        raise CronError(spec.rule)
    value = int(text)
    if not spec.low <= value <= spec.high:
        raise CronError(spec.rule)
    return value


def _parse_item(text: str, spec: _Field) -> _Item:
    if not text:
        raise CronError(f"{spec.name} has an empty list item")
    base, slash, step_text = text.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) < 1:
            raise CronError(f"{spec.name} step must be a positive integer, got '{step_text}'")
        step = int(step_text)
    if base == "*":
        return _Item(spec.low, spec.high, step, star=True, open_end=False)
    first, dash, last = base.partition("-")
    start = _number(first, spec)
    if dash:
        end = _number(last, spec)
        if end < start:
            raise CronError(f"{spec.name} range {base} goes backwards")
        return _Item(start, end, step, star=False, open_end=False)
    if slash:  # 'a/n': from a to the end of the field
        return _Item(start, spec.high, step, star=False, open_end=True)
    return _Item(start, start, 1, star=False, open_end=False)


def _parse(schedule: str) -> list[list[_Item]]:
    parts = schedule.split()
    if len(parts) != 5:
        raise CronError(
            f"it needs 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}"
        )
    return [
        [_parse_item(item, spec) for item in part.split(",")]
        for part, spec in zip(parts, FIELDS, strict=True)
    ]


def _value_set(items: list[_Item], spec: _Field) -> set[int]:
    values = {v for item in items for v in item.values()}
    if spec.name == "day-of-week":
        values = {0 if v == 7 else v for v in values}
    return values


def _render_numeric(items: list[_Item], spec: _Field) -> str:
    rendered: list[str] = []
    for item in items:
        if item.star and item.step == 1:
            return "*"
        if item.star or item.open_end:
            rendered.append(f"{item.start:02d}/{item.step}")
        elif item.start == item.end:
            rendered.append(f"{item.start:02d}")
        elif item.step == 1:
            rendered.append(f"{item.start:02d}..{item.end:02d}")
        else:  # systemd has no 'a..b/n'
            rendered.extend(f"{v:02d}" for v in item.values())
    return ",".join(rendered)


def _render_days(days: set[int]) -> str:
    ordered = [d for d in _SYSTEMD_DAY_ORDER if d in days]
    runs: list[list[int]] = []
    for day in ordered:
        position = _SYSTEMD_DAY_ORDER.index(day)
        if runs and _SYSTEMD_DAY_ORDER.index(runs[-1][-1]) == position - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{_SYSTEMD_DAYS[run[0]]}..{_SYSTEMD_DAYS[run[-1]]}")
        else:
            parts.extend(_SYSTEMD_DAYS[d] for d in run)
    return ",".join(parts)


def normalize_schedule(schedule: str) -> str:
    """The schedule with whitespace normalized (what ``CronJob.schedule`` keeps)."""
    return " ".join(schedule.split())


def to_on_calendar(schedule: str) -> str:
    """``"*/5 * * * *"`` -> ``"*-*-* *:00/5:00"``; raises ``CronError`` if invalid."""
    text = normalize_schedule(schedule)
    if text.startswith("@"):
        if text.lower() in SHORTCUTS:
            return SHORTCUTS[text.lower()]
        known = ", ".join(SHORTCUTS)
        raise CronError(f"unknown shortcut {text!r} (known: {known})")
    minute, hour, dom, month, dow = _parse(text)
    dom_spec, dow_spec = FIELDS[2], FIELDS[4]
    days_of_month = _value_set(dom, dom_spec)
    days_of_week = _value_set(dow, dow_spec)
    dom_restricted = len(days_of_month) < 31
    dow_restricted = len(days_of_week) < 7
    if dom_restricted and dow_restricted:
        raise CronError(
            "restricting both day-of-month and day-of-week is not supported "
            "(cron runs when either matches, systemd only when both do); "
            "use two cron entries, one for each"
        )
    date = "*-{}-{}".format(
        _render_numeric(month, FIELDS[3]),
        _render_numeric(dom, dom_spec) if dom_restricted else "*",
    )
    clock = f"{_render_numeric(hour, FIELDS[1])}:{_render_numeric(minute, FIELDS[0])}:00"
    weekday = _render_days(days_of_week) + " " if dow_restricted else ""
    return f"{weekday}{date} {clock}"
