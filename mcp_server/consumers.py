"""The WebSocket transport: frames in and out of an McpSession, nothing more."""

import logging
from typing import Any

import orjson
from channels.consumer import get_handler_name
from django.conf import settings

from config import log_context
from mcp_server import metrics
from mcp_server.admission import MessageAllowance
from mcp_server.consumer_channel import ListenOnDemandConsumer
from mcp_server.process_runtime import ProcessRuntime
from mcp_server.protocol.errors import INVALID_REQUEST
from mcp_server.protocol.refusals import rate_limited, refusal_replies
from mcp_server.protocol.text_escapes import json_text
from mcp_server.session import McpSession
from mcp_server.tools.catalog import catalog_for_principal
from mcp_server.uvicorn_websocket import OUTBOUND_LIMIT_EXTENSION

logger = logging.getLogger(__name__)

SUBPROTOCOL = "mcp"
CLOSE_MESSAGE_TOO_BIG = 1009
# The code the server closes sockets with when it shuts down.
CLOSE_SERVICE_RESTART = 1012


class McpConsumer(ListenOnDemandConsumer):
    """One authenticated MCP connection (the auth middleware put `principal` in the scope)."""

    session: McpSession | None = None
    runtime: ProcessRuntime | None = None
    # Put in the scope by ConnectionAdmissionMiddleware; None: no message rate limit.
    message_allowance: MessageAllowance | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Run the connection; should its loop die of a fault, interrupt the session's calls:
        none is recorded `succeeded` for a client that never got its answer."""
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self.session is not None and not self.session.is_closed:
                assert self.runtime is not None
                self.runtime.connections.unregister(self.session)
                await self.session.close(server_shutdown=True)
            # The session points at this consumer (its send, close and listen): let go of it
            # so that both are freed by reference counting, not by the cyclic collector.
            self.session = None

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
        # Put in the scope by RuntimeLifespan (mcp_server/lifespan.py).
        runtime: ProcessRuntime = self.scope["runtime"]
        self.runtime = runtime
        log_context.bind_connection(self.scope, self.channel_name or str(id(self)))
        self.max_bytes = settings.MCP_MAX_MESSAGE_BYTES
        self.message_allowance = self.scope.get("message_allowance")
        self.session = McpSession(
            principal=principal,
            catalog=catalog_for_principal(principal),
            identity=runtime.identity,
            executor=runtime.executor,
            admission=runtime.runner.admission,
            connection_id=self.channel_name or str(id(self)),
            send=self.send_json,
            liveness=runtime.liveness,
            close_transport=self._close_with,
            listen=self.listen,
            message_allowance=self.message_allowance,
            listen_counts=runtime.listens,
        )
        # The server enforces the bound where the bytes pile up (without the extension, e.g.
        # under daphne for runserver, nothing bounds them).
        outbound = self.scope.get("extensions", {}).get(OUTBOUND_LIMIT_EXTENSION)
        if outbound is not None:
            outbound["bytes"] = principal.limits.outbound_bytes_per_connection
        offered = self.scope.get("subprotocols") or ()
        await self.accept(SUBPROTOCOL if SUBPROTOCOL in offered else None)
        runtime.connections.register(self.session)

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
            assert self.runtime is not None
            self.runtime.connections.unregister(self.session)
            await self.session.close(server_shutdown=code == CLOSE_SERVICE_RESTART)

    async def operation_progress(self, message: dict[str, Any]) -> None:
        """An event of an operation this connection listens to (progress, log or outcome) or
        a change of a run it subscribed to, from whichever process sent it, for the session."""
        if self.session is not None:
            await self.session.channel_message(message)

    operation_log = operation_progress
    operation_finished = operation_progress
    resource_updated = operation_progress

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        """Serialise with orjson (several times faster than the json module); a lone surrogate
        (UTF-8 cannot carry it) is sent as the text of its escape, as history stores it."""
        return json_text(content)
