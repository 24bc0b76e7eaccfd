"""`hold` and `hold_idempotent`: a call that takes `ms` on its worker and leaves a mark per run
(its worker's pid and when it started), so a test sees where and how often each call ran;
`hold_the_loop`, the same holding its worker's event loop (no turn for anything else)."""

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from django.conf import settings

from mcp_server.runtime.context import ToolContext
from mcp_server.tools import tool


def marks_directory(operation_id: str) -> Path:
    """Where one call's runs leave their marks (under the deployment's var dir)."""
    return Path(settings.VAR_DIR) / "dispatch-marks" / operation_id


async def _hold(ms: int, ctx: ToolContext) -> dict[str, Any]:
    marks = marks_directory(ctx.operation_id)
    marks.mkdir(parents=True, exist_ok=True)
    (marks / str(os.getpid())).write_text(str(time.time_ns()))
    await asyncio.sleep(ms / 1000)
    return {"pid": os.getpid()}


@tool(duration="long", task_support="optional", annotations={"idempotentHint": False})
async def hold(ms: int, ctx: ToolContext) -> dict[str, Any]:
    """Hold this worker for `ms` milliseconds (not idempotent: a second run is a bug)."""
    return await _hold(ms, ctx)


@tool(duration="long", task_support="optional", annotations={"idempotentHint": True})
async def hold_idempotent(ms: int, ctx: ToolContext) -> dict[str, Any]:
    """Hold this worker for `ms` milliseconds; running it again is harmless."""
    return await _hold(ms, ctx)


@tool(duration="long", task_support="optional", annotations={"idempotentHint": False})
async def hold_the_loop(ms: int, ctx: ToolContext) -> dict[str, Any]:
    """Leave a mark, then hold this worker's event loop for `ms` milliseconds without a turn,
    as a busy or CPU-starved process does (not idempotent: a second run is a bug)."""
    marks = marks_directory(ctx.operation_id)
    marks.mkdir(parents=True, exist_ok=True)
    (marks / str(os.getpid())).write_text(str(time.time_ns()))
    time.sleep(ms / 1000)  # blocking, on purpose: no other task of the loop runs meanwhile
    return {"pid": os.getpid()}
