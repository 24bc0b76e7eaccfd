"""What the load generator measures. Each scenario runs inside the load generator process.

To add a scenario: subclass `Scenario` as a frozen dataclass (its fields are its parameters,
sent to the load generator as JSON), give it a unique `kind`, list its `metrics()`, implement
`run()`, register it in `SCENARIOS` of `bench/registry.py`, and add an instance to the plan in
`run.py`. Set `targets` to measure only some servers (e.g. `("service",)`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from bench import cpu
from bench.mcp_client import (
    RawClient,
    call_add,
    expect_result,
    initialize_request,
    open_connection,
)
from bench.stats import percentile
from mcp_server.client.wire import INITIALIZED as INITIALIZED_NOTIFICATION

OPEN_CONCURRENCY = 50
RSS_SETTLE_INTERVAL = 0.1
RSS_SETTLE_TIMEOUT = 3.0


@dataclass(frozen=True)
class Metric:
    """One number a scenario reports: a key unique in the plan and how to show it."""

    key: str
    label: str
    unit: str
    higher_is_better: bool


@dataclass(frozen=True)
class LoadTarget:
    """The server under test, as the load generator sees it."""

    url: str
    server_pid: int
    server_cpu: int | None = None
    # The same endpoint as a caller of another tenant (None: the target has no second one).
    peer_url: str | None = None


class Scenario(ABC):
    """A measurement the load generator runs against one server, returning named numbers."""

    kind: ClassVar[str]
    # The keys of the targets this scenario measures; None: every target.
    targets: ClassVar[tuple[str, ...] | None] = None

    def applies_to(self, target_key: str) -> bool:
        """Whether the plan runs this scenario against the target called `target_key`."""
        return self.targets is None or target_key in self.targets

    @property
    @abstractmethod
    def label(self) -> str:
        """A short unique name within a plan, e.g. `throughput C=50`."""

    @abstractmethod
    def metrics(self) -> list[Metric]:
        """The metrics `run` returns, in display order."""

    @abstractmethod
    async def run(self, target: LoadTarget) -> dict[str, float]:
        """Measure; return a value for each metric key. Raise on any wrong reply."""

    @abstractmethod
    def timeout(self) -> float:
        """Seconds after which the harness gives up on the load generator."""

    def params(self) -> dict[str, Any]:
        """The parameters, as JSON for the load generator's command line."""
        return dict(vars(self))


def _key(kind: str, suffix: str, metric: str) -> str:
    return f"{kind}.{suffix}.{metric}" if suffix else f"{kind}.{metric}"


async def open_many(
    url: str,
    count: int,
    parallel: int = OPEN_CONCURRENCY,
    *,
    opened_at: list[float] | None = None,
) -> list[RawClient]:
    """Open `count` initialized connections, at most `parallel` handshakes at a time; append
    the `perf_counter` instant each one became ready to `opened_at` when given."""
    gate = asyncio.Semaphore(parallel)

    async def one() -> RawClient:
        async with gate:
            connection = await open_connection(url)
        if opened_at is not None:
            opened_at.append(time.perf_counter())
        return connection

    results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    connections = [result for result in results if isinstance(result, RawClient)]
    failures = [result for result in results if isinstance(result, BaseException)]
    if failures:
        await close_all(connections)
        raise failures[0]
    return connections


async def close_all(connections: list[RawClient]) -> None:
    """Close connections concurrently, ignoring the ones already broken."""

    async def one(connection: RawClient) -> None:
        with contextlib.suppress(Exception):
            await connection.close()

    await asyncio.gather(*(one(connection) for connection in connections))


@dataclass(frozen=True)
class Throughput(Scenario):
    """C connections each doing back-to-back `tools/call add`: calls/s and latency."""

    kind: ClassVar[str] = "throughput"
    concurrency: int
    warmup_s: float = 1.0
    window_s: float = 3.0

    @property
    def label(self) -> str:
        """E.g. `throughput C=50`."""
        return f"throughput C={self.concurrency}"

    def metrics(self) -> list[Metric]:
        """calls/s, p50 and p99 latency, and where the CPU went, at this concurrency."""
        suffix = f"c{self.concurrency}"
        c = f"C={self.concurrency}"
        return [
            Metric(_key(self.kind, suffix, "calls_per_s"), f"calls/s, {c}", "calls/s", True),
            Metric(_key(self.kind, suffix, "p50_us"), f"p50 latency, {c}", "µs", False),
            Metric(_key(self.kind, suffix, "p99_us"), f"p99 latency, {c}", "µs", False),
            Metric(
                _key(self.kind, suffix, "cpu_us_per_call"), f"server CPU per call, {c}", "µs", False
            ),
            Metric(_key(self.kind, suffix, "server_cpu_pct"), f"server CPU, {c}", "%", False),
            Metric(
                _key(self.kind, suffix, "client_cpu_pct"), f"load generator CPU, {c}", "%", False
            ),
            Metric(
                _key(self.kind, suffix, "foreign_cpu_pct"),
                f"other processes on the server's CPU, {c}",
                "%",
                False,
            ),
        ]

    def timeout(self) -> float:
        """Warm-up and window plus time to open and close the connections."""
        return self.warmup_s + self.window_s + 60.0 + self.concurrency * 0.1

    async def run(self, target: LoadTarget) -> dict[str, float]:
        """Open the connections, then call in a loop; count what completes in the window."""
        connections = await open_many(target.url, self.concurrency)
        try:
            start = time.perf_counter()
            window_start = start + self.warmup_s
            window_end = window_start + self.window_s
            accounting = asyncio.create_task(_cpu_over(target, window_start, window_end))
            per_worker = await asyncio.gather(
                *(_call_loop(connection, window_start, window_end) for connection in connections)
            )
            used = await accounting
        finally:
            await close_all(connections)
        latencies = [sample for samples in per_worker for sample in samples]
        calls, p50, p99, per_call, server_cpu, client_cpu, foreign_cpu = (
            m.key for m in self.metrics()
        )
        rate = len(latencies) / self.window_s
        return {
            calls: rate,
            per_call: used.server_pct / 100 / rate * 1e6 if rate else math.nan,
            p50: percentile(latencies, 0.50) * 1e6,
            p99: percentile(latencies, 0.99) * 1e6,
            server_cpu: used.server_pct,
            client_cpu: used.client_pct,
            foreign_cpu: used.foreign_pct,
        }


