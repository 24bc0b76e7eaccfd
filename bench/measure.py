"""Readings the benchmarks take: percentiles and medians, CPU time (psutil) and memory."""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

BUSY = ("user", "nice", "system", "irq", "softirq", "steal")  # fields of busy CPU time


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` in 0..1) of unsorted samples; NaN when empty."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return float(ordered[min(max(1, math.ceil(fraction * len(ordered))), len(ordered)) - 1])


def median(values: Sequence[float]) -> float:
    """The median of the finite values; NaN when there are none."""
    finite = [value for value in values if math.isfinite(value)]
    return float(statistics.median(finite)) if finite else math.nan


def spread(values: Sequence[float]) -> float:
    """The largest relative distance of a value from the median (0.1 means ±10 %)."""
    middle, finite = median(values), [value for value in values if math.isfinite(value)]
    return max(abs(v - middle) for v in finite) / abs(middle) if finite and middle else math.nan


def process_cpu_seconds(pid: int, *, tree: bool = False) -> float:
    """User plus system CPU time of a process; with `tree`, of its running descendants too (a
    server whose workers are child processes, such as gunicorn's, counts whole)."""
    root = psutil.Process(pid)
    total = sum(root.cpu_times()[:2])
    for child in root.children(recursive=True) if tree else []:
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            continue  # it ended while we looked
    return total


def cpu_seconds(pid: int) -> float:
    """`process_cpu_seconds`, 0 for a process that has ended."""
    try:
        return process_cpu_seconds(pid)
    except psutil.Error:
        return 0.0


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """User plus system CPU time of each thread of a process, by thread id."""
    return {t.id: t.user_time + t.system_time for t in psutil.Process(pid).threads()}


def busy_seconds(cpu: int | None = None) -> float:
    """Busy time since boot (user nice system irq softirq steal) of one CPU, or of the whole
    machine for None; NaN if not listed."""
    times = psutil.cpu_times() if cpu is None else psutil.cpu_times(percpu=True)
    if cpu is not None:
        if cpu >= len(times):
            return math.nan
        times = times[cpu]
    return sum(getattr(times, name, 0.0) for name in BUSY)


def status_kib(pid: int, field: str = "VmRSS") -> int | None:
    """A KiB field of /proc/PID/status (VmRSS, VmHWM: psutil has no peak); None when gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = (line.split()[1] for line in text.splitlines() if line.startswith(f"{field}:"))
    return next(map(int, found), None)


def rss_kib(pid: int) -> int:
    """The resident set size of a running process in KiB."""
    value = status_kib(pid)
    if value is None:
        raise RuntimeError(f"no VmRSS for process {pid}")
    return value


async def settled(read: Callable[[], int], interval: float, limit: float) -> int:
    """Read until two consecutive values are equal, or for `limit` s; the last value."""
    deadline, previous = time.monotonic() + limit, read()
    while time.monotonic() < deadline:
        await asyncio.sleep(interval)
        current = read()
        if current == previous:
            return current
        previous = current
    return previous


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU times at one instant: the server's (with its child processes), this
    process's, the server CPU's."""

    at: float
    server_s: float
    client_s: float
    server_cpu_busy_s: float

    @classmethod
    def take(cls, server_pid: int, server_cpu: int | None) -> CpuSample:
        """Read them now (the CPU's busy time is NaN when the server is not pinned)."""
        busy = math.nan if server_cpu is None else busy_seconds(server_cpu)
        server = process_cpu_seconds(server_pid, tree=True)
        return cls(time.monotonic(), server, time.process_time(), busy)

    def until(self, end: CpuSample) -> tuple[float, float, float]:
        """Shares of one CPU (%) from here to `end`: server, client, others on the server CPU."""
        elapsed = end.at - self.at
        if elapsed <= 0:
            return math.nan, math.nan, math.nan
        server = (end.server_s - self.server_s) / elapsed * 100
        client = (end.client_s - self.client_s) / elapsed * 100
        busy = (end.server_cpu_busy_s - self.server_cpu_busy_s) / elapsed * 100
        return server, client, max(0.0, busy - server) if math.isfinite(busy) else math.nan
