"""The deploy bench's pure logic: host counts, failure classes, summaries."""

from __future__ import annotations

import http.client
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import load
import summary
from sandbox import host_count


@pytest.mark.parametrize(
    ("known", "count"),
    [
        ([], 2),
        (["sandbox-1"], 2),
        (["sandbox-1", "sandbox-2", "sandbox-5"], 5),
        (["sandbox-3", "other"], 3),
    ],
)
def test_host_count_never_drops_higher_hosts(known, count):
    assert host_count(known) == count


def test_classify_sorts_outcomes_by_kind():
    counts = load.Counts()
    load.classify(counts, 200, None)
    load.classify(counts, 404, None)
    load.classify(counts, 502, None)
    load.classify(counts, None, ConnectionResetError())
    load.classify(counts, None, http.client.RemoteDisconnected())
    load.classify(counts, None, ConnectionRefusedError())
    load.classify(counts, None, TimeoutError())
    assert (counts.requests, counts.ok, counts.http_5xx, counts.resets, counts.errors) == (
        7, 2, 1, 2, 2,
    )  # fmt: skip
    assert counts.failed == 5


def _round(hop3_code, piku_code, unchanged=True, load_counts=None):
    counts = load_counts or {
        "plain": {"requests": 10, "http_5xx": 1, "resets": 0, "errors": 0},
        "keepalive": {"requests": 5, "http_5xx": 0, "resets": 2, "errors": 0},
    }
    return {
        "hop3": {"code": {"seconds": hop3_code, "load": counts},
                 "nochange": {"seconds": 1.0, "unchanged": unchanged}},
        "piku": {"code": {"seconds": piku_code, "load": counts}},
    }  # fmt: skip


def test_spread_and_ratio_use_medians_and_skip_failed_runs():
    rounds = [
        _round(3.0, 1.0),
        _round(5.0, 2.0),
        _round(4.0, 4.0),
        {"hop3": {"code": {"error": "x"}}},
    ]
    hop3 = summary.spread(summary.seconds(rounds, "hop3", "code"))
    piku = summary.spread(summary.seconds(rounds, "piku", "code"))
    assert hop3 == {"median": 4.0, "min": 3.0, "max": 5.0, "n": 3}
    assert summary.ratio(hop3, piku) == 2.0
    assert summary.ratio(hop3, None) is None


def test_failures_sum_over_rounds_per_client_kind():
    rounds = [_round(1, 1), _round(1, 1)]
    totals = summary.failures(rounds, "piku", "code")
    assert totals["plain"] == {"requests": 20, "http_5xx": 2, "resets": 0, "errors": 0}
    assert totals["keepalive"]["resets"] == 4
    assert summary.failures(rounds, "piku", "config")["plain"]["requests"] == 0


def test_render_shows_ratio_failures_unchanged_and_load():
    text = summary.render([_round(4.0, 2.0), _round(4.0, 2.0, unchanged=False)], 1.5, 2.25)
    assert "2.00x" in text
    assert "plain 2/0/0 of 20" in text
    assert "hop3: no-change redeploy reported 'unchanged' 1/2" in text
    assert "1.50 at the start, 2.25 at the end" in text
    assert "8.4" not in text and "7.6" not in text
