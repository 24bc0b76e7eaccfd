"""Synthetic long-running tools: `process_batch` for demos and `sleep` for tests."""

import asyncio
from typing import Annotated

from pydantic import Field
from typing_extensions import TypedDict

from mcp_server.runtime.context import ToolContext
from mcp_server.tools.registry import tool

BATCH_SIZE = 50


class BatchSummary(TypedDict):
    """What a batch run did."""

    processed: int
    batches: int
    duration_s: float
    items_per_s: float


@tool(
    title="Process a batch",
    annotations={"readOnlyHint": True, "openWorldHint": False},
    task_support="optional",
    duration="long",
)
async def process_batch(
    count: Annotated[int, Field(ge=1, le=10_000_000, description="How many items to process.")],
    ctx: ToolContext,
    item_ms: Annotated[
        float, Field(ge=0, le=60_000, description="Simulated work per item, in milliseconds.")
    ] = 5,
) -> BatchSummary:
    """Process `count` synthetic items in batches of 50, reporting progress on every item."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    batches = (count + BATCH_SIZE - 1) // BATCH_SIZE
    delay = item_ms / 1000
    done = 0
    for batch in range(1, batches + 1):
        for _ in range(min(BATCH_SIZE, count - done)):
            # Sleeping item by item makes cancellation land within one item.
            await asyncio.sleep(delay)
            done += 1
            ctx.progress(done, count, f"batch {batch}/{batches}")
    elapsed = loop.time() - started
    return {
        "processed": done,
        "batches": batches,
        "duration_s": round(elapsed, 3),
        "items_per_s": round(done / elapsed, 1) if elapsed > 0 else float(done),
    }


@tool(title="Sleep", annotations={"readOnlyHint": True, "openWorldHint": False}, duration="long")
async def sleep(
    seconds: Annotated[float, Field(ge=0, le=3600, description="How long to sleep.")],
    ctx: ToolContext,
) -> str:
    """Sleep for the given number of seconds, reporting progress ten times a second."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    tick = 0.1
    while (left := deadline - loop.time()) > 0:
        await asyncio.sleep(min(tick, left))
        ctx.progress(round(seconds - max(deadline - loop.time(), 0), 3), seconds)
    return f"slept {seconds} s"
