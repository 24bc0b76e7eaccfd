"""The report's section for issue "long-running operations": process_images, pings, history."""

from __future__ import annotations

import math

from bench.goals import (
    CALLS_C50,
    GOALS,
    HISTORY_SHARE,
    IMAGES_OFF_S,
    IMAGES_ON_CPU,
    IMAGES_ON_S,
    LONG_RUNNING,
    PING_P99,
    PROGRESS_PER_S,
    Goal,
)
from bench.markdown import fmt, table
from bench.results import RunResults

SERVER = "service"
PING_P50 = "images-ping.p50_us"
PING_MAX = "images-ping.max_us"
PINGS = "images-ping.pings"
ITEMS = "images.items"
SENT = "images.progress_sent"


def _goal(metric: str, baseline: str | None = None) -> Goal:
    for goal in (*GOALS, *LONG_RUNNING):
        if goal.metric == metric and goal.baseline == baseline:
            return goal
    raise KeyError(metric)


def _verdict(results: RunResults, goal: Goal, server: str = SERVER) -> str:
    return goal.verdict(results, server) if goal.applies(results, server) else "not measured"


def _pct(value: float, digits: int = 1) -> str:
    """E.g. `31.6 %`; `n/a` when not measured (py-spy missing)."""
    return "n/a" if math.isnan(value) else f"{value:.{digits}f} %"


def _ms(results: RunResults, key: str) -> str:
    return f"{results.median(SERVER, key) / 1000:,.1f} ms"


def _pairs(results: RunResults) -> str:
    values = results.samples(SERVER, "images.overhead_pct")
    return ", ".join(f"{value:+.1f}" for value in values) + " %"


def _images_rows(results: RunResults) -> list[list[str]]:
    m = results.median
    overhead, cpu_overhead = _goal(IMAGES_ON_S), _goal(IMAGES_ON_CPU)
    items, sent, on_s = m(SERVER, ITEMS), m(SERVER, SENT), m(SERVER, IMAGES_ON_S)
    count = len(results.samples(SERVER, IMAGES_ON_S))
    runs = f"{count} run{'s' if count != 1 else ''} each way"
    return [
        [
            f"process_images over {items:,.0f} files, progressToken ({runs})",
            f"{on_s:.2f} s, {fmt(m(SERVER, 'images.on.images_per_s'), 'images/s')} images/s",
            "",
            "",
        ],
        [
            "process_images, no progressToken",
            f"{m(SERVER, IMAGES_OFF_S):.2f} s, "
            f"{fmt(m(SERVER, 'images.off.images_per_s'), 'images/s')} images/s",
            "",
            "",
        ],
        [
            "progress overhead, wall time (ratio of the medians)",
            f"{overhead.value(results, SERVER):+.1f} % (each pair: {_pairs(results)}; "
            f"runs without progress spread ±{results.spread(SERVER, IMAGES_OFF_S) * 100:.0f} %)",
            overhead.target_text("%"),
            _verdict(results, overhead),
        ],
        [
            "progress overhead, server CPU per image",
            f"{cpu_overhead.value(results, SERVER):+.1f} % "
            f"({fmt(m(SERVER, IMAGES_ON_CPU), 'µs')} / {fmt(m(SERVER, 'images.off.cpu_us'), 'µs')}"
            " µs)",
            cpu_overhead.target_text("%"),
            _verdict(results, cpu_overhead),
        ],
        [
            "progress code (tool's reports, coalescer, notifications), share of server CPU",
            f"{_pct(m(SERVER, 'images.on.progress_pct'), 2)} with progressToken, "
            f"{_pct(m(SERVER, 'images.off.progress_pct'), 2)} without (py-spy)",
            "",
            "",
        ],
        [
            "progress notifications, progress-on run",
            f"{items:,.0f} reported, {sent:,.0f} sent ({on_s:.1f} s at "
            f"{m(SERVER, PROGRESS_PER_S):.1f}/s between the first and the final)",
            "<= 10/s",
            _verdict(results, _goal(PROGRESS_PER_S)),
        ],
        [
            f"ping on a second connection during process_images "
            f"({fmt(m(SERVER, PINGS), 'items')} pings)",
            f"p50 {_ms(results, PING_P50)}, p99 {_ms(results, PING_P99)}, "
            f"max {_ms(results, PING_MAX)}",
            "p99 <= 50 ms",
            _verdict(results, _goal(PING_P99)),
        ],
    ]


def _history_rows(results: RunResults) -> list[list[str]]:
    m = results.median
    rows: list[list[str]] = []
    if results.samples(SERVER, CALLS_C50):
        ratios = []
        for baseline, name in (("sdk", "the SDK"), ("raw", "raw websockets")):
            if results.samples(baseline, CALLS_C50):
                goal = _goal(CALLS_C50, baseline)
                ratio = goal.value(results, SERVER)
                ratios.append(
                    f"{fmt(ratio, 'x')} {name} ({fmt(m(baseline, CALLS_C50), 'calls/s')}): "
                    f"{_verdict(results, goal)} ({goal.target_text()})"
                )
        rows.append(
            [
                "trivial tools/call (add) at C=50, history on",
                f"{fmt(m(SERVER, CALLS_C50), 'calls/s')} calls/s"
                + (": " + "; ".join(ratios) if ratios else ""),
                ">= 5x SDK, >= 0.15x raw",
                "see the goals",
            ]
        )
    if results.samples(SERVER, HISTORY_SHARE):
        share = m(SERVER, HISTORY_SHARE)
        rows.append(
            [
                "history recording, share of server CPU at C=50 (py-spy + /proc)",
                f"{_pct(share)} (writer thread {_pct(m(SERVER, 'history.writer_pct'))}, "
                f"snapshots on the event loop {_pct(m(SERVER, 'history.handoff_pct'))}); "
                f"{fmt(m(SERVER, 'history.us_per_call'), 'µs')} of "
                f"{fmt(m(SERVER, 'history.cpu_us_per_call'), 'µs')} µs per call",
                "<= 15 %",
                _verdict(results, _goal(HISTORY_SHARE)),
            ]
        )
    return rows


def long_running_section(results: RunResults) -> list[str]:
    """process_images with progress on and off, pings meanwhile, the cost of history."""
    if not results.has(SERVER):
        return []
    rows = _images_rows(results) if results.samples(SERVER, IMAGES_ON_S) else []
    rows += _history_rows(results)
    if not rows:
        return []
    foreign = max(results.median(SERVER, "images.on.foreign_pct"), 0.0)
    note = (
        f"This service (`manage.py serve`) only; medians over the repetitions. Other processes "
        f"took a median {foreign:.0f} % of the server's CPU during the progress-on runs."
        if not math.isnan(foreign)
        else "This service (`manage.py serve`) only; medians over the repetitions."
    )
    return [
        "### Long-running operations",
        "",
        note,
        "",
        *table(["measurement", "value", "target", "verdict"], rows),
        "",
    ]
