"""What every request to `/mcp` of this process shares: the session and event stores, this
process's exchanges and streams, the message buckets, the session a request names, and the
end of a session everywhere."""

import logging
from typing import Any

from channels.layers import BaseChannelLayer
from django.conf import settings
from redis.asyncio import Redis

from accounts.principal import Principal
from accounts.ws_auth import header
from mcp_server.admission import ConnectionAdmission
from mcp_server.cluster import session_messages
from mcp_server.http_transport.events import EventStore, MemoryEventStore, RedisEventStore
from mcp_server.http_transport.http_io import SESSION_HEADER, HttpRefusal
from mcp_server.http_transport.local import LocalHttpSessions
from mcp_server.http_transport.records import (
    MemorySessionStore,
    RedisSessionStore,
    SessionRecord,
    SessionStore,
)
from mcp_server.protocol.versions import SUPPORTED_VERSIONS

logger = logging.getLogger(__name__)

# Longest session id looked up (ours are 43 characters).
MAX_SESSION_ID = 128


def _stores_from_settings() -> tuple[SessionStore, EventStore]:
    idle = settings.MCP_HTTP_SESSION_IDLE_SECONDS
    per_stream = settings.MCP_HTTP_EVENTS_PER_STREAM
    retention = settings.MCP_HTTP_EVENT_RETENTION_SECONDS
    if not settings.REDIS_URL:
        return (
            MemorySessionStore(idle_seconds=idle),
            MemoryEventStore(per_stream=per_stream, retention_seconds=retention),
        )
    redis = Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=settings.MCP_DEPENDENCY_TIMEOUT,
        socket_connect_timeout=settings.MCP_DEPENDENCY_TIMEOUT,
    )
    prefix = settings.CACHES["default"].get("KEY_PREFIX") or "mcp"
    return (
        RedisSessionStore(redis, prefix=prefix, idle_seconds=idle),
        RedisEventStore(redis, prefix=prefix, per_stream=per_stream, retention_seconds=retention),
    )


class HttpEndpoint:
    """The state of `/mcp` in one process, shared by its POST, GET and DELETE requests."""

    def __init__(self) -> None:
        self.local = LocalHttpSessions()
        # The message buckets of users and tenants on this process, as for WebSockets.
        self.admission = ConnectionAdmission()
        self._stores: tuple[SessionStore, EventStore] | None = None

    @property
    def sessions(self) -> SessionStore:
        """Where session records live."""
        return self._stored()[0]

    @property
    def events(self) -> EventStore:
        """Where streams' events are kept for resumption."""
        return self._stored()[1]

    def _stored(self) -> tuple[SessionStore, EventStore]:
        if self._stores is None:
            self._stores = _stores_from_settings()
        return self._stores

    async def record(self, scope: dict[str, Any], principal: Principal) -> SessionRecord:
        """The session a request names, live and the caller's, in the revision it negotiated."""
        session_id = header(scope, SESSION_HEADER)
        if not session_id:
            raise HttpRefusal(400, "Mcp-Session-Id header required: send initialize first")
        record = None
        if len(session_id) <= MAX_SESSION_ID:
            record = await self.sessions.load(session_id)
        if record is None or not record.owned_by(principal):
            raise HttpRefusal(404, "unknown or ended session: send initialize for a new one")
        version = header(scope, b"mcp-protocol-version")
        # Invalid or unsupported is refused (the transport spec's rule); a supported revision
        # other than the negotiated one is not: the session's own revision governs it, and
        # clients (the conformance suite among them) send an older one on extra streams.
        if version is not None and version not in SUPPORTED_VERSIONS:
            raise HttpRefusal(
                400,
                f"MCP-Protocol-Version {version!r} is not supported "
                f"(this session's is {record.protocol_version})",
            )
        return record

    async def end_session(
        self, session_id: str, reason: str, layer: BaseChannelLayer | None
    ) -> None:
        """End a session everywhere: its record, then its exchanges and streams in every web
        process (this one at once)."""
        await self.sessions.end(session_id)
        await self.local.end_here(session_id, reason)
        if layer is not None:
            ended = session_messages.HttpSessionEnded(session_id=session_id, reason=reason)
            try:
                await layer.group_send(session_messages.WEB_GROUP, ended.encode())
            except Exception:
                logger.warning("could not tell the web processes that a session ended")
