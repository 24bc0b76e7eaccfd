"""Connection storms (issue 17): every client of a restarted process reconnecting at once.

The probe client that pings meanwhile runs in a process of its own (`python -m bench.storm
--probe URL`), so that its latencies are the server's, not the busy load generator's. It
inherits the load generator's CPU, which the storm keeps busy, so it runs there under
SCHED_FIFO: it stands for a client on another machine, and a real-time task is run the moment
a reply wakes it instead of waiting for the generator's time slice (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import resource
import sys
import time
from dataclasses import dataclass
from typing import ClassVar

import orjson

from bench.measure import percentile, process_cpu_seconds, settled
from bench.report import Goal, Metric, Row, declare
from bench.scenarios import (
    OPEN_CONCURRENCY,
    LoadTarget,
    Pings,
    Scenario,
    close_all,
    connect,
    open_many,
    ping_until,
)

CALL_EVERY = 10  # the probe calls `add` instead of pinging every CALL_EVERY-th time
PROBE_REPLY_TIMEOUT = 10.0  # a slower probe reply fails the scenario (a client would give up)
# Closing 10,000 sockets takes the server a while: its RSS is read until it stops moving.
CLOSED_SETTLE = (0.5, 60.0)
OPEN_SETTLE = (0.2, 10.0)
# Any real-time priority preempts the load generator (SCHED_OTHER); the lowest is enough.
PROBE_FIFO_PRIORITY = 1
CPU_VS_RAW = "CPU-second, vs raw websockets"
STORM_GOALS = {
    "open_s": (Goal("storm: time to open and initialize them all", 10.0, False),),
    "growth_x": (Goal("storm: time for all / time for the first half", 2.5, False),),
    "conn_per_s": (Goal("storm: connections/s, vs raw websockets", 0.6, True, baseline="raw"),),
    # CPU time is what a loaded machine does not distort (much): compare it.
    "cpu_ms_per_conn": (
        Goal(f"storm: connections per server {CPU_VS_RAW}", 0.6, True, "raw", True, True),
    ),
    "kib_per_conn": (Goal("storm: KiB per idle initialized connection", 28.0, False),),
    "probe_p99_ms": (Goal("storm: ping p99 of a client connected before", 50.0, False),),
    "rss_closed_pct": (Goal("storm: RSS after all closed, above before", 10.0, False),),
}


def take_real_time_priority() -> None:
    """Put this process under SCHED_FIFO (needs root or CAP_SYS_NICE), or say it could not."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(PROBE_FIFO_PRIORITY))
    except PermissionError:
        sys.stderr.write("warning: the storm's probe runs without real-time priority\n")


