"""Readings the benchmarks take: percentiles and medians, CPU time and memory from /proc."""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Fields of a `cpu` line of /proc/stat that count busy time: user nice system irq softirq steal.
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)


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
    middle = median(values)
    finite = [value for value in values if math.isfinite(value)]
    if not finite or not middle:
        return math.nan
    return max(abs(value - middle) for value in finite) / abs(middle)


def stat_cpu_seconds(stat: Path) -> float:
    """User plus system CPU time from a `stat` file of /proc (a process's or a thread's)."""
    text = stat.read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process."""
    return stat_cpu_seconds(Path(f"/proc/{pid}/stat"))


def _children(pid: int) -> list[int]:
    """The direct children of a process (the threads' `children` lists of /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue  # the thread ended while we looked
    return found


def tree_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and its running descendants (a server whose
    workers are child processes, such as gunicorn's, counts whole)."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            total += process_cpu_seconds(current)
            pending += _children(current)
        except OSError:
            if current == pid:
                raise
    return total


def cpu_seconds(pid: int) -> float:
    """`process_cpu_seconds`, 0 for a process that has ended."""
    try:
        return process_cpu_seconds(pid)
    except OSError:
        return 0.0


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """User plus system CPU time of each thread of a process, by thread id."""
    times: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            times[int(task.name)] = stat_cpu_seconds(task / "stat")
        except (OSError, ValueError):
            continue  # the thread ended while we looked
    return times


def busy_seconds(cpu: int | None = None) -> float:
    """Busy time since boot of one CPU, or of the whole machine for None; NaN if not listed."""
    prefix = "cpu " if cpu is None else f"cpu{cpu} "
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(prefix):
            values = [int(value) for value in line.split()[1:]]
            return sum(values[i] for i in _BUSY_FIELDS if i < len(values)) / CLOCK_TICKS
    return math.nan


def status_kib(pid: int, field: str = "VmRSS") -> int | None:
    """A KiB field of /proc/PID/status (VmRSS, VmHWM); None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return None


def rss_kib(pid: int) -> int:
    """The resident set size of a running process in KiB."""
    value = status_kib(pid)
    if value is None:
        raise RuntimeError(f"no VmRSS for process {pid}")
    return value


async def settled(read: Callable[[], int], interval: float, limit: float) -> int:
    """Read until two consecutive values are equal, or for `limit` s; the last value."""
    deadline = time.monotonic() + limit
    previous = read()
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
        return cls(time.monotonic(), tree_cpu_seconds(server_pid), time.process_time(), busy)

    def until(self, end: CpuSample) -> tuple[float, float, float]:
        """Shares of one CPU (%) from here to `end`: server, client, others on the server CPU."""
        elapsed = end.at - self.at
        if elapsed <= 0:
            return math.nan, math.nan, math.nan
        server = (end.server_s - self.server_s) / elapsed * 100
        client = (end.client_s - self.client_s) / elapsed * 100
        busy = (end.server_cpu_busy_s - self.server_cpu_busy_s) / elapsed * 100
        return server, client, max(0.0, busy - server) if math.isfinite(busy) else math.nan
