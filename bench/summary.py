"""Medians, ranges, ratios and failure totals of the bench's raw results."""

from __future__ import annotations

import statistics

MEASURES = {
    "first": "first deploy -> HTTP 200",
    "code": "code-only redeploy -> new code served",
    "nochange": "no-change redeploy -> command done",
    "config": "config:set -> new value served",
    "scale": "ps:scale web=2 -> command done",
}
PLATFORMS = ("hop3", "piku")
FAILURE_KINDS = ("http_5xx", "resets", "errors")


def seconds(rounds: list[dict], platform: str, measure: str) -> list[float]:
    """The timings of one measure over the rounds (failed runs left out)."""
    values = []
    for one in rounds:
        entry = one.get(platform, {}).get(measure)
        if entry and "seconds" in entry:
            values.append(entry["seconds"])
    return values


def spread(values: list[float]) -> dict | None:
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}  # fmt: skip


def ratio(hop3: dict | None, piku: dict | None) -> float | None:
    """Hop3's median over Piku's (above 1: Hop3 is slower)."""
    if not hop3 or not piku or not piku["median"]:
        return None
    return hop3["median"] / piku["median"]


def failures(rounds: list[dict], platform: str, measure: str) -> dict[str, dict[str, int]]:
    """Requests and failures by kind, for plain and keep-alive clients, summed over rounds."""
    total = {kind: {"requests": 0, **dict.fromkeys(FAILURE_KINDS, 0)}
             for kind in ("plain", "keepalive")}  # fmt: skip
    for one in rounds:
        load = one.get(platform, {}).get(measure, {}).get("load")
        for client, counts in (load or {}).items():
            for key in total[client]:
                total[client][key] += counts.get(key, 0)
    return total


def unchanged_reports(rounds: list[dict], platform: str) -> tuple[int, int]:
    """(how many no-change redeploys said "unchanged", how many ran)."""
    flags = [one[platform]["nochange"]["unchanged"] for one in rounds
             if "unchanged" in one.get(platform, {}).get("nochange", {})]  # fmt: skip
    return sum(flags), len(flags)


def _cell(value: dict | None) -> str:
    if not value:
        return "-"
    return f"{value['median']:6.2f}s ({value['min']:.2f}-{value['max']:.2f})"


def render(rounds: list[dict], load_start: float, load_end: float) -> str:
    lines = [f"{'measure':40} {'hop3 median (min-max)':>24} {'piku median (min-max)':>24} "
             f"{'hop3/piku':>9}"]  # fmt: skip
    for measure, label in MEASURES.items():
        hop3, piku = (spread(seconds(rounds, p, measure)) for p in PLATFORMS)
        if not hop3 and not piku:
            continue
        factor = ratio(hop3, piku)
        lines.append(f"{label:40} {_cell(hop3):>24} {_cell(piku):>24} "
                     f"{f'{factor:.2f}x' if factor else '-':>9}")  # fmt: skip
    lines.append("")
    lines.append("failed requests during redeploys, all rounds (5xx/resets/errors of requests):")
    for measure, label in MEASURES.items():
        if measure == "first":
            continue
        cells = []
        for platform in PLATFORMS:
            counts = failures(rounds, platform, measure)
            if not counts["plain"]["requests"] and not counts["keepalive"]["requests"]:
                continue
            parts = [f"{c} {v['http_5xx']}/{v['resets']}/{v['errors']} of {v['requests']}"
                     for c, v in counts.items()]  # fmt: skip
            cells.append(f"{platform}: " + ", ".join(parts))
        if cells:
            lines.append(f"  {label:38} " + "; ".join(cells))
    for platform in PLATFORMS:
        said, ran = unchanged_reports(rounds, platform)
        if ran:
            lines.append(f"  {platform}: no-change redeploy reported 'unchanged' {said}/{ran}")
    lines.append(f"1-min load average: {load_start:.2f} at the start, {load_end:.2f} at the end")
    return "\n".join(lines)
