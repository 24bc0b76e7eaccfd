"""The Streamable HTTP endpoint (`POST`, `GET`, `DELETE /mcp`), an ASGI app beside the
WebSocket consumer on the same path, over the same session, protocol and runtime.

Every request is checked against DNS rebinding (Host, Origin: 403) and authenticated
(accounts/http_auth.py: 401 with a Bearer challenge). `POST` carries one JSON-RPC message:
`initialize` mints the session (`Mcp-Session-Id`, its record in records.py); a request is
answered by an Exchange, as `application/json`, or as `text/event-stream` when the client
accepts it and the call may send more than its response (progress, logs; a short tool's call
streams only once it sends something before its response); a notification or
response gets 202 and goes to what it concerns, in whichever process (local.py). `GET` opens
the session's stream for server-initiated messages (listen_stream.py), or resumes a stream
after `Last-Event-ID` (streams.py). `DELETE` ends the session everywhere.
"""

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from functools import lru_cache
from typing import Any

import orjson
from channels.layers import BaseChannelLayer
from django.conf import settings
from redis.asyncio import Redis

from accounts.http_auth import authenticate_http, challenge, rebinding_refusal
from accounts.principal import Principal
from accounts.selectors import AuthFailure
from accounts.ws_auth import header
from mcp_server.admission import ConnectionAdmission, MessageAllowance
from mcp_server.cluster import session_messages
from mcp_server.dependencies import REDIS_ERRORS, REDIS_UNAVAILABLE
from mcp_server.http_transport import stateless
from mcp_server.http_transport.events import (
    EventStore,
    MemoryEventStore,
    RedisEventStore,
    StreamCursor,
    new_stream_name,
)
from mcp_server.http_transport.exchange import Exchange, is_response_to, new_inbox, session_for
from mcp_server.http_transport.listen_stream import ListenStream
from mcp_server.http_transport.local import LocalHttpSessions
from mcp_server.http_transport.records import (
    MemorySessionStore,
    RedisSessionStore,
    SessionCaps,
    SessionRecord,
    SessionStore,
    new_session_id,
)
from mcp_server.http_transport.sse import SseResponse
from mcp_server.http_transport.streams import StreamWriter, replay
from mcp_server.process_runtime import ProcessRuntime
from mcp_server.protocol import methods
from mcp_server.protocol.errors import INVALID_REQUEST, PARSE_ERROR, JsonRpcError, MessageError
from mcp_server.protocol.messages import Message, Request, error_message, parse_message
from mcp_server.protocol.modern import MODERN_VERSION, MODERN_VERSIONS
from mcp_server.protocol.refusals import rate_limited
from mcp_server.protocol.request_headers import MirroredHeaders, is_modern_post
from mcp_server.protocol.versions import SUPPORTED_VERSIONS
from mcp_server.tools.registry import registry as tool_registry

logger = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Headers = list[tuple[bytes, bytes]]

SESSION_HEADER = b"mcp-session-id"
# Requests that may send progress and logs before their response: streamed when accepted.
STREAMED_METHODS = frozenset(
    {methods.TOOLS_CALL, methods.TASKS_RESULT, methods.SUBSCRIPTIONS_LISTEN}
)
# Longest session id looked up (ours are 43 characters).
MAX_SESSION_ID = 128


