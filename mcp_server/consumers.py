"""The WebSocket transport: frames in and out of an McpSession, nothing more."""

from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import orjson
from channels.consumer import get_handler_name
from django.conf import settings

from config import log_context
from mcp_server import metrics
from mcp_server.admission import MessageAllowance
from mcp_server.cluster.node import cluster_node
from mcp_server.consumer_channel import ListenOnDemandConsumer
from mcp_server.protocol.errors import INVALID_REQUEST
from mcp_server.protocol.refusals import rate_limited, refusal_replies
from mcp_server.protocol.text_escapes import escape_value
from mcp_server.runtime.runner import operation_runner
from mcp_server.session import McpSession, ServerIdentity
from mcp_server.tools.catalog import catalog_for
from mcp_server.uvicorn_websocket import OUTBOUND_LIMIT_EXTENSION

SUBPROTOCOL = "mcp"
CLOSE_MESSAGE_TOO_BIG = 1009
# The code the server closes sockets with when it shuts down.
CLOSE_SERVICE_RESTART = 1012


@lru_cache(maxsize=1)
def server_identity() -> ServerIdentity:
    """The server's name, version and limits, read from settings once."""
    try:
        package_version = version("mcp-realtime")
    except PackageNotFoundError:
        package_version = "0.0.0"
    return ServerIdentity(
        name=settings.MCP_SERVER_NAME,
        title=settings.MCP_SERVER_TITLE,
        version=package_version,
        tools_page_size=settings.MCP_TOOLS_PAGE_SIZE,
        tasks_page_size=settings.MCP_TASKS_PAGE_SIZE,
        task_default_ttl=settings.MCP_TASK_DEFAULT_TTL,
        task_max_ttl=settings.MCP_TASK_MAX_TTL,
        task_poll_interval=settings.MCP_TASK_POLL_INTERVAL,
        ping_interval=settings.MCP_CLIENT_PING_INTERVAL,
        ping_timeout=settings.MCP_CLIENT_PING_TIMEOUT,
    )


class McpConsumer(ListenOnDemandConsumer):
    """One authenticated MCP connection (the auth middleware put `principal` in the scope)."""

    session: McpSession | None = None
    # Put in the scope by ConnectionAdmissionMiddleware; None: no message rate limit.
    message_allowance: MessageAllowance | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Run the connection; should its loop die of a fault, interrupt the session's calls:
        none is recorded `succeeded` for a client that never got its answer."""
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self.session is not None and not self.session.is_closed:
                cluster_node().unregister(self.session)
                await self.session.close(server_shutdown=True)

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Route a message to its handler, without Channels' per-message connection check.

        Channels closes stale database connections before every handler, which costs a hop to
        a worker thread for every frame. This consumer never touches the database on the event
        loop: authentication and history run through code that manages its own connections.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        """Create the session and accept, choosing the `mcp` subprotocol when offered."""
        principal = self.scope["principal"]
        log_context.bind_connection(self.scope, self.channel_name or str(id(self)))
        self.max_bytes = settings.MCP_MAX_MESSAGE_BYTES
        self.message_allowance = self.scope.get("message_allowance")
        node = cluster_node()
        await node.start()
        self.session = McpSession(
            principal=principal,
            catalog=catalog_for(principal.enabled_tools),
            identity=server_identity(),
            runner=operation_runner(),
            connection_id=self.channel_name or str(id(self)),
            send=self.send_json,
            node=node,
            in_worker=settings.MCP_EXECUTION == "worker",
            close_transport=self._close_with,
            listen=self.listen,
        )
        # The server enforces the bound where the bytes pile up (without the extension, e.g.
        # under daphne for runserver, nothing bounds them).
        outbound = self.scope.get("extensions", {}).get(OUTBOUND_LIMIT_EXTENSION)
        if outbound is not None:
            outbound["bytes"] = principal.limits.outbound_bytes_per_connection
        offered = self.scope.get("subprotocols") or ()
        await self.accept(SUBPROTOCOL if SUBPROTOCOL in offered else None)
        node.register(self.session)

    async def _close_with(self, code: int, reason: str) -> None:
        await self.close(code=code, reason=reason)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Decode one text frame and hand it to the session; refuse binary and oversized ones."""
        session = self.session
        if session is None:
            return
        if text_data is None:
            await session.reject_frame(
                INVALID_REQUEST, "Binary frames are not supported: send JSON-RPC as text frames"
            )
            return
        # Characters never outnumber UTF-8 bytes, so only long frames need an exact count.
        if len(text_data) * 4 > self.max_bytes and len(text_data.encode()) > self.max_bytes:
            await self.close(code=CLOSE_MESSAGE_TOO_BIG, reason="message too big")
            return
        try:
            payload = orjson.loads(text_data)
        except orjson.JSONDecodeError as exc:
            await session.reject_unparseable(str(exc))
            return
        allowance = self.message_allowance
        if allowance is not None:
            refused = allowance.take(len(payload) if isinstance(payload, list) else 1)
            if refused is not None:
                await self._refuse_over_rate(payload, refused.limit, refused.retry_after_ms)
                return
        await session.receive(payload)

    async def _refuse_over_rate(self, payload: Any, limit: str, retry_after_ms: int) -> None:
        """Answer each request of a frame over the message rate; drop its notifications."""
        reply, requests, dropped = refusal_replies(payload, rate_limited(limit, retry_after_ms))
        if self.message_allowance is not None:
            self.message_allowance.count_refused(requests, dropped)
        metrics.refused(limit, self.scope["principal"], requests + dropped)
        if reply is not None:
            await self.send_json(reply)

    async def disconnect(self, code: int) -> None:
        """Stop the session's in-flight work (interrupted when the server is restarting)."""
        if self.session is not None:
            cluster_node().unregister(self.session)
            await self.session.close(server_shutdown=code == CLOSE_SERVICE_RESTART)

    async def operation_progress(self, message: dict[str, Any]) -> None:
        """Progress of an operation this connection listens to (from whichever process runs it)."""
        if self.session is not None:
            await self.session.operation_event(message)

    operation_log = operation_progress
    operation_finished = operation_progress

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        """Serialise with orjson (several times faster than the json module); a lone surrogate
        (UTF-8 cannot carry it) is sent as the text of its escape, as history stores it."""
        try:
            return orjson.dumps(content).decode()
        except TypeError:
            return orjson.dumps(escape_value(content, nul=False)).decode()
