"""What a session tells its client as `notifications/message`: the client's logging level and
whether the session may send logs at all, in a part of its own.

The session's listener (and, through it, the calls run for the connection) log through this
object rather than through a method of the session, so that none of the session's parts
points back at the session: a finished session is freed by reference counting alone, without
the cyclic garbage collector (tests/ws/test_reference_cycles.py).
"""

from collections.abc import Awaitable, Callable
from typing import Any

from mcp_server.protocol import methods
from mcp_server.protocol.log_levels import DEFAULT_LEVEL, level_rank
from mcp_server.protocol.messages import notification_message
from mcp_server.protocol.tasks import RELATED_TASK


class ClientLog:
    """The client's logging level, and the log messages of its session that pass it."""

    __slots__ = ("_rank", "_send", "closed", "level", "ready")

    def __init__(self, send: Callable[[Any], Awaitable[None]]) -> None:
        self._send = send
        self.level = DEFAULT_LEVEL
        self._rank = level_rank(DEFAULT_LEVEL)
        # The session answered (or restored) an initialize: connection-level logs may go.
        self.ready = False
        # The session closed: nothing more is sent.
        self.closed = False

    def set_level(self, level: str) -> None:
        """The lowest level the client wants (logging/setLevel, or its session's record)."""
        self._rank = level_rank(level)
        self.level = level

    async def __call__(
        self,
        level: str,
        data: Any,
        logger_name: str | None,
        task_id: str | None = None,
        rank: int | None = None,
    ) -> None:
        """Send `notifications/message` when `level` passes the client's logging level, or
        `rank`, the threshold of the request it belongs to (naming the task it comes from, if
        any)."""
        if rank is None and not self.ready:
            # A connection-level message (a broadcast): only for a client that initialized;
            # 2026-07-28 sends logs only to the requests that ask for them.
            return
        threshold = self._rank if rank is None else rank
        if level_rank(level) < threshold or self.closed:
            return
        params: dict[str, Any] = {"level": level, "data": data}
        if logger_name:
            params["logger"] = logger_name
        if task_id is not None:
            params["_meta"] = {RELATED_TASK: {"taskId": task_id}}
        await self._send(notification_message(methods.NOTIFICATION_MESSAGE, params))