class HttpRefusal(Exception):
    """A request answered with an HTTP error status and a JSON-RPC error without an id."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: int = INVALID_REQUEST,
        headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = list(headers)


class TooLarge(Exception):
    """The request body is over MCP_MAX_MESSAGE_BYTES."""


async def respond(
    send: Send,
    status: int,
    body: Any = None,
    headers: Headers = (),  # type: ignore[assignment]
) -> None:
    """A whole response: JSON `body` (None: empty)."""
    content = b"" if body is None else orjson.dumps(body)
    all_headers = list(headers)
    if body is not None:
        all_headers.append((b"content-type", b"application/json"))
    all_headers.append((b"content-length", b"%d" % len(content)))
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": content})


async def read_body(scope: dict[str, Any], receive: Receive, limit: int) -> bytes:
    """The request body, refused (TooLarge) as soon as it passes `limit` bytes."""
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HttpRefusal(400, "the client left before sending the body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


class _Once:
    """An async action that runs at most once, however often it is awaited."""

    __slots__ = ("_action", "_done")

    def __init__(self, action: Callable[[], Awaitable[None]]) -> None:
        self._action, self._done = action, False

    async def __call__(self) -> None:
        if not self._done:
            self._done = True
            await self._action()


def _answers_at_once(request: Request) -> bool:
    """Whether a streamed request usually answers before it sends anything else: a call of a
    tool declared short (it may still log or ask, and then the answer streams after all)."""
    if request.method != methods.TOOLS_CALL:
        return False
    name = request.params.get("name")
    tool = tool_registry.get(name) if isinstance(name, str) else None
    return tool is not None and tool.duration == "short"


def _accepts(scope: dict[str, Any]) -> tuple[bool, bool]:
    """Whether the client takes (application/json, text/event-stream)."""
    return _accepted_media(header(scope, b"accept") or "*/*")


@lru_cache(maxsize=64)
def _accepted_media(accept: str) -> tuple[bool, bool]:
    # Remembered: a client sends the same Accept with every request. Bounded, whatever is sent.
    media = {part.split(";")[0].strip() for part in accept.lower().split(",")}
    anything = "*/*" in media
    return (
        anything or "application/json" in media or "application/*" in media,
        anything or "text/event-stream" in media or "text/*" in media,
    )


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


class StreamableHttpApp:
    """The `/mcp` endpoint for HTTP (one per process)."""

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

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        """Serve one HTTP request to /mcp."""
        runtime: ProcessRuntime = scope["runtime"]
        self.local.join(runtime.bus)
        started = False

        async def tracked(message: dict[str, Any]) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self._serve(scope, receive, tracked, runtime)
        except HttpRefusal as refusal:
            if not started:
                reply = error_message(None, JsonRpcError(refusal.code, refusal.message))
                await respond(send, refusal.status, reply, refusal.headers)
        except TooLarge:
            if not started:
                limit = settings.MCP_MAX_MESSAGE_BYTES
                too_big = JsonRpcError(INVALID_REQUEST, f"message over {limit} bytes")
                await respond(send, 413, error_message(None, too_big))
        except REDIS_ERRORS:
            logger.warning("an HTTP request to /mcp met an unreachable Redis")
            if not started:
                down = JsonRpcError(INVALID_REQUEST, REDIS_UNAVAILABLE)
                await respond(send, 503, error_message(None, down), [(b"retry-after", b"5")])

    async def _serve(
        self, scope: dict[str, Any], receive: Receive, send: Send, runtime: ProcessRuntime
    ) -> None:
        refused = rebinding_refusal(scope)
        if refused is not None:
            raise HttpRefusal(403, refused.reason)
        outcome = await authenticate_http(scope)
        if isinstance(outcome, AuthFailure):
            raise HttpRefusal(outcome.status, outcome.reason, headers=challenge(outcome))
        method = scope["method"]
        version = header(scope, b"mcp-protocol-version")
        if method in ("GET", "DELETE") and version in MODERN_VERSIONS:
            # 2026-07-28 has neither a session stream nor sessions to end (streamable-http.mdx,
            # "Earlier Streamable HTTP Revisions").
            raise HttpRefusal(
                405,
                f"{method} is not part of {MODERN_VERSION}: POST each request",
                headers=[(b"allow", b"POST")],
            )
        if method == "POST":
            await self._post(scope, receive, send, runtime, outcome)
        elif method == "GET":
            await self._get(scope, receive, send, runtime, outcome)
        elif method == "DELETE":
            record = await self._record(scope, outcome)
            await self.end_session(record.session_id, "ended by the client", runtime.bus.layer)
            await respond(send, 204)
        else:
            raise HttpRefusal(
                405, f"{method} is not served here", headers=[(b"allow", b"GET, POST, DELETE")]
            )

    async def _record(self, scope: dict[str, Any], principal: Principal) -> SessionRecord:
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

    # --- POST ------------------------------------------------------------------------------
    async def _post(
        self,
        scope: dict[str, Any],
        receive: Receive,
        send: Send,
        runtime: ProcessRuntime,
        principal: Principal,
    ) -> None:
        content_type = (header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise HttpRefusal(415, "POST a JSON-RPC message as application/json")
        takes_json, takes_sse = _accepts(scope)
        if not (takes_json or takes_sse):
            raise HttpRefusal(406, "Accept application/json and text/event-stream")
        body = await read_body(scope, receive, settings.MCP_MAX_MESSAGE_BYTES)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise HttpRefusal(400, f"Parse error: {exc}", code=PARSE_ERROR) from None
        if isinstance(payload, list):
            raise HttpRefusal(400, "POST one JSON-RPC message per request (no batches)")
        try:
            message = parse_message(payload)
        except MessageError as exc:
            raise HttpRefusal(400, exc.message, code=exc.code) from None
        allowance = MessageAllowance(self.admission, principal)
        over = allowance.take()
        version_header = header(scope, b"mcp-protocol-version")
        params = message.params if isinstance(message, Request) else None
        if is_modern_post(version_header, params):
            self._refuse_if_over(over)
            await self._post_modern(
                scope, receive, send, runtime, principal, payload, message, allowance
            )
            return
        is_initialize = isinstance(message, Request) and message.method == methods.INITIALIZE
        if is_initialize and header(scope, SESSION_HEADER):
            raise HttpRefusal(400, "initialize starts a new session: send it without a session id")
        record = None if is_initialize else await self._record(scope, principal)
        self._refuse_if_over(over)
        if not isinstance(message, Request):
            assert record is not None
            await self.local.deliver(record.session_id, payload, runtime.bus.layer)
            await respond(send, 202)
            return
        layer = runtime.bus.layer
        exchange = Exchange(
            runtime=runtime,
            principal=principal,
            record=record,
            inbox=await new_inbox(runtime),
            allowance=allowance,
        )
        if record is None:
            await self._initialize(exchange, payload, principal, send)
            return
        self.local.add_exchange(record.session_id, message.id, exchange)
        runtime.connections.register(exchange)
        kept = _Once(lambda: self._record_changes(record, exchange, layer))
        try:
            if takes_sse and (message.method in STREAMED_METHODS or not takes_json):
                await self._answer_streamed(
                    exchange,
                    payload,
                    record,
                    send,
                    receive,
                    layer,
                    before_reply=kept,
                    json_first=takes_json and _answers_at_once(message),
                )
            else:
                await self._answer_json(exchange, payload, send, before_reply=kept)
            await kept()
        finally:
            runtime.connections.unregister(exchange)
            self.local.remove_exchange(record.session_id, message.id)
            await exchange.close()

    async def _record_changes(
        self, record: SessionRecord, exchange: Exchange, layer: BaseChannelLayer | None
    ) -> None:
        """Keep what the request changed of the session (logging level, subscriptions) in its
        record; a change of subscriptions also goes to the session's GET stream, wherever.
        Done before the response is sent: a GET stream of this process watches a subscribed
        resource by the time its client reads the acknowledgement (one on another process
        has been sent the change by then, over the channel layer)."""
        session = exchange.session
        uris = session.features.subscribed_uris  # None: the request subscribed to nothing
        if uris is None or uris == record.resource_subscriptions:
            if session.log_level != record.log_level:
                await self.sessions.save(replace(record, log_level=session.log_level))
            return
        changed = replace(record, log_level=session.log_level, resource_subscriptions=uris)
        await self.sessions.save(changed)
        await self.local.subscriptions_changed(record.session_id, uris, layer)

    @staticmethod
    def _refuse_if_over(over: Any) -> None:
        """429 when the POST was over the caller's message rate (`over`: the bucket's say)."""
        if over is not None:
            error = rate_limited(over.limit, over.retry_after_ms)
            retry = b"%d" % max(1, over.retry_after_ms // 1000)
            headers = [(b"retry-after", retry)]
            raise HttpRefusal(429, error.message, code=error.code, headers=headers)

    async def _post_modern(
        self,
        scope: dict[str, Any],
        receive: Receive,
        send: Send,
        runtime: ProcessRuntime,
        principal: Principal,
        payload: dict[str, Any],
        message: Message,
        allowance: MessageAllowance,
    ) -> None:
        """A 2026-07-28 message: answered on its own, whatever session id it carries."""
        if not isinstance(message, Request):
            # No client notification is defined on this binding (cancelling is closing the
            # response): accepted and dropped.
            await respond(send, 202)
            return
        mirrored = MirroredHeaders(
            protocol_version=header(scope, b"mcp-protocol-version"),
            method=header(scope, b"mcp-method"),
            name=header(scope, b"mcp-name"),
        )
        refusal = stateless.envelope_refusal(mirrored, message)
        if refusal is not None:
            await respond(send, 400, refusal)
            return
        takes_json, takes_sse = _accepts(scope)
        listening = message.method == methods.SUBSCRIPTIONS_LISTEN
        if listening and not takes_sse:
            raise HttpRefusal(406, "subscriptions/listen is answered as text/event-stream")
        exchange = Exchange(
            runtime=runtime,
            principal=principal,
            record=None,
            inbox=await new_inbox(runtime),
            allowance=allowance,
        )
        runtime.connections.register(exchange)
        try:
            plain = await stateless.answer(
                exchange,
                payload,
                send=send,
                receive=receive,
                stream=takes_sse and (message.method in STREAMED_METHODS or not takes_json),
                keepalive=runtime.identity.listen_keepalive_seconds if listening else None,
                quick=not listening
                and (message.method != methods.TOOLS_CALL or _answers_at_once(message)),
            )
            if plain is not None:
                await respond(send, *plain)
        finally:
            runtime.connections.unregister(exchange)
            await exchange.close()

    async def _initialize(
        self, exchange: Exchange, payload: dict[str, Any], principal: Principal, send: Send
    ) -> None:
        try:
            reply = await exchange.response(payload)
            headers: Headers = []
            if isinstance(reply, dict) and "result" in reply:
                session = exchange.session
                assert session.protocol_version is not None
                now = time.time()
                record = SessionRecord(
                    session_id=new_session_id(),
                    user_id=principal.user_id,
                    tenant_id=principal.tenant_id,
                    protocol_version=session.protocol_version,
                    client_capabilities=session.client_capabilities,
                    log_level=session.log_level,
                    created_at=now,
                    last_seen_at=now,
                )
                caps = SessionCaps(
                    per_user=settings.MCP_HTTP_SESSIONS_PER_USER,
                    per_tenant=settings.MCP_HTTP_SESSIONS_PER_TENANT,
                )
                refused = await self.sessions.create(record, caps)
                if refused is not None:
                    raise HttpRefusal(429, refused.reason)
                headers.append((SESSION_HEADER, record.session_id.encode()))
            await respond(send, 200, reply, headers)
        finally:
            await exchange.close()

    async def _answer_json(
        self,
        exchange: Exchange,
        payload: dict[str, Any],
        send: Send,
        *,
        before_reply: Callable[[], Awaitable[None]],
    ) -> None:
        reply = await exchange.response(payload)
        await before_reply()
        # No reply: the client cancelled the request, and will not read one.
        await respond(send, 200 if reply is not None else 202, reply)

    async def _answer_streamed(
        self,
        exchange: Exchange,
        payload: dict[str, Any],
        record: SessionRecord,
        send: Send,
        receive: Receive,
        layer: BaseChannelLayer | None,
        *,
        before_reply: Callable[[], Awaitable[None]],
        json_first: bool = False,
    ) -> None:
        """Stream the request's messages, its response last, as resumable SSE events. With
        `json_first`, the stream starts only when a message other than the response comes
        first; a response that comes first is answered as plain JSON (what a short call
        almost always does: no priming event, no stored events, one body). `before_reply`
        runs just before the response is sent."""
        replies = exchange.replies(payload)
        first: dict[str, Any] | None = None
        if json_first:
            first = await anext(replies, None)
            if first is None or is_response_to(first, payload["id"]):
                await before_reply()
                # None: the client cancelled the request, and will not read a reply.
                await respond(send, 200 if first is not None else 202, first)
                return
        response = SseResponse(send, receive)
        await response.start()
        writer = StreamWriter(
            events=self.events,
            session_id=record.session_id,
            stream=new_stream_name("p"),
            response=response,
            layer=layer,
        )
        await writer.prime()
        ended = False
        try:
            if first is not None:
                await writer.emit(first)
            async for message in replies:
                ended = is_response_to(message, payload["id"])
                if ended:
                    await before_reply()
                await writer.emit(message, final=ended)
        finally:
            if not ended:
                await writer.end()
            await response.finish()

    # --- GET --------------------------------------------------------------------------------
    async def _get(
        self,
        scope: dict[str, Any],
        receive: Receive,
        send: Send,
        runtime: ProcessRuntime,
        principal: Principal,
    ) -> None:
        if not _accepts(scope)[1]:
            raise HttpRefusal(406, "GET /mcp serves text/event-stream only")
        record = await self._record(scope, principal)
        layer = runtime.bus.layer
        response = SseResponse(send, receive)
        last_event_id = header(scope, b"last-event-id")
        stream = new_stream_name("g")
        if last_event_id:
            cursor = StreamCursor.parse(last_event_id)
            if cursor is None:
                raise HttpRefusal(400, "Last-Event-ID names no stream of this server")
            live = not cursor.stream.startswith("g")
            outcome = await replay(
                response,
                events=self.events,
                session_id=record.session_id,
                cursor=cursor,
                layer=layer,
                live=live,
            )
            if outcome is None:
                raise HttpRefusal(404, "that stream is no longer kept: open a new one")
            if live or not outcome:
                await response.finish()
                return
            stream = cursor.stream
        else:
            await response.start()
        writer = StreamWriter(
            events=self.events,
            session_id=record.session_id,
            stream=stream,
            response=response,
            layer=None,
        )
        if not last_event_id:
            await writer.prime()
        inbox = await new_inbox(runtime)
        listening = ListenStream(
            make_session=lambda send_message: session_for(
                runtime,
                principal,
                record,
                connection_id=inbox.channel,
                send=send_message,
                listen=inbox.listen,
            ),
            inbox=inbox,
            writer=writer,
            sessions=self.sessions,
            session_id=record.session_id,
            end_session=lambda session_id, reason: self.end_session(session_id, reason, layer),
        )
        await self.local.replace_stream(record.session_id, listening)
        runtime.connections.register(listening)
        try:
            # Read again now that changes reach the stream: one made since the record was
            # loaded would be missed otherwise.
            current = await self.sessions.load(record.session_id)
            if current is not None:
                await listening.subscriptions_changed(current.resource_subscriptions)
            await listening.run()
        finally:
            runtime.connections.unregister(listening)
            self.local.remove_stream(record.session_id, listening)
            await response.finish()

    # --- the end of a session -----------------------------------------------------------------
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
