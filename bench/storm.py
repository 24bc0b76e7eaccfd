"""Connection storms (issue 17): every client of a restarted process reconnecting at once.

One scenario, run against this service on each channel layer and against the raw server: a
probe client connects first and keeps pinging (and calling `add` now and then); then
`connections` clients open and initialize, `parallel` handshakes in flight at a time, and stay
idle; then they all close. It reports the time to open them all and to open the first half
(their ratio is 2 for a cost per connection that does not grow, 4 for a quadratic one), the
server's RSS growth per idle connection, the probe's ping latency meanwhile, and how close the
server's RSS comes back to where it was once they have closed.

The probe runs in a process of its own (`python -m bench.storm --probe URL`), so that its
latencies are the server's and not those of the load generator's busy event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from dataclasses import dataclass
from typing import ClassVar

import orjson

from bench import cpu
from bench.mcp_client import (
    RawClient,
    add_request,
    check_add_result,
    expect_result,
    open_connection,
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


async def _probe(connection: RawClient, interval: float, stop: asyncio.Event) -> ProbeRecord:
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
            await connection.ws.send(add_request(request_id))
        else:
            await connection.ws.send(ping_request(request_id))
        reply = await asyncio.wait_for(connection.ws.recv(), PROBE_REPLY_TIMEOUT)
        record.latencies.append(clock() - started)
        if calling:
            check_add_result(reply, request_id)
            record.calls_answered += 1
        else:
            expect_result(reply, request_id)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
    return record


async def _probe_main(url: str, interval_ms: float) -> None:
    """The probe process: connect, say `ready`, probe until stdin has a line, print results."""
    connection = await open_connection(url)
    stop = asyncio.Event()
    probing = asyncio.create_task(_probe(connection, interval_ms / 1000, stop))
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await asyncio.to_thread(sys.stdin.readline)
    stop.set()
    record = await probing
    await connection.close()
    result = {"latencies": record.latencies, "calls_answered": record.calls_answered}
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


class ProbeProcess:
    """`async with ProbeProcess(url, interval) as probe:` probes while the block runs."""

    def __init__(self, url: str, interval_ms: float) -> None:
        self.url = url
        self.interval_ms = interval_ms
        self.record: ProbeRecord | None = None
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> ProbeProcess:
        command = ["-m", "bench.storm", "--probe", self.url, "--interval-ms", str(self.interval_ms)]
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._process.stdout is not None
        line = await asyncio.wait_for(self._process.stdout.readline(), PROBE_REPLY_TIMEOUT * 3)
        if line.strip() != b"ready":
            raise RuntimeError(f"the probe did not start: {line!r}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        process = self._process
        if process is None:
            return
        output, _ = await process.communicate(b"stop\n")
        if process.returncode != 0 or exc_info[0] is not None:
            if process.returncode != 0:
                raise RuntimeError(f"the probe failed ({process.returncode})")
            return
        payload = orjson.loads(output.strip().splitlines()[-1])
        self.record = ProbeRecord(payload["latencies"], payload["calls_answered"])


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
            metric("growth_x", f"storm: time for {n:,} / time for {half:,}", "ratio"),
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

        probe = ProbeProcess(target.url, self.probe_interval_ms)
        opened_at: list[float] = []
        async with probe:
            before = await settled(rss, OPEN_SETTLE_INTERVAL, OPEN_SETTLE_TIMEOUT)
            started = time.perf_counter()
            cpu_before = cpu.process_cpu_seconds(target.server_pid)
            connections = await open_many(
                target.url, self.connections, self.parallel, opened_at=opened_at
            )
            cpu_used = cpu.process_cpu_seconds(target.server_pid) - cpu_before
        try:
            held = await settled(rss, OPEN_SETTLE_INTERVAL, OPEN_SETTLE_TIMEOUT)
        finally:
            await close_all(connections)
        closed = await settled(rss, CLOSED_SETTLE_INTERVAL, CLOSED_SETTLE_TIMEOUT)
        record = probe.record
        assert record is not None
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


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.storm --probe URL`: the probe process of the storm."""
    parser = argparse.ArgumentParser(description="the storm's probe client")
    parser.add_argument("--probe", required=True, help="WebSocket URL of the MCP endpoint")
    parser.add_argument("--interval-ms", type=float, default=10.0)
    args = parser.parse_args(argv)
    import uvloop

    uvloop.run(_probe_main(args.probe, args.interval_ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
