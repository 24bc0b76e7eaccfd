"""The connections of this process: pings, broadcasts, goodbyes, and the access guard.

Sessions register here once accepted. The registry pings idle clients (and closes those that
stay silent), delivers broadcasts from WEB_GROUP to its matching connections, says goodbye to
all of them at shutdown, and keeps them within the access their callers still have.
"""

import asyncio
import logging
import time
import weakref
from typing import Any, Protocol

from django.conf import settings

from mcp_server.cluster import decoding, session_messages
from mcp_server.cluster.access import AccessGuard
from mcp_server.cluster.bus import OperationBus
from mcp_server.runtime.runner import OperationRunner

logger = logging.getLogger(__name__)


class LocalConnection(Protocol):
    """What the registry needs of a connection's session."""

    @property
    def tenant_id(self) -> int:
        """The caller's tenant."""

    @property
    def user_id(self) -> int:
        """The caller."""

    async def log(self, level: str, data: Any, logger_name: str | None) -> None:
        """Deliver a `notifications/message` if the client's level lets it through."""

    async def keep_alive(self, now: float) -> None:
        """Ping the client when idle; close the connection when a ping went unanswered."""

    async def going_away(self) -> None:
        """The server is shutting down: say so and stop this connection's work."""


class ConnectionRegistry:
    """This process's open connections and the duties that reach all of them."""

    def __init__(self, *, runner: OperationRunner, bus: OperationBus) -> None:
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()
        # Those a client holds open (a WebSocket, a GET stream), not a POST's exchange.
        self._lasting: weakref.WeakSet[Any] = weakref.WeakSet()
        self.access = AccessGuard(
            connections=lambda: list(self._connections),
            runner=runner,
            interval=settings.MCP_ACCESS_CHECK_INTERVAL,
        )
        bus.subscribe(session_messages.ACCESS_MESSAGES, self.access.handle)
        bus.subscribe(frozenset({session_messages.BROADCAST}), self._deliver_broadcast)

    def register(self, connection: LocalConnection, *, lasting: bool = True) -> None:
        """A connection of this process opened (`lasting`: one its client holds open, not
        the exchange of one request)."""
        self._connections.add(connection)
        if lasting:
            self._lasting.add(connection)

    def unregister(self, connection: LocalConnection) -> None:
        """A connection of this process closed."""
        self._connections.discard(connection)
        self._lasting.discard(connection)

    def __len__(self) -> int:
        """Open connections of this process."""
        return len(self._connections)

    def lasting(self) -> int:
        """Open connections that clients hold open: what a reconnect storm piles up (the
        exchanges of requests in flight come and go with every request)."""
        return len(self._lasting)

    def __iter__(self) -> Any:
        """The open connections (a snapshot)."""
        return iter(list(self._connections))

    async def say_goodbye(self) -> None:
        """Tell every client the server is going away, and stop their work."""
        connections = list(self._connections)
        await asyncio.gather(*(c.going_away() for c in connections), return_exceptions=True)

    async def _deliver_broadcast(self, message: decoding.ClusterMessage) -> None:
        assert isinstance(message, session_messages.Broadcast)
        matching = [
            c
            for c in list(self._connections)
            if (message.tenant_id is None or c.tenant_id == message.tenant_id)
            and (message.user_id is None or c.user_id == message.user_id)
        ]
        await asyncio.gather(
            *(c.log(message.level, message.data, "broadcast") for c in matching),
            return_exceptions=True,
        )

    async def keep_alive(self) -> None:
        """Ping idle clients and close silent ones, a few times per ping bound, until cancelled."""
        interval = max(
            0.05, min(settings.MCP_CLIENT_PING_INTERVAL, settings.MCP_CLIENT_PING_TIMEOUT) / 4
        )
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for connection in list(self._connections):
                try:
                    await connection.keep_alive(now)
                except Exception:
                    logger.debug("keep-alive failed", exc_info=True)
