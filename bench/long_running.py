"""Long-running operations (issue 3) and the cost of history, on this service only.

History cannot be turned off, so its cost is measured from inside: py-spy samples the server's
threads (bench/pyspy.py); the writer thread counts as history throughout, the event loop only
while it builds and hands over snapshots.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from uuid import uuid4

from bench.measure import percentile
from bench.pyspy import Kinds, Recording, py_spy_path
from bench.report import LONG_RUNNING, Goal, Metric, Row, declare
from bench.scenarios import (
    SERVICE_ONLY,
    LoadTarget,
    Scenario,
    Throughput,
    close_all,
    connect,
    ping_until,
    traced_call,
)
from mcp_server.client.raw import RawClient, UnexpectedReply

SLOWEST_IMAGES_PER_S = 50.0  # a pessimistic floor, only for the harness's time limit
# Code that exists to report progress: the tool's calls, the operation's record, the coalescer
# and the notifications it sends (the first kind that matches a stack counts it).
PROGRESS_KINDS: Kinds = {
    "progress": (
        "(mcp_server/runtime/progress.py:",
        "ToolContext.progress (",
        "ToolContext._report (",
        "RunningOperation.report (",
    )
}
# With the writer process (the default) only its threads in the server's process are sampled
# here: the sender that encodes batches and the reader of confirmations.
HISTORY_KINDS: Kinds = {
    "writer": (
        "HistoryWriter._run (",
        "HistoryProcess._send_loop (",
        "HistoryProcess._read_loop (",
    ),
    "handoff": (
        "(mcp_server/runtime/history_process.py:",
        "(mcp_server/runtime/history.py:",
        "(mcp_server/operations/store.py:",
        "(mcp_server/history_insert.py:",
        "RunningOperation.persist (",
        "RunningOperation.add_item_error (",
    ),
}


IMAGES_ROWS: list[Row] = [
    ("on.wall_s", "process_images time, progress on", "s"),
    ("off.wall_s", "process_images time, progress off", "s"),
    ("on.images_per_s", "images/s, progress on", "images/s", True),
    ("off.images_per_s", "images/s, progress off", "images/s", True),
    ("overhead_pct", "progress overhead, wall time, this pair", "%"),
    ("on.cpu_us", "server CPU per image, progress on", "µs"),
    ("off.cpu_us", "server CPU per image, progress off", "µs"),
    ("cpu_overhead_pct", "progress overhead, server CPU", "%"),
    ("on.progress_pct", "progress code, share of server CPU, on", "%"),
    ("off.progress_pct", "progress code, share of server CPU, off", "%"),
    ("on.foreign_pct", "other processes on the server's CPU, on", "%"),
    ("off.foreign_pct", "other processes on the server's CPU, off", "%"),
    ("items", "items reported (progress on)", "items"),
    ("failed", "items failed (error log)", "items"),
    ("progress_sent", "progress notifications received", "items"),
    ("progress_per_s", "progress notifications/s, first and final not counted", "/s"),
]
IMAGES_ON_OFF = "process_images time, progress on every item vs off"
CPU_ON_OFF = "process_images server CPU, progress on vs off"
IMAGES_GOALS = {
    "on.wall_s": (Goal(IMAGES_ON_OFF, 3.0, False, reference="images.off.wall_s"),),
    "on.cpu_us": (Goal(CPU_ON_OFF, 3.0, False, None, False, True, "images.off.cpu_us"),),
}
IMAGES_PING_ROWS: list[Row] = [
    ("p50_us", "ping p50 during process_images", "µs"),
    ("p99_us", "ping p99 during process_images", "µs"),
    ("max_us", "ping max during process_images", "µs"),
    ("pings", "pings answered during process_images", "items", True),
    ("images_per_s", "images/s while pinged (progress on)", "images/s", True),
]


@dataclass(frozen=True)
class ImagesRun:
    """What one `process_images` call took and reported."""

    wall_s: float
    total: int
    errors: int
    notifications: int
    server_cpu_s: float
    foreign_pct: float
    thumbnails: str

    @property
    def images_per_s(self) -> float:
        """Files handled per second of wall time, as the client saw it."""
        return self.total / self.wall_s


async def process_images(
    client: RawClient,
    target: LoadTarget,
    directory: str,
    token: str | None,
    sent: asyncio.Event | None = None,
) -> ImagesRun:
    """Call `process_images` and read until its reply; progress must rise to total of total."""
    last = [-1.0, math.nan]  # progress, total

    def see(params: dict[str, Any]) -> None:
        progress = params.get("progress")
        if not isinstance(progress, int | float) or progress <= last[0]:
            raise UnexpectedReply(f"progress {progress!r} after {last[0]!r}: must increase")
        total = params.get("total")
        last[:] = [float(progress), float(total) if isinstance(total, int | float) else last[1]]

    before = target.cpu()
    trace = await traced_call(
        client, "process_images", {"directory": directory}, token, on_progress=see, sent=sent
    )
    after = target.cpu()
    summary = trace.structured()
    total = int(summary.get("total") or 0)
    if not total or int(summary["succeeded"]) + int(summary["errors"]) != total:
        raise UnexpectedReply(f"process_images of {directory!r}: a wrong summary {summary!r:.300}")
    if token is not None and (not trace.notes or last != [total, total]):
        raise UnexpectedReply(
            f"last progress {last} after {len(trace.notes)} notifications; expected {total}"
        )
    return ImagesRun(
        trace.done - trace.sent,
        total,
        int(summary["errors"]),
        len(trace.notes),
        after.server_s - before.server_s,
        before.until(after)[2],
        str(summary.get("thumbnails", "")),
    )


def remove_thumbnails(tenant_root: str, run: ImagesRun) -> None:
    """Delete the thumbnails a run wrote (only inside `<tenant_root>/thumbnails/`)."""
    base = (Path(tenant_root) / "thumbnails").resolve()
    written = (Path(tenant_root) / run.thumbnails).resolve()
    if tenant_root and written != base and written.is_relative_to(base):
        shutil.rmtree(written, ignore_errors=True)


@dataclass(frozen=True)
class ImagesProgress(Scenario):
    """`process_images` over the demo set with a progressToken, then without: the overhead."""

    kind: ClassVar[str] = "images"
    targets: ClassVar[tuple[str, ...] | None] = SERVICE_ONLY
    images: int
    directory: str = "demo"
    warmup_directory: str = "warmup"
    tenant_root: str = ""
    # py-spy samples both runs (if installed) for progress code's share of server CPU; 0: off.
    profile_rate: int = 250
    max_rate: float = 10.0  # progress notifications per second at most (MCP_PROGRESS_MAX_RATE)

    title: ClassVar[str] = "process_images x{images}, progress on/off"

    def metrics(self) -> list[Metric]:
        """Wall time, images/s, server CPU per image for both runs, and the progress stream."""
        rate = Goal("progress notifications/s (first and final not counted)", self.max_rate, False)
        return declare(
            "images", IMAGES_ROWS, LONG_RUNNING, IMAGES_GOALS | {"progress_per_s": (rate,)}
        )

    def timeout(self) -> float:
        return 120.0 + 3 * self.images / SLOWEST_IMAGES_PER_S

    async def _run_one(
        self, client: RawClient, target: LoadTarget, directory: str, token: str | None
    ) -> tuple[ImagesRun, float]:
        share = math.nan
        if self.profile_rate > 0 and py_spy_path() is not None:
            recording = Recording(target.server_pid, PROGRESS_KINDS, self.profile_rate)
            async with recording:
                run = await process_images(client, target, directory, token)
            share = recording.profile.share("progress") if recording.profile else math.nan
        else:
            run = await process_images(client, target, directory, token)
        remove_thumbnails(self.tenant_root, run)
        return run, share * 100

    async def run(self, target: LoadTarget) -> dict[str, float]:
        """Warm up on the small set, then progress on, then off, on one connection."""
        client = await connect(target.url)
        try:
            await self._run_one(client, target, self.warmup_directory, "warmup")
            on, on_share = await self._run_one(client, target, self.directory, uuid4().hex)
            off, off_share = await self._run_one(client, target, self.directory, None)
        finally:
            await close_all([client])
        if on.total != self.images or off.total != self.images:
            raise RuntimeError(f"expected {self.images} files, the tool saw {on.total}/{off.total}")
        values = [
            on.wall_s,
            off.wall_s,
            on.images_per_s,
            off.images_per_s,
            (on.wall_s / off.wall_s - 1) * 100,
            on.server_cpu_s / on.total * 1e6,
            off.server_cpu_s / off.total * 1e6,
            (on.server_cpu_s / off.server_cpu_s - 1) * 100,
            on_share,
            off_share,
            on.foreign_pct,
            off.foreign_pct,
            float(on.total),
            float(on.errors),
            float(on.notifications),
            # Not counting the first (sent at once) and the final one (sent when the call
            # ends): between those the coalescer waits 1/rate after each send.
            max(0, on.notifications - 2) / on.wall_s,
        ]
        return self.values(*values)


@dataclass(frozen=True)
class ImagesPing(Scenario):
    """`ping` latency on a second connection while `process_images` runs at full speed."""

    kind: ClassVar[str] = "images-ping"
    targets: ClassVar[tuple[str, ...] | None] = SERVICE_ONLY
    images: int
    directory: str = "demo"
    interval_ms: float = 5.0
    tenant_root: str = ""

    title: ClassVar[str] = "ping every {interval_ms:g} ms during process_images x{images}"

    def metrics(self) -> list[Metric]:
        goal = Goal("ping p99 on a second connection during process_images", 50_000, False)
        return declare(self.kind, IMAGES_PING_ROWS, LONG_RUNNING, {"p99_us": (goal,)})

    def timeout(self) -> float:
        """One run at a pessimistic rate, plus two minutes."""
        return 120.0 + self.images / SLOWEST_IMAGES_PER_S

    async def run(self, target: LoadTarget) -> dict[str, float]:
        worker, prober = await connect(target.url), await connect(target.url)
        sent, done = asyncio.Event(), asyncio.Event()

        async def pings() -> list[float]:
            await sent.wait()
            return (await ping_until(prober, done, self.interval_ms / 1000)).latencies

        pinging = asyncio.create_task(pings())
        try:
            try:
                run = await process_images(worker, target, self.directory, uuid4().hex, sent)
            finally:
                done.set()
                sent.set()
            latencies = await pinging
        finally:
            pinging.cancel()
            await close_all([worker, prober])
        remove_thumbnails(self.tenant_root, run)
        top = max(latencies, default=math.nan)
        values = [percentile(latencies, 0.5) * 1e6, percentile(latencies, 0.99) * 1e6, top * 1e6]
        return self.values(*values, float(len(latencies)), run.images_per_s)


@dataclass(frozen=True)
class HistoryProfile(Throughput):
    """C connections of back-to-back `add` calls while py-spy samples the server's threads for
    the window (`seconds`)."""

    kind: ClassVar[str] = "history"
    targets: ClassVar[tuple[str, ...] | None] = SERVICE_ONLY
    concurrency: int = 50
    seconds: int = 5
    rate: int = 100

    title: ClassVar[str] = "history profile C={concurrency}, {seconds} s"

    def __post_init__(self) -> None:
        object.__setattr__(self, "window_s", float(self.seconds))

    def metrics(self) -> list[Metric]:
        """History's share of server CPU, its parts, per call, and the load while sampled."""
        c = f"C={self.concurrency}"
        rows: list[Row] = [
            ("share_pct", f"history share of server CPU, {c}", "%"),
            ("writer_pct", "of which the writer thread", "%"),
            ("handoff_pct", "of which snapshots on the event loop", "%"),
            ("us_per_call", f"history CPU per call, {c}", "µs"),
            ("cpu_us_per_call", f"server CPU per call while sampled, {c}", "µs"),
            ("calls_per_s", f"calls/s while sampled, {c}", "calls/s", True),
            ("samples", "py-spy samples", "items", True),
        ]
        goal = Goal("history recording, share of server CPU at C=50", 15.0, False)
        return declare(self.kind, rows, LONG_RUNNING, {"share_pct": (goal,)})

    def timeout(self) -> float:
        return super().timeout() + 30.0

    async def cpu_window(self, target: LoadTarget, start: float, end: float) -> tuple[Any, Any]:
        """The py-spy recording of the window, split by HISTORY_KINDS (and nothing)."""
        await asyncio.sleep(max(0.0, start - time.perf_counter()))
        recording = Recording(target.server_pid, HISTORY_KINDS, self.rate)
        async with recording:
            await asyncio.sleep(max(0.0, end - time.perf_counter()))  # the sampling span
        return recording.profile, None

    async def run(self, target: LoadTarget) -> dict[str, float]:
        """Load the server, sample it for `seconds`, split its CPU time."""
        if py_spy_path() is None:
            return dict.fromkeys((m.key for m in self.metrics()), math.nan)
        latencies, (profile, _) = await self.load(target)
        count = len(latencies)
        if profile is None or not profile.samples or not count or profile.process_s <= 0:
            raise RuntimeError(f"{self.label}: no samples, no calls or no server CPU time")
        share = profile.share("writer", "handoff")
        values = [share * 100, profile.share("writer") * 100, profile.share("handoff") * 100]
        values += [share * profile.process_s / count * 1e6, profile.process_s / count * 1e6]
        return self.values(*values, count / self.window_s, float(profile.samples))
