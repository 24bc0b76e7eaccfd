"""Connection storms (issue 17): every client of a restarted process reconnecting at once.

One scenario, run against this service on each channel layer and against the raw server: a
probe client connects first and keeps pinging (and calling `add` now and then); then
`connections` clients open and initialize, `parallel` handshakes in flight at a time, and stay
idle; then they all close. It reports the time to open them all and to open the first half
(their ratio is 2 for a cost per connection that does not grow, 4 for a quadratic one), the
server's RSS growth per idle connection, the probe's ping latency meanwhile, and how close the
server's RSS comes back to where it was once they have closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import ClassVar

from bench import cpu
from bench.mcp_client import (
    McpConnection,
    add_request,
    check_add_result,
    check_result,
    ping_request,
)
from bench.scenarios import (
    OPEN_CONCURRENCY,
    LoadTarget,
    Metric,
    Scenario,
    close_all,
    open_many,
    read_rss_kib,
    settled,
)
from bench.stats import percentile

# The probe calls `add` instead of pinging every CALL_EVERY-th time.
CALL_EVERY = 10
# A probe reply slower than this fails the scenario (a client would give up too).
PROBE_REPLY_TIMEOUT = 10.0
# Closing 10,000 sockets takes the server a while: poll its RSS until it stops moving.
CLOSED_SETTLE_INTERVAL = 0.5
CLOSED_SETTLE_TIMEOUT = 60.0
OPEN_SETTLE_INTERVAL = 0.2
OPEN_SETTLE_TIMEOUT = 10.0


@dataclass
class ProbeRecord:
    """What the already connected client saw during the storm."""

    latencies: list[float]
    calls_answered: int = 0


async def _probe(connection: McpConnection, interval: float, stop: asyncio.Event) -> ProbeRecord:
    """Ping (every CALL_EVERY-th request: call `add`) every `interval` s until `stop` is set."""
    record = ProbeRecord(latencies=[])
    clock = time.perf_counter
    sent_count = 0
    while not stop.is_set():
        sent_count += 1
        request_id = connection.next_id()
        calling = sent_count % CALL_EVERY == 0
        started = clock()
        if calling:
            await connection.websocket.send(add_request(request_id))
        else:
            await connection.websocket.send(ping_request(request_id))
        reply = await asyncio.wait_for(connection.websocket.recv(), PROBE_REPLY_TIMEOUT)
        record.latencies.append(clock() - started)
        if calling:
            check_add_result(reply, request_id)
            record.calls_answered += 1
        else:
            check_result(reply, request_id)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
    return record


@dataclass(frozen=True)
class ConnectionStorm(Scenario):
    """`connections` clients reconnecting at once while another one keeps working."""

    kind: ClassVar[str] = "storm"
    connections: int = 10_000
    parallel: int = OPEN_CONCURRENCY
    probe_interval_ms: float = 10.0

    @property
    def label(self) -> str:
        """E.g. `storm x10000`."""
        return f"storm x{self.connections}"

    def metrics(self) -> list[Metric]:
        """Open times and rate, growth, memory, the probe's latency and calls, RSS after."""
        n, half = self.connections, self.connections // 2

        def metric(name: str, label: str, unit: str, higher: bool = False) -> Metric:
            return Metric(f"{self.kind}.{name}", label, unit, higher)

        return [
            metric("open_s", f"storm: time to open and initialize {n:,}", "s"),
            metric("half_open_s", f"storm: time to open the first {half:,}", "s"),
            metric("growth_x", f"storm: time for {n:,} / time for {half:,}", "x"),
            metric("conn_per_s", "storm: connections opened per second", "conn/s", True),
            # CPU time is what a loaded machine does not distort (much): compare it.
            metric("cpu_ms_per_conn", "storm: server CPU per connection opened", "ms"),
            metric("kib_per_conn", f"storm: KiB per idle connection at {n:,}", "KiB"),
            metric("probe_p99_ms", "storm: ping p99 of a connected client", "ms"),
            metric("probe_max_ms", "storm: slowest reply to the connected client", "ms"),
            metric("probe_calls", "storm: calls answered to the connected client", "calls", True),
            metric("rss_before_mib", "storm: server RSS before", "MiB"),
            metric("rss_closed_mib", "storm: server RSS after all closed", "MiB"),
            metric("rss_closed_pct", "storm: RSS after all closed, above before", "%"),
        ]

    def timeout(self) -> float:
        """Generous: 50 ms per connection (main took 8 ms each at 10,000) plus two minutes."""
        return 120.0 + self.connections * 0.05

    async def run(self, target: LoadTarget) -> dict[str, float]:
        """Probe, storm, hold, close; see the module docstring."""

        def rss() -> int:
            return read_rss_kib(target.server_pid)

        probe = await McpConnection.open(target.url)
        try:
            before = await settled(rss, OPEN_SETTLE_INTERVAL, OPEN_SETTLE_TIMEOUT)
            stop = asyncio.Event()
            probing = asyncio.create_task(_probe(probe, self.probe_interval_ms / 1000, stop))
            opened_at: list[float] = []
            started = time.perf_counter()
            cpu_before = cpu.process_cpu_seconds(target.server_pid)
            try:
                connections = await open_many(
                    target.url, self.connections, self.parallel, opened_at=opened_at
                )
                cpu_used = cpu.process_cpu_seconds(target.server_pid) - cpu_before
            finally:
                stop.set()
                record = await probing
            try:
                held = await settled(rss, OPEN_SETTLE_INTERVAL, OPEN_SETTLE_TIMEOUT)
            finally:
                await close_all(connections)
            closed = await settled(rss, CLOSED_SETTLE_INTERVAL, CLOSED_SETTLE_TIMEOUT)
        finally:
            await probe.close()
        opened_at.sort()
        open_s = opened_at[-1] - started
        half_open_s = opened_at[len(opened_at) // 2 - 1] - started
        latencies_ms = [value * 1000 for value in record.latencies]
        return {
            "storm.open_s": open_s,
            "storm.half_open_s": half_open_s,
            "storm.growth_x": open_s / half_open_s,
            "storm.conn_per_s": self.connections / open_s,
            "storm.cpu_ms_per_conn": cpu_used / self.connections * 1000,
            "storm.kib_per_conn": (held - before) / self.connections,
            "storm.probe_p99_ms": percentile(latencies_ms, 0.99),
            "storm.probe_max_ms": max(latencies_ms),
            "storm.probe_calls": float(record.calls_answered),
            "storm.rss_before_mib": before / 1024,
            "storm.rss_closed_mib": closed / 1024,
            "storm.rss_closed_pct": (closed - before) / before * 100,
        }
