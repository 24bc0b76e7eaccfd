"""CPU accounting over a measurement window: the server, the load generator, everyone else.

The machine may be shared, so each throughput window also reports how busy the server's CPU
was with other processes: a window with a lot of foreign load is not comparable to the others.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Fields of a `cpuN` line in /proc/stat that count busy time (guest is inside user).
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU times at one instant."""

    at: float
    server_s: float
    client_s: float
    server_cpu_busy_s: float | None


@dataclass(frozen=True)
class CpuUsage:
    """Shares of one CPU (100 % = one CPU fully busy) over a window."""

    server_pct: float
    client_pct: float
    foreign_pct: float


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc/PID/stat."""
    return stat_cpu_seconds(Path(f"/proc/{pid}/stat"))


def stat_cpu_seconds(stat: Path) -> float:
    """User plus system CPU time from a `stat` file of /proc (a process's or a thread's)."""
    text = stat.read_text()
    fields = text[text.rindex(")") + 2 :].split()
    # After the command name: state is field 3, utime field 14, stime field 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_busy_seconds(cpu: int) -> float | None:
    """Busy time of one CPU since boot from /proc/stat, or None if it is not listed."""
    prefix = f"cpu{cpu} "
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(prefix):
            values = [int(value) for value in line.split()[1:]]
            return sum(values[i] for i in _BUSY_FIELDS if i < len(values)) / CLOCK_TICKS
    return None


def sample(server_pid: int, server_cpu: int | None) -> CpuSample:
    """Read the server's, this process's and the server CPU's cumulative times."""
    return CpuSample(
        at=time.monotonic(),
        server_s=process_cpu_seconds(server_pid),
        client_s=time.process_time(),
        server_cpu_busy_s=None if server_cpu is None else cpu_busy_seconds(server_cpu),
    )


def usage(start: CpuSample, end: CpuSample) -> CpuUsage:
    """CPU shares between two samples; foreign load is NaN when the server is not pinned."""
    elapsed = end.at - start.at
    if elapsed <= 0:
        return CpuUsage(math.nan, math.nan, math.nan)
    server = (end.server_s - start.server_s) / elapsed * 100
    client = (end.client_s - start.client_s) / elapsed * 100
    if start.server_cpu_busy_s is None or end.server_cpu_busy_s is None:
        foreign = math.nan
    else:
        busy = (end.server_cpu_busy_s - start.server_cpu_busy_s) / elapsed * 100
        foreign = max(0.0, busy - server)
    return CpuUsage(server_pct=server, client_pct=client, foreign_pct=foreign)


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """User plus system CPU time of each thread of a process, by thread id (/proc/PID/task)."""
    times: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            times[int(task.name)] = stat_cpu_seconds(task / "stat")
        except (OSError, ValueError):
            continue  # the thread ended while we looked
    return times
