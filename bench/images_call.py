"""One `process_images` call as the load generator makes it: progress counted, reply checked."""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench import cpu
from bench.mcp_client import RawClient, UnexpectedReply, expect_result, tool_call_request
from bench.scenarios import LoadTarget

TOOL = "process_images"
PROGRESS = "notifications/progress"
THUMBNAILS_DIR = "thumbnails"


@dataclass(frozen=True)
class ImagesRun:
    """What one `process_images` call took and reported."""

    wall_s: float
    total: int
    succeeded: int
    errors: int
    notifications: int
    server_cpu_s: float
    foreign_pct: float

    @property
    def images_per_s(self) -> float:
        """Files handled per second of wall time, as the client saw it."""
        return self.total / self.wall_s

    @property
    def cpu_us_per_image(self) -> float:
        """Server CPU time per file."""
        return self.server_cpu_s / self.total * 1e6


class ProgressCheck:
    """Counts the `notifications/progress` of one call and checks token and order."""

    def __init__(self, token: str | None) -> None:
        self.token = token
        self.count = 0
        self.last: float = -1.0
        self.total: float | None = None

    def see(self, params: dict[str, Any]) -> None:
        """Account for one notification; raise on a foreign token or progress going back."""
        if self.token is None or params.get("progressToken") != self.token:
            got = params.get("progressToken")
            raise UnexpectedReply(f"progress for token {got!r}, asked for {self.token!r}")
        progress = params.get("progress")
        if not isinstance(progress, int | float) or progress <= self.last:
            raise UnexpectedReply(f"progress {progress!r} after {self.last!r}: must increase")
        self.last = float(progress)
        total = params.get("total")
        self.total = float(total) if isinstance(total, int | float) else self.total
        self.count += 1

    def check_complete(self, total: int) -> None:
        """With a token: at least one notification, the last one at `total` of `total`."""
        if self.token is None:
            return
        if self.count == 0 or self.last != total or self.total != total:
            raise UnexpectedReply(
                f"last progress {self.last!r} of {self.total!r} after {self.count} "
                f"notifications; expected {total} of {total}"
            )


async def process_images(
    connection: RawClient,
    target: LoadTarget,
    directory: str,
    token: str | None,
    sent: asyncio.Event | None = None,
) -> tuple[ImagesRun, dict[str, Any]]:
    """Call `process_images` and read until its reply; the run and the structured result."""
    request_id = connection.next_id()
    check = ProgressCheck(token)
    frame = tool_call_request(request_id, TOOL, {"directory": directory}, token)
    before = cpu.sample(target.server_pid, target.server_cpu)
    started = time.perf_counter()
    await connection.ws.send(frame)
    if sent is not None:
        sent.set()
    while True:
        raw = await connection.ws.recv()
        message = orjson.loads(raw)
        if isinstance(message, dict) and message.get("method") == PROGRESS:
            check.see(message.get("params") or {})
        elif isinstance(message, dict) and "method" in message:
            continue  # another notification (a log message): not ours to judge
        else:
            result = expect_result(raw, request_id)
            break
    wall_s = time.perf_counter() - started
    after = cpu.sample(target.server_pid, target.server_cpu)
    summary = result.get("structuredContent")
    if not isinstance(summary, dict) or not summary.get("total"):
        raise UnexpectedReply(f"{TOOL} of {directory!r} returned no summary: {raw!r:.300}")
    total = int(summary["total"])
    if int(summary["succeeded"]) + int(summary["errors"]) != total:
        raise UnexpectedReply(f"{TOOL}: succeeded + errors != total in {summary!r:.300}")
    check.check_complete(total)
    run = ImagesRun(
        wall_s=wall_s,
        total=total,
        succeeded=int(summary["succeeded"]),
        errors=int(summary["errors"]),
        notifications=check.count,
        server_cpu_s=after.server_s - before.server_s,
        foreign_pct=cpu.usage(before, after).foreign_pct,
    )
    return run, summary


def remove_thumbnails(tenant_root: str, summary: dict[str, Any]) -> None:
    """Delete the thumbnails a run wrote (only inside `<tenant_root>/thumbnails/`)."""
    if not tenant_root:
        return
    base = (Path(tenant_root) / THUMBNAILS_DIR).resolve()
    written = (Path(tenant_root) / str(summary.get("thumbnails", ""))).resolve()
    if written != base and written.is_relative_to(base):
        shutil.rmtree(written, ignore_errors=True)
