"""A session's GET stream in this process: where its server-initiated messages go.

It is registered with the process's ConnectionRegistry like a WebSocket session, so
broadcasts, `notifications/tools/list_changed` (a tenant's new tool set) and access changes
reach it the same way, through an McpSession restored from the session's record. Its session
watches the runs of the session's resource subscriptions (the record's, and each change
made on any process: `subscriptions_changed`), their updates arriving on its own channel. Instead of
MCP pings it writes an SSE comment when it has been idle for MCP_CLIENT_PING_INTERVAL (a
client that left is noticed by the write) and pushes the session's idle expiry back; when
the record is gone (DELETE elsewhere, expiry) the stream ends.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from django.conf import settings

from accounts.limits import TenantLimits
from mcp_server.http_transport.exchange import ChannelInbox, SessionConnection
from mcp_server.http_transport.records import SessionStore
from mcp_server.http_transport.streams import StreamWriter
from mcp_server.operations.lifecycle import Stop
from mcp_server.session import McpSession, Send


class ListenStream(SessionConnection):
    """The GET stream of one session, as this process's registry sees a connection."""

    def __init__(
        self,
        *,
        make_session: Callable[[Send], McpSession],
        inbox: ChannelInbox,
        writer: StreamWriter,
        sessions: SessionStore,
        session_id: str,
        end_session: Callable[[str, str], Awaitable[None]],
    ) -> None:
        self.session = make_session(self.send)
        # Where updates of the runs its session subscribed to arrive.
        self._inbox = inbox
        inbox.session = self.session
        self.writer = writer
        self._sessions = sessions
        self.session_id = session_id
        self._end_session = end_session
        self._last_write = time.monotonic()
        self.ended = asyncio.Event()

    @property
    def is_closed(self) -> bool:
        """Whether the stream has ended."""
        return self.ended.is_set() or self.session.is_closed

    async def send(self, message: Any) -> None:
        """Store and write one server-initiated message."""
        self._last_write = time.monotonic()
        await self.writer.emit(message)

    async def log(self, level: str, data: Any, logger_name: str | None) -> None:
        """A broadcast: `notifications/message` when the session's level lets it through."""
        await self.session.log(level, data, logger_name)

    async def tenant_changed(
        self,
        enabled_tools: frozenset[str] | None,
        disabled_tools: frozenset[str],
        limits: TenantLimits,
    ) -> None:
        """The tenant's new tool set and limits (the list change is announced here)."""
        await self.session.tenant_changed(enabled_tools, disabled_tools, limits)

    async def keep_alive(self, now: float) -> None:
        """When idle, write a comment and keep the session alive; end with the session."""
        if self.is_closed or now - self._last_write < settings.MCP_CLIENT_PING_INTERVAL:
            return
        self._last_write = now
        live = await self._sessions.load(self.session_id) is not None
        if not live or not await self.writer.response.comment("keep-alive"):
            await self.end()

    async def subscriptions_changed(self, uris: Sequence[str]) -> None:
        """The session's resource subscriptions are `uris` now: watch those (their updates
        come here), and no others."""
        if not self.is_closed:
            await self.session.subscriptions.sync(uris)

    async def going_away(self) -> None:
        """The server shuts down: say so on the stream, then end it."""
        await self.session.going_away()
        await self.end()

    async def revoke_access(self, code: int, reason: str) -> None:
        """The caller lost access: the session ends, with its work cancelled as revoked."""
        await self.session.close(reason=Stop.access_revoked(reason))
        await self._end_session(self.session_id, reason)
        await self.end()

    async def end(self) -> None:
        """End the stream (the client may resume it with Last-Event-ID)."""
        if not self.ended.is_set():
            self.ended.set()
            await self.session.close()
            await self._inbox.close()

    async def run(self) -> None:
        """Hold the stream open until the client leaves or the stream is ended."""
        left = asyncio.ensure_future(self.writer.response.left.wait())
        ended = asyncio.ensure_future(self.ended.wait())
        try:
            await asyncio.wait({left, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            left.cancel()
            ended.cancel()
            await self.end()
