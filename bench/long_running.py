"""Long-running operations (issue 3): `process_images` with and without progress, and pings.

Both scenarios run against this service only, on a directory of demo images the harness
generated once for the run (`make_demo_images`), and delete each run's thumbnails afterwards.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from uuid import uuid4

from bench.images_call import ImagesRun, process_images, remove_thumbnails
from bench.mcp_client import RawClient, expect_result, open_connection, ping_request
from bench.pyspy import Recording, py_spy_path
from bench.scenarios import LoadTarget, Metric, Scenario, close_all
from bench.stats import percentile

# Progress notifications per second the service sends at most (MCP_PROGRESS_MAX_RATE default).
PROGRESS_MAX_RATE = 10.0
# A pessimistic floor of images/s, only for the harness's time limit.
SLOWEST_IMAGES_PER_S = 50.0
SERVICE_ONLY = ("service",)
# Code that exists to report progress: the tool's calls, the operation's record, the coalescer
# and the notifications it sends (the first kind that matches a stack counts it).
PROGRESS_KINDS = {
    "progress": (
        "(mcp_server/runtime/progress.py:",
        "ToolContext.progress (",
        "ToolContext._report (",
        "RunningOperation.report (",
    )
}


def _images_timeout(images: int, runs: int) -> float:
    return 120.0 + runs * images / SLOWEST_IMAGES_PER_S


def _progress_rate(run: ImagesRun) -> float:
    """Notifications per second, not counting the first (sent at once) and the final one
    (sent when the call ends): between those the coalescer waits 1/rate after each send."""
    return max(0, run.notifications - 2) / run.wall_s


@dataclass(frozen=True)
class ImagesProgress(Scenario):
    """`process_images` over the demo set with a progressToken, then without: the overhead."""

    kind: ClassVar[str] = "images"
    targets: ClassVar[tuple[str, ...] | None] = SERVICE_ONLY
    images: int
    directory: str = "demo"
    warmup_directory: str = "warmup"
    tenant_root: str = ""
    # Sample both runs with py-spy (if installed) for progress code's share of server CPU;
    # 0 turns it off.
    profile_rate: int = 250

    @property
    def label(self) -> str:
        """E.g. `process_images x10000, progress on/off`."""
        return f"process_images x{self.images}, progress on/off"

    def metrics(self) -> list[Metric]:
        """Wall time, images/s and server CPU per image for both runs, and the progress stream."""
        k = self.kind
        return [
            Metric(f"{k}.on.wall_s", "process_images time, progress on", "s", False),
            Metric(f"{k}.off.wall_s", "process_images time, progress off", "s", False),
            Metric(f"{k}.on.images_per_s", "images/s, progress on", "images/s", True),
            Metric(f"{k}.off.images_per_s", "images/s, progress off", "images/s", True),
            Metric(f"{k}.overhead_pct", "progress overhead, wall time, this pair", "%", False),
            Metric(f"{k}.on.cpu_us", "server CPU per image, progress on", "µs", False),
            Metric(f"{k}.off.cpu_us", "server CPU per image, progress off", "µs", False),
            Metric(f"{k}.cpu_overhead_pct", "progress overhead, server CPU", "%", False),
            Metric(f"{k}.on.progress_pct", "progress code, share of server CPU, on", "%", False),
            Metric(f"{k}.off.progress_pct", "progress code, share of server CPU, off", "%", False),
            Metric(f"{k}.on.foreign_pct", "other processes on the server's CPU, on", "%", False),
            Metric(f"{k}.off.foreign_pct", "other processes on the server's CPU, off", "%", False),
            Metric(f"{k}.items", "items reported (progress on)", "items", False),
            Metric(f"{k}.failed", "items failed (error log)", "items", False),
            Metric(f"{k}.progress_sent", "progress notifications received", "items", False),
            Metric(
                f"{k}.progress_per_s",
                "progress notifications/s, first and final not counted",
                "/s",
                False,
            ),
        ]

    def timeout(self) -> float:
        """Three runs (warm-up, on, off) at a pessimistic rate, plus two minutes."""
        return _images_timeout(self.images, 3)

    async def _run_one(
        self, connection: RawClient, target: LoadTarget, directory: str, token: str | None
    ) -> tuple[ImagesRun, float]:
        """One call, sampled by py-spy when asked: the run and progress code's CPU share."""
        share = math.nan
        if self.profile_rate > 0 and py_spy_path() is not None:
            with tempfile.TemporaryDirectory(prefix="bench-images-") as tmp:
                output = Path(tmp) / "stacks.txt"
                recording = Recording(target.server_pid, PROGRESS_KINDS, output, self.profile_rate)
                async with recording:
                    run, summary = await process_images(connection, target, directory, token)
                if recording.profile is not None:
                    share = recording.profile.share("progress")
        else:
            run, summary = await process_images(connection, target, directory, token)
        remove_thumbnails(self.tenant_root, summary)
        return run, share * 100

    async def run(self, target: LoadTarget) -> dict[str, float]:
        """Warm up on the small set, then progress on, then off, on one connection."""
        connection = await open_connection(target.url)
        try:
            await self._run_one(connection, target, self.warmup_directory, "warmup")
            on, on_share = await self._run_one(connection, target, self.directory, uuid4().hex)
            off, off_share = await self._run_one(connection, target, self.directory, None)
        finally:
            await close_all([connection])
        if on.total != self.images or off.total != self.images:
            raise RuntimeError(f"expected {self.images} files, the tool saw {on.total}/{off.total}")
        values = [
            on.wall_s,
            off.wall_s,
            on.images_per_s,
            off.images_per_s,
            (on.wall_s / off.wall_s - 1) * 100,
            on.cpu_us_per_image,
            off.cpu_us_per_image,
            (on.server_cpu_s / off.server_cpu_s - 1) * 100,
            on_share,
            off_share,
            on.foreign_pct,
            off.foreign_pct,
            float(on.total),
            float(on.errors),
            float(on.notifications),
            _progress_rate(on),
        ]
        return {metric.key: value for metric, value in zip(self.metrics(), values, strict=True)}


