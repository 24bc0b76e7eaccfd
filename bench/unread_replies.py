"""A client that never reads its replies: what the server holds meanwhile, and afterwards.

The issue-10 observation (§4): 100 echo calls of 800 KiB on a connection that never reads.
The server's outbound bound (16 MiB by default) closes it; this records the server's RSS
before, at its peak, and once it settles after the close (the test suite asserts the bound and
that the memory comes back; the figures live here).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import ClassVar

from websockets.exceptions import ConnectionClosed

from bench.long_running import SERVICE_ONLY
from bench.mcp_client import open_connection, tool_call_request
from bench.scenarios import (
    RSS_SETTLE_INTERVAL,
    LoadTarget,
    Metric,
    Scenario,
    read_rss_kib,
    settled,
)

REPLY_KIB = 800
# Long enough for the close, its grace and the memory release that follows it.
AFTER_CLOSE_SETTLE = 15.0
SEND_TIMEOUT = 30.0


@dataclass(frozen=True)
class UnreadReplies(Scenario):
    """Server RSS while a connection leaves `calls` echo replies of 800 KiB unread."""

    kind: ClassVar[str] = "unread"
    targets: ClassVar[tuple[str, ...] | None] = SERVICE_ONLY
    calls: int = 100

    @property
    def label(self) -> str:
        """E.g. `unread replies x100`."""
        return f"unread replies x{self.calls}"

    def metrics(self) -> list[Metric]:
        """RSS before, at the peak and after, and whether the server closed the connection."""
        return [
            Metric(f"{self.kind}.rss_before_mib", "server RSS before", "MiB", False),
            Metric(f"{self.kind}.rss_peak_mib", "server RSS at its peak", "MiB", False),
            Metric(f"{self.kind}.rss_after_mib", "server RSS after the close", "MiB", False),
            Metric(f"{self.kind}.closed", "closed by the server (1 yes, 0 no)", "", True),
        ]

    def timeout(self) -> float:
        """Sending, the close and the settling, generously."""
        return 120.0 + self.calls * 0.5

    async def run(self, target: LoadTarget) -> dict[str, float]:
        """Open, stop reading, send the calls, wait for the close, let the memory settle."""

        def rss() -> int:
            return read_rss_kib(target.server_pid)

        before = await settled(rss, RSS_SETTLE_INTERVAL, 3.0)
        peak = before
        text = "x" * (REPLY_KIB * 1024)
        connection = await open_connection(target.url)
        websocket = connection.ws
        try:
            websocket.transport.pause_reading()
            with contextlib.suppress(ConnectionClosed, TimeoutError):
                for _ in range(self.calls):
                    call = tool_call_request(connection.next_id(), "echo", {"text": text})
                    await asyncio.wait_for(websocket.send(call), SEND_TIMEOUT)
                    peak = max(peak, rss())
            deadline = time.monotonic() + AFTER_CLOSE_SETTLE
            while websocket.close_code is None and time.monotonic() < deadline:
                peak = max(peak, rss())
                await asyncio.sleep(RSS_SETTLE_INTERVAL)
            closed = websocket.close_code is not None
        finally:
            websocket.transport.abort()
        after = await settled(rss, 1.0, AFTER_CLOSE_SETTLE)
        values = (before / 1024, peak / 1024, after / 1024, float(closed))
        return {metric.key: value for metric, value in zip(self.metrics(), values, strict=True)}
