"""`fan_out_marks`: a fan-out whose items leave a mark each (so running one twice is not
harmless: the tool is not idempotent), for the cluster tests of cancellation and loss."""

import os
import time
from pathlib import Path

from django.conf import settings

from mcp_server.runtime.context import ToolContext
from mcp_server.runtime.fanout import chunk_function
from mcp_server.tools import tool


def marks_directory(operation_id: str) -> Path:
    """Where one call's items leave their marks (under the deployment's var dir)."""
    return Path(settings.VAR_DIR) / "fanout-marks" / operation_id


@chunk_function
def mark(item: int, *, marks: str, item_ms: int) -> int:
    """Take `item_ms`, then leave the item's mark: the pid of the worker whose pool process
    ran it (so a test can tell which worker holds chunks)."""
    time.sleep(item_ms / 1000)
    (Path(marks) / str(item)).write_text(str(os.getppid()))
    return item


@tool(duration="long", annotations={"idempotentHint": False})
async def fan_out_marks(count: int, item_ms: int, ctx: ToolContext) -> dict:
    """Mark items 0..count-1, five to a chunk, across the workers."""
    marks = marks_directory(ctx.operation_id)
    marks.mkdir(parents=True)
    result = await ctx.fan_out(
        mark, list(range(count)), chunk_size=5, marks=str(marks), item_ms=item_ms
    )
    return {"done": result.succeeded, "runners": sorted(result.runners)}
