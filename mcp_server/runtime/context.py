"""The context object every tool call runs with; tools see nothing of the wire."""

from typing import Any, Protocol

from accounts.principal import Principal


class CallEvents(Protocol):
    """Where a running call's events go (the session implements it for its connection)."""

    async def log(self, level: str, data: Any, logger: str | None) -> None:
        """Deliver a log message, if the client's logging level lets it through."""


class ToolContext:
    """What a tool may use while it runs: who called, and a log the client can see."""

    __slots__ = ("_events", "principal", "request_id", "tool_name")

    def __init__(
        self, *, principal: Principal, tool_name: str, request_id: str | int, events: CallEvents
    ) -> None:
        self.principal = principal
        self.tool_name = tool_name
        self.request_id = request_id
        self._events = events

    async def log(self, level: str, message: Any) -> None:
        """Send `message` to the client as `notifications/message` at `level` (RFC 5424 name)."""
        await self._events.log(level, message, self.tool_name)
