"""What history recording costs the service: its share of server CPU under C=50 calls.

The service has no switch to turn history off, so its cost is measured from inside. While C
connections make back-to-back `add` calls, `py-spy record --threads` samples the server's
running threads and /proc gives each thread's CPU time over the same seconds. A thread's CPU
time is split between history and the rest in proportion to its samples: the writer thread
(`HistoryWriter`, `operations_persist`, the row inserter) is history throughout, the event
loop only while it builds and hands over snapshots (`RunningOperation.persist`).
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from bench.mcp_client import RawClient, call_add
from bench.pyspy import Recording, py_spy_path
from bench.scenarios import LoadTarget, Metric, Scenario, close_all, open_many

# Kinds of code, the first match wins: the writer thread, then what feeds it on the loop.
HISTORY_KINDS = {
    "writer": ("HistoryWriter._run (",),
    "handoff": (
        "(mcp_server/runtime/history.py:",
        "(mcp_server/services.py:",
        "(mcp_server/history_insert.py:",
        "RunningOperation.persist (",
        "RunningOperation.add_item_error (",
    ),
}


async def _calls_until(connection: RawClient, stop: asyncio.Event, done: list[int]) -> None:
    """Back-to-back `add` calls until `stop`; counts them in `done[0]`."""
    while not stop.is_set():
        await call_add(connection)
        done[0] += 1


@dataclass(frozen=True)
class HistoryProfile(Scenario):
    """C connections of back-to-back `add` calls while py-spy samples the server."""

    kind: ClassVar[str] = "history"
    targets: ClassVar[tuple[str, ...] | None] = ("service",)
    concurrency: int = 50
    warmup_s: float = 1.0
    seconds: int = 5
    rate: int = 100

    @property
    def label(self) -> str:
        """E.g. `history profile C=50, 5 s`."""
        return f"history profile C={self.concurrency}, {self.seconds} s"

    def metrics(self) -> list[Metric]:
        """History's share of server CPU, its parts, per call, and the load while sampled."""
        k, c = self.kind, f"C={self.concurrency}"
        return [
            Metric(f"{k}.share_pct", f"history share of server CPU, {c}", "%", False),
            Metric(f"{k}.writer_pct", "of which the writer thread", "%", False),
            Metric(f"{k}.handoff_pct", "of which snapshots on the event loop", "%", False),
            Metric(f"{k}.us_per_call", f"history CPU per call, {c}", "µs", False),
            Metric(f"{k}.cpu_us_per_call", f"server CPU per call while sampled, {c}", "µs", False),
            Metric(f"{k}.calls_per_s", f"calls/s while sampled, {c}", "calls/s", True),
            Metric(f"{k}.samples", "py-spy samples", "items", True),
        ]

    def timeout(self) -> float:
        """Warm-up and sampling plus time to open and close the connections."""
        return self.warmup_s + self.seconds + 90.0 + self.concurrency * 0.1

    async def run(self, target: LoadTarget) -> dict[str, float]:
        """Load the server, sample it for `seconds`, split its CPU time."""
        keys = [metric.key for metric in self.metrics()]
        if py_spy_path() is None:
            return dict.fromkeys(keys, math.nan)
        connections = await open_many(target.url, self.concurrency)
        stop, done = asyncio.Event(), [0]
        workers = [asyncio.create_task(_calls_until(c, stop, done)) for c in connections]
        try:
            await asyncio.sleep(self.warmup_s)  # the load's warm-up, not a readiness wait
            with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
                output = Path(tmp) / "stacks.txt"
                recording = Recording(target.server_pid, HISTORY_KINDS, output, self.rate)
                calls, started = done[0], time.perf_counter()
                async with recording:
                    await asyncio.sleep(self.seconds)  # the sampling span
                calls, elapsed = done[0] - calls, time.perf_counter() - started
        finally:
            stop.set()
            outcomes = await asyncio.gather(*workers, return_exceptions=True)
            await close_all(connections)
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failures:
            raise failures[0]
        profile = recording.profile
        if profile is None or not profile.samples or not calls or profile.process_s <= 0:
            raise RuntimeError(f"{self.label}: no samples, no calls or no server CPU time")
        share = profile.share("writer", "handoff")
        values = [
            share * 100,
            profile.share("writer") * 100,
            profile.share("handoff") * 100,
            share * profile.process_s / calls * 1e6,
            profile.process_s / calls * 1e6,
            calls / elapsed,
            float(profile.samples),
        ]
        return dict(zip(keys, values, strict=True))
