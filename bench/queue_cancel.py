"""One tenant queues thousands of calls and leaves (issue 10): another tenant's pings meanwhile.

A connection of the bench tenant sends `count` `sleep` calls at once (all but the few its limit
runs wait in the fair queue), then disconnects, which cancels every one of them. A connection
of a second tenant pings back to back all along; the scenario reports its ping latency while
the calls queue and after the disconnect, when the server removes them from the queue.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import ClassVar

from bench.mcp_client import (
    RawClient,
    expect_result,
    open_connection,
    ping_request,
    tool_call_request,
)
from bench.scenarios import LoadTarget, Metric, Scenario, close_all
from bench.stats import percentile

SERVICE_ONLY = ("service",)
# Each queued call sleeps longer than the scenario lasts: none ends by itself.
SLEEP_SECONDS = 3600


async def _ping_until(connection: RawClient, stop: asyncio.Event) -> list[float]:
    """Back-to-back pings until `stop`; their latencies (s), the one in flight included."""
    latencies: list[float] = []
    clock = time.perf_counter
    while not stop.is_set():
        request_id = connection.next_id()
        sent = clock()
        await connection.ws.send(ping_request(request_id))
        expect_result(await connection.ws.recv(), request_id)
        latencies.append(clock() - sent)
    return latencies


async def _queue_calls(connection: RawClient, count: int) -> None:
    """Send `count` long `sleep` calls, then wait until the server has read them all (frames
    of one connection are handled in order, and none of the calls answers)."""
    for _ in range(count):
        frame = tool_call_request(connection.next_id(), "sleep", {"seconds": SLEEP_SECONDS})
        await connection.ws.send(frame)
    request_id = connection.next_id()
    await connection.ws.send(ping_request(request_id))
    expect_result(await connection.ws.recv(), request_id)


def _summary(latencies: list[float]) -> tuple[float, float, float]:
    return (
        percentile(latencies, 0.50) * 1e3,
        percentile(latencies, 0.99) * 1e3,
        max(latencies, default=float("nan")) * 1e3,
    )


@dataclass(frozen=True)
class QueueCancelPing(Scenario):
    """Ping latency of one tenant while another queues `count` calls, then disconnects."""

    kind: ClassVar[str] = "queue-cancel"
    targets: ClassVar[tuple[str, ...] | None] = SERVICE_ONLY
    count: int = 10_000
    # How long the pings go on after the disconnect (the cancellations happen meanwhile).
    after_s: float = 3.0

    @property
    def label(self) -> str:
        """E.g. `ping while 10000 queued calls are cancelled`."""
        return f"ping while {self.count} queued calls are cancelled"

    def metrics(self) -> list[Metric]:
        """Ping p50, p99 and max while the calls queue and after the disconnect."""
        k = self.kind
        return [
            Metric(f"{k}.cancel.p50_ms", "ping p50 after the disconnect", "ms", False),
            Metric(f"{k}.cancel.p99_ms", "ping p99 after the disconnect", "ms", False),
            Metric(f"{k}.cancel.max_ms", "ping max after the disconnect", "ms", False),
            Metric(f"{k}.queue.p50_ms", "ping p50 while the calls queue", "ms", False),
            Metric(f"{k}.queue.p99_ms", "ping p99 while the calls queue", "ms", False),
            Metric(f"{k}.queue.max_ms", "ping max while the calls queue", "ms", False),
            Metric(f"{k}.queue_s", f"time to queue {self.count} calls", "s", False),
        ]

    def timeout(self) -> float:
        """Generous: the old scheduler took seconds per thousand calls."""
        return 600.0 + self.after_s

    async def run(self, target: LoadTarget) -> dict[str, float]:
        """Queue the calls on one tenant's connection, disconnect; ping from another tenant."""
        if target.peer_url is None:
            raise RuntimeError(f"{self.label} needs a second tenant (--peer-url)")
        flooder = await open_connection(target.url)
        prober = await open_connection(target.peer_url)
        stop = asyncio.Event()
        pings = asyncio.create_task(_ping_until(prober, stop))
        try:
            started = time.perf_counter()
            await _queue_calls(flooder, self.count)
            queue_s = time.perf_counter() - started
            stop.set()
            queueing = await pings
            stop = asyncio.Event()
            pings = asyncio.create_task(_ping_until(prober, stop))
            await flooder.close()
            await asyncio.sleep(self.after_s)
            stop.set()
            cancelling = await pings
        finally:
            pings.cancel()
            await close_all([flooder, prober])
        values = [*_summary(cancelling), *_summary(queueing), queue_s]
        return {metric.key: value for metric, value in zip(self.metrics(), values, strict=True)}
