"""Progress: rate and ETA, and coalescing so a client gets a bounded stream of updates.

A tool may report on every item. The coalescer keeps only the newest report, sends the first
at once and then at most `max_rate` per second from its own task, and on close delivers the
final one before the response goes out. A slow client therefore never slows the tool and
never makes reports pile up: a report waiting to be sent is replaced by a newer one.
"""

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mcp_server import metrics
from mcp_server.protocol.messages import notification_message
from mcp_server.protocol.methods import NOTIFICATION_PROGRESS

Send = Callable[[Any], Awaitable[None]]
Report = tuple[float, float | None, str | None]


@dataclass(frozen=True, slots=True)
class ProgressReport:
    """One coalesced progress report, before any client's token is put on it."""

    done: float
    total: float | None
    message: str | None


Deliver = Callable[[ProgressReport], Awaitable[None]]


def progress_frame(
    token: str | int, report: ProgressReport, meta: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The `notifications/progress` a client with `token` gets for `report` (`meta`: `_meta`)."""
    params: dict[str, Any] = {"progressToken": token, "progress": report.done}
    if report.total is not None:
        params["total"] = report.total
    if report.message:
        params["message"] = report.message
    if meta:
        params["_meta"] = meta
    return notification_message(NOTIFICATION_PROGRESS, params)


def frames_to(token: str | int, send: Send) -> Deliver:
    """Deliver reports as `notifications/progress` frames with `token` through `send`."""

    async def deliver(report: ProgressReport) -> None:
        await send(progress_frame(token, report))

    return deliver


class ProgressMeter:
    """Items per second over a sliding window, and the time left at that rate."""

    __slots__ = ("_samples",)

    def __init__(self, window: int = 50) -> None:
        self._samples: deque[tuple[float, float]] = deque(maxlen=window)

    def sample(self, now: float, done: float) -> None:
        """Remember that `done` items were complete at `now` (monotonic seconds)."""
        self._samples.append((now, done))

    def rate(self) -> float | None:
        """Items per second across the window, when there is a span to measure."""
        if len(self._samples) < 2:
            return None
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 and d1 > d0 else None

    def eta(self, done: float, total: float | None) -> float | None:
        """Seconds until `total` at the current rate."""
        rate = self.rate()
        if rate is None or total is None or total <= done:
            return None
        return (total - done) / rate


def _format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{math.ceil(seconds)} s"
    minutes, secs = divmod(int(seconds + 0.5), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _format_rate(rate: float) -> str:
    return f"{rate:,.0f} items/s" if rate >= 10 else f"{rate:.1f} items/s"


def describe(message: str | None, rate: float | None, eta: float | None) -> str:
    """Human text of a report, e.g. "batch 42 · 350 items/s · ETA 16 s"."""
    parts = [message] if message else []
    if rate is not None:
        parts.append(_format_rate(rate))
    if eta is not None:
        parts.append(f"ETA {_format_seconds(eta)}")
    return " · ".join(parts)


class ProgressCoalescer:
    """Delivers one operation's progress reports, coalesced to a bounded rate."""

    def __init__(self, *, deliver: Deliver, max_rate: float, meter: ProgressMeter) -> None:
        self._deliver_report = deliver
        self._interval = 1.0 / max_rate if max_rate > 0 else 0.0
        self._meter = meter
        self._first: Report | None = None
        self._pending: Report | None = None
        self._high_water = -math.inf
        self._next_allowed = 0.0
        self._wakeup = asyncio.Event()
        self._closing = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.reported = 0

    def report(self, done: float, total: float | None, message: str | None) -> None:
        """Offer a report; it is dropped unless `done` exceeds everything offered before."""
        if self._closed or done <= self._high_water:
            return
        self._high_water = done
        self.reported += 1
        if self.reported == 1:
            self._first = (done, total, message)  # the first one is never replaced
        else:
            self._pending = (done, total, message)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._wakeup.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            await self._wakeup.wait()
            delay = self._next_allowed - loop.time()
            if delay > 0 and not self._closed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), delay)
            if self._closed:
                return
            self._wakeup.clear()
            await self._deliver()
            if self._pending is not None:
                self._wakeup.set()

    async def _deliver(self) -> None:
        if self._first is not None:
            report, self._first = self._first, None
        elif self._pending is not None:
            report, self._pending = self._pending, None
        else:
            return
        done, total, message = report
        self._meter.sample(time.monotonic(), done)
        text = describe(message, self._meter.rate(), self._meter.eta(done, total))
        self._next_allowed = asyncio.get_running_loop().time() + self._interval
        self.sent += 1
        metrics.progress_sent()
        await self._deliver_report(ProgressReport(done, total, text or None))

    async def close(self) -> None:
        """Deliver the newest report (if not sent yet) and stop; call before the response."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        self._wakeup.set()
        if self._task is not None:
            await self._task
        await self._deliver()  # the first, if it never went out
        await self._deliver()  # the newest
        metrics.progress_coalesced(self.reported - self.sent)

    def abort(self) -> None:
        """Stop without sending anything more (the request was cancelled)."""
        if not self._closed:
            unsent = (self._first is not None) + (self._pending is not None)
            metrics.progress_coalesced(self.reported - self.sent - unsent)
        self._closed = True
        self._first = self._pending = None
        if self._task is not None:
            self._task.cancel()