async def _ping_until(
    connection: RawClient, start: asyncio.Event, stop: asyncio.Event, interval_s: float
) -> list[float]:
    """Pings every `interval_s` (back to back when 0) from `start` until `stop`; the latencies
    of all pings sent before `stop`, the one in flight when the call ends included."""
    await start.wait()
    latencies: list[float] = []
    clock = time.perf_counter
    while not stop.is_set():
        request_id = connection.next_id()
        sent = clock()
        await connection.ws.send(ping_request(request_id))
        expect_result(await connection.ws.recv(), request_id)
        latencies.append(clock() - sent)
        pause = sent + interval_s - clock()
        if pause > 0:
            await asyncio.sleep(pause)
    return latencies


@dataclass(frozen=True)
class ImagesPing(Scenario):
    """`ping` latency on a second connection while `process_images` runs at full speed."""

    kind: ClassVar[str] = "images-ping"
    targets: ClassVar[tuple[str, ...] | None] = SERVICE_ONLY
    images: int
    directory: str = "demo"
    interval_ms: float = 5.0
    tenant_root: str = ""

    @property
    def label(self) -> str:
        """E.g. `ping every 5 ms during process_images x10000`."""
        return f"ping every {self.interval_ms:g} ms during process_images x{self.images}"

    def metrics(self) -> list[Metric]:
        """Ping p50, p99 and max, how many, and the images/s of the run they probed."""
        k = self.kind
        return [
            Metric(f"{k}.p50_us", "ping p50 during process_images", "µs", False),
            Metric(f"{k}.p99_us", "ping p99 during process_images", "µs", False),
            Metric(f"{k}.max_us", "ping max during process_images", "µs", False),
            Metric(f"{k}.pings", "pings answered during process_images", "items", True),
            Metric(f"{k}.images_per_s", "images/s while pinged (progress on)", "images/s", True),
        ]

    def timeout(self) -> float:
        """One run at a pessimistic rate, plus two minutes."""
        return _images_timeout(self.images, 1)

    async def run(self, target: LoadTarget) -> dict[str, float]:
        """Start `process_images` (with progress) on one connection, ping on another."""
        worker = await open_connection(target.url)
        prober = await open_connection(target.url)
        sent, done = asyncio.Event(), asyncio.Event()
        pings = asyncio.create_task(_ping_until(prober, sent, done, self.interval_ms / 1000))
        try:
            try:
                run, summary = await process_images(
                    worker, target, self.directory, uuid4().hex, sent
                )
            finally:
                done.set()
                sent.set()
            latencies = await pings
        finally:
            pings.cancel()
            await close_all([worker, prober])
        remove_thumbnails(self.tenant_root, summary)
        p50, p99, worst, count, rate = (metric.key for metric in self.metrics())
        return {
            p50: percentile(latencies, 0.50) * 1e6,
            p99: percentile(latencies, 0.99) * 1e6,
            worst: max(latencies, default=float("nan")) * 1e6,
            count: float(len(latencies)),
            rate: run.images_per_s,
        }