async def _cpu_over(target: LoadTarget, start: float, end: float) -> cpu.CpuUsage:
    """CPU shares between two `perf_counter` instants (sleeps until each)."""
    await asyncio.sleep(max(0.0, start - time.perf_counter()))
    first = cpu.sample(target.server_pid, target.server_cpu)
    await asyncio.sleep(max(0.0, end - time.perf_counter()))
    return cpu.usage(first, cpu.sample(target.server_pid, target.server_cpu))


async def _call_loop(connection: RawClient, window_start: float, window_end: float) -> list[float]:
    """Back-to-back calls until the window ends; latencies (s) of calls completed in it."""
    latencies: list[float] = []
    clock = time.perf_counter
    while True:
        sent = clock()
        await call_add(connection)
        done = clock()
        if done >= window_end:
            return latencies
        if done >= window_start:
            latencies.append(done - sent)


@dataclass(frozen=True)
class ConnectInitialize(Scenario):
    """Sequential connections: time from opening TCP to the `initialize` result."""

    kind: ClassVar[str] = "connect"
    count: int = 200

    @property
    def label(self) -> str:
        """E.g. `connect+initialize x200`."""
        return f"connect+initialize x{self.count}"

    def metrics(self) -> list[Metric]:
        """p50 and p99 of connect+initialize."""
        return [
            Metric(_key(self.kind, "", "p50_us"), "connect+initialize p50", "µs", False),
            Metric(_key(self.kind, "", "p99_us"), "connect+initialize p99", "µs", False),
        ]

    def timeout(self) -> float:
        """Generous: 100 ms per connection plus a minute."""
        return 60.0 + self.count * 0.1

    async def run(self, target: LoadTarget) -> dict[str, float]:
        """Connect, initialize, close; one connection at a time."""
        samples: list[float] = []
        for _ in range(self.count):
            started = time.perf_counter()
            connection = await open_connection(target.url, initialize=False)
            try:
                await connection.ws.send(initialize_request(1))
                expect_result(await connection.ws.recv(), 1)
                samples.append(time.perf_counter() - started)
                await connection.ws.send(INITIALIZED_NOTIFICATION)
            finally:
                await connection.close()
        p50, p99 = (m.key for m in self.metrics())
        return {p50: percentile(samples, 0.50) * 1e6, p99: percentile(samples, 0.99) * 1e6}


def read_rss_kib(pid: int) -> int:
    """The resident set size of a process in KiB, from /proc/PID/status (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


async def settled(read: Callable[[], int], interval: float, limit: float) -> int:
    """Poll `read` until two consecutive values are equal, or for `limit` s; the last value."""
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
class IdleMemory(Scenario):
    """Server RSS growth per idle initialized connection."""

    kind: ClassVar[str] = "idle"
    connections: int = 1000

    @property
    def label(self) -> str:
        """E.g. `idle memory x1000`."""
        return f"idle memory x{self.connections}"

    def metrics(self) -> list[Metric]:
        """KiB per idle connection, and the server's RSS before opening them."""
        return [
            Metric(_key(self.kind, "", "kib_per_conn"), "KiB per idle connection", "KiB", False),
            Metric(_key(self.kind, "", "rss_before_mib"), "server RSS before", "MiB", False),
            Metric(_key(self.kind, "", "open_s"), f"time to open {self.connections}", "s", False),
        ]

    def timeout(self) -> float:
        """Generous: 50 ms per connection plus a minute."""
        return 60.0 + self.connections * 0.05

    async def run(self, target: LoadTarget) -> dict[str, float]:
        """RSS before, open and initialize all connections, RSS once it settles, close all."""

        def rss() -> int:
            return read_rss_kib(target.server_pid)

        before = await settled(rss, RSS_SETTLE_INTERVAL, RSS_SETTLE_TIMEOUT)
        started = time.perf_counter()
        connections = await open_many(target.url, self.connections)
        opened = time.perf_counter() - started
        try:
            after = await settled(rss, RSS_SETTLE_INTERVAL, RSS_SETTLE_TIMEOUT)
        finally:
            await close_all(connections)
        per_conn, rss_before, open_s = (m.key for m in self.metrics())
        return {
            per_conn: (after - before) / self.connections,
            rss_before: before / 1024,
            open_s: opened,
        }
