"""Sends a running operation's events to its listeners: the connections that want them,
wherever they are, through the channel layer."""

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer

from mcp_server.cluster import messages
from mcp_server.log_throttle import ThrottledLog
from mcp_server.protocol.text_escapes import escape_value
from mcp_server.runtime.progress import ProgressReport

logger = logging.getLogger(__name__)
# Listeners behind by thousands of messages a second: one line a second, with the count.
_dropped = ThrottledLog(logger, logging.WARNING)


# Sends an outcome on a cheaper route than the channel layer; False: it could not.
Reply = Callable[[messages.Message], Awaitable[bool]]


class OperationPublisher:
    """The listeners of one operation and the latest progress they were sent."""

    def __init__(
        self,
        *,
        operation_id: UUID,
        layer: BaseChannelLayer,
        listeners: set[str],
        reply: Reply | None = None,
    ) -> None:
        self.operation_id = operation_id
        self._layer = layer
        self.listeners = set(listeners)
        # The outcome goes by `reply` while only the first listeners listen and nothing
        # else was sent to them (it would otherwise overtake what it must follow).
        self._reply = reply
        self._first_listeners = frozenset(listeners)
        self._sent = False
        self.done: float = 0.0
        self.total: float | None = None
        self.finished_at: datetime | None = None
        self._last: messages.OperationProgress | None = None
        self._asked: messages.OperationAsking | None = None

    async def attach(self, channel: str) -> None:
        """Add a listener, and bring it up to date with the latest progress and questions."""
        self.listeners.add(channel)
        if self._last is not None:
            await self._send(channel, self._last.encode())
        if self._asked is not None:
            await self._send(channel, self._asked.encode())

    def detach(self, channel: str) -> None:
        """Stop sending to a listener (its connection closed or stopped waiting)."""
        self.listeners.discard(channel)

    async def progress(self, report: ProgressReport) -> None:
        """Forward one coalesced progress report (each listener's connection adds its token)."""
        self.done = report.done
        self.total = report.total if report.total is not None else self.total
        self._last = messages.OperationProgress(
            id=self.operation_id, progress=self.done, total=self.total, message=report.message
        )
        await self._fan_out(self._last)

    async def log(self, level: str, data: Any, logger_name: str | None) -> None:
        """Forward a tool's log message; each connection filters by its client's level."""
        await self._fan_out(
            messages.OperationLog(id=self.operation_id, level=level, data=data, logger=logger_name)
        )

    async def asking(self, input_requests: dict[str, Any] | None) -> None:
        """Tell every listener what the task now waits for its client to answer."""
        self._asked = messages.OperationAsking(id=self.operation_id, input_requests=input_requests)
        await self._fan_out(self._asked)

    def record_end(self, operation: Any) -> None:
        """Note how far the operation got and when it ended, as history has it."""
        self.done, self.total = operation.done, operation.total
        self.finished_at = operation.finished_at

    async def finished(self, *, status: str, result: dict[str, Any] | None, error: str) -> None:
        """Tell every listener how the operation ended."""
        event = messages.OperationFinished(
            id=self.operation_id,
            status=status,
            result=result,
            error=error,
            progress=self.done,
            total=self.total,
            finished_at=self.finished_at,
        )
        if (
            self._reply is not None
            and not self._sent
            and self.listeners == self._first_listeners
            and await self._reply(event.encode())
        ):
            return
        await self._fan_out(event)

    async def _fan_out(self, event: messages.OperationEvent) -> None:
        message = event.encode()
        for channel in list(self.listeners):
            await self._send(channel, message)

    async def _send(self, channel: str, message: messages.Message) -> None:
        self._sent = True
        try:
            try:
                await self._layer.send(channel, message)
            except (TypeError, ValueError):
                # A lone surrogate from a tool, which the layer's encoding cannot carry: sent
                # as the text of its escape, as the socket and history would have it.
                await self._layer.send(channel, escape_value(message, nul=False))
        except ChannelFull:
            # The listener's process is behind; it recovers the outcome from history.
            _dropped.occurred("listener %s is full: dropped %s", channel, message["type"])
        except Exception:
            logger.warning("could not send %s to %s", message["type"], channel, exc_info=True)
