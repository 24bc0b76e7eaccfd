"""Whether a client is still there: the server pings a connection that has been silent, and
closes it when the ping goes unanswered. Any frame from the client counts as life."""

import time
from collections.abc import Awaitable, Callable
from typing import Any

from mcp_server.protocol import methods

# The close code for a connection that did not answer the server's ping (mirrors HTTP 408).
CLOSE_PING_TIMEOUT = 4408


class ClientPings:
    """The ping state of one connection."""

    __slots__ = ("_outstanding", "_pings", "_sent_at", "interval", "last_seen", "timeout")

    def __init__(self, *, interval: float, timeout: float) -> None:
        self.interval = interval
        self.timeout = timeout
        self.last_seen = time.monotonic()
        self._outstanding: str | None = None
        self._sent_at = 0.0
        self._pings = 0

    def seen(self) -> None:
        """The client sent a frame: no ping needed, an outstanding one is answered."""
        self.last_seen = time.monotonic()
        self._outstanding = None

    async def check(
        self,
        now: float,
        *,
        send: Callable[[Any], Awaitable[None]],
        close: Callable[[int, str], Awaitable[None]] | None,
    ) -> None:
        """Ping the client when it has been idle; close when a ping stayed unanswered."""
        if self._outstanding is not None:
            if now - self._sent_at > self.timeout and close is not None:
                await close(CLOSE_PING_TIMEOUT, f"no reply to ping within {self.timeout:g} s")
            return
        if now - self.last_seen >= self.interval:
            self._pings += 1
            self._outstanding = f"server-ping-{self._pings}"
            self._sent_at = now
            await send({"jsonrpc": "2.0", "id": self._outstanding, "method": methods.PING})