def own_cpu_seconds() -> float:
    """User plus system CPU time of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _probe_main(url: str, interval_ms: float) -> None:
    """The probe process: connect, say `ready`, probe until stdin has a line, print results."""
    client = await connect(url)
    started, cpu_before = time.perf_counter(), own_cpu_seconds()
    stop = asyncio.Event()
    probing = asyncio.create_task(
        ping_until(
            client,
            stop,
            interval_ms / 1000,
            add_every=CALL_EVERY,
            limit=PROBE_REPLY_TIMEOUT,
        )
    )
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await asyncio.to_thread(sys.stdin.readline)
    stop.set()
    seen = await probing
    cpu_share = (own_cpu_seconds() - cpu_before) / (time.perf_counter() - started)
    await client.close()
    payload = {"latencies": seen.latencies, "calls": seen.calls, "cpu_share": cpu_share}
    sys.stdout.write(orjson.dumps(payload).decode() + "\n")


class ProbeProcess:
    """`async with ProbeProcess(url, interval) as probe:` probes while the block runs."""

    def __init__(self, url: str, interval_ms: float) -> None:
        self.url, self.interval_ms = url, interval_ms
        self.seen: Pings | None = None
        self.cpu_share = math.nan  # the probe's own CPU time over its wall time
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> ProbeProcess:
        command = ["-m", "bench.storm", "--probe", self.url, "--interval-ms", str(self.interval_ms)]
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        assert self._process.stdout is not None
        line = await asyncio.wait_for(self._process.stdout.readline(), PROBE_REPLY_TIMEOUT * 3)
        if line.strip() != b"ready":
            raise RuntimeError(f"the probe did not start: {line!r}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._process is None:
            return
        output, _ = await self._process.communicate(b"stop\n")
        if self._process.returncode != 0:
            raise RuntimeError(f"the probe failed ({self._process.returncode})")
        if exc_info[0] is None:
            payload = orjson.loads(output.strip().splitlines()[-1])
            self.seen = Pings(payload["latencies"], payload["calls"])
            self.cpu_share = payload["cpu_share"]


@dataclass(frozen=True)
class ConnectionStorm(Scenario):
    """`connections` clients reconnecting at once while another one keeps working."""

    kind: ClassVar[str] = "storm"
    connections: int = 10_000
    parallel: int = OPEN_CONCURRENCY
    probe_interval_ms: float = 10.0

    title: ClassVar[str] = "storm x{connections}"

    def metrics(self) -> list[Metric]:
        """The targets are set for a storm of 10,000 (`--storm-connections`, the default)."""
        n, half = f"{self.connections:,}", f"{self.connections // 2:,}"
        rows: list[Row] = [
            ("open_s", f"time to open and initialize {n}", "s"),
            ("half_open_s", f"time to open the first {half}", "s"),
            ("growth_x", f"time for {n} / time for {half}", "ratio"),
            ("conn_per_s", "connections opened per second", "conn/s", True),
            ("cpu_ms_per_conn", "server CPU per connection opened", "ms"),
            ("kib_per_conn", f"KiB per idle connection at {n}", "KiB"),
            ("probe_p99_ms", "ping p99 of a connected client", "ms"),
            ("probe_max_ms", "slowest reply to the connected client", "ms"),
            ("probe_calls", "calls answered to the connected client", "calls", True),
            ("probe_cpu_pct", "the connected client's own CPU, of a core", "%"),
            ("rss_before_mib", "server RSS before", "MiB"),
            ("rss_closed_mib", "server RSS after all closed", "MiB"),
            ("rss_closed_pct", "RSS after all closed, above before", "%"),
        ]
        labelled = [(key, f"storm: {label}", *rest) for key, label, *rest in rows]
        return declare(self.kind, labelled, goals=STORM_GOALS)

    def timeout(self) -> float:
        return 120.0 + self.connections * 0.05

    async def run(self, target: LoadTarget) -> dict[str, float]:
        """Probe, storm, hold, close; see the module docstring."""
        probe = ProbeProcess(target.url, self.probe_interval_ms)
        opened_at: list[float] = []
        async with probe:
            before = await settled(target.rss, *OPEN_SETTLE)
            started = time.perf_counter()
            cpu_before = process_cpu_seconds(target.server_pid)
            clients = await open_many(target.urls, self.connections, self.parallel, opened_at)
            cpu_used = process_cpu_seconds(target.server_pid) - cpu_before
        try:
            held = await settled(target.rss, *OPEN_SETTLE)
        finally:
            await close_all(clients)
        closed = await settled(target.rss, *CLOSED_SETTLE)
        assert probe.seen is not None
        opened_at.sort()
        open_s = opened_at[-1] - started
        half_open_s = opened_at[len(opened_at) // 2 - 1] - started
        latencies_ms = [value * 1000 for value in probe.seen.latencies]
        values = [
            open_s,
            half_open_s,
            open_s / half_open_s,
            self.connections / open_s,
            cpu_used / self.connections * 1000,
            (held - before) / self.connections,
            percentile(latencies_ms, 0.99),
            max(latencies_ms),
            float(probe.seen.calls),
            probe.cpu_share * 100,
            before / 1024,
            closed / 1024,
            (closed - before) / before * 100,
        ]
        return self.values(*values)


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.storm --probe URL`: the probe process of the storm."""
    parser = argparse.ArgumentParser(description="the storm's probe client")
    parser.add_argument("--probe", required=True, help="WebSocket URL of the MCP endpoint")
    parser.add_argument("--interval-ms", type=float, default=10.0)
    args = parser.parse_args(argv)
    take_real_time_priority()
    import uvloop

    uvloop.run(_probe_main(args.probe, args.interval_ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
