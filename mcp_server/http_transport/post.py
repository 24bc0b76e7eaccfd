"""`POST /mcp`: one JSON-RPC message. `initialize` mints the session (`Mcp-Session-Id`, its
record in records.py); a request is answered by an Exchange, as `application/json`, or as
`text/event-stream` when the client accepts it and the call may send more than its response
(progress, logs; a short tool's call streams only once it sends something before its
response); a notification or response gets 202 and goes to what it concerns, in whichever
process (local.py). A 2026-07-28 message is answered on its own (stateless.py)."""

import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import orjson
from channels.layers import BaseChannelLayer
from django.conf import settings

from accounts.principal import Principal
from accounts.ws_auth import header
from mcp_server.admission import MessageAllowance
from mcp_server.http_transport import stateless
from mcp_server.http_transport.endpoint import HttpEndpoint
from mcp_server.http_transport.events import new_stream_name
from mcp_server.http_transport.exchange import Exchange, is_response_to, up_to_response
from mcp_server.http_transport.http_io import (
    SESSION_HEADER,
    Headers,
    HttpRefusal,
    Receive,
    Send,
    accepts,
    read_body,
    respond,
)
from mcp_server.http_transport.records import SessionCaps, SessionRecord, new_session_id
from mcp_server.http_transport.sse import SseResponse
from mcp_server.http_transport.streams import StreamWriter
from mcp_server.process_runtime import ProcessRuntime
from mcp_server.protocol import methods
from mcp_server.protocol.errors import PARSE_ERROR, MessageError
from mcp_server.protocol.messages import Message, Request, parse_message
from mcp_server.protocol.refusals import rate_limited
from mcp_server.protocol.request_headers import MirroredHeaders, is_modern_post
from mcp_server.tools.registry import registry as tool_registry

# Requests that may send progress and logs before their response: streamed when accepted.
STREAMED_METHODS = frozenset(
    {methods.TOOLS_CALL, methods.TASKS_RESULT, methods.SUBSCRIPTIONS_LISTEN}
)


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


def _refuse_if_over(over: Any) -> None:
    """429 when the POST was over the caller's message rate (`over`: the bucket's say)."""
    if over is not None:
        error = rate_limited(over.limit, over.retry_after_ms)
        retry = b"%d" % max(1, over.retry_after_ms // 1000)
        headers = [(b"retry-after", retry)]
        raise HttpRefusal(429, error.message, code=error.code, headers=headers)


class PostRequests:
    """The POSTs of `/mcp` in one process."""

    def __init__(self, endpoint: HttpEndpoint) -> None:
        self.endpoint = endpoint

    async def serve(
        self,
        scope: dict[str, Any],
        receive: Receive,
        send: Send,
        runtime: ProcessRuntime,
        principal: Principal,
    ) -> None:
        """Serve one POST: parse its message, then answer it in its era."""
        content_type = (header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise HttpRefusal(415, "POST a JSON-RPC message as application/json")
        takes_json, takes_sse = accepts(scope)
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
        allowance = self.endpoint.admission.allowance_for(principal)
        over = allowance.take()
        version_header = header(scope, b"mcp-protocol-version")
        params = message.params if isinstance(message, Request) else None
        if is_modern_post(version_header, params):
            _refuse_if_over(over)
            await self._modern(
                scope, receive, send, runtime, principal, payload, message, allowance
            )
            return
        is_initialize = isinstance(message, Request) and message.method == methods.INITIALIZE
        if is_initialize and header(scope, SESSION_HEADER):
            raise HttpRefusal(400, "initialize starts a new session: send it without a session id")
        record = None if is_initialize else await self.endpoint.record(scope, principal)
        _refuse_if_over(over)
        if not isinstance(message, Request):
            assert record is not None
            await self.endpoint.local.deliver(record.session_id, payload, runtime.bus.layer)
            await respond(send, 202)
            return
        layer = runtime.bus.layer
        if record is None:
            exchange = await Exchange.opened(runtime, principal, None, allowance)
            await self._initialize(exchange, payload, message, principal, send)
            return
        local = self.endpoint.local
        exchange = await self._exchange_for(runtime, principal, record, allowance)
        local.add_exchange(record.session_id, message.id, exchange)
        runtime.connections.register(exchange, lasting=False)
        kept = _Once(lambda: self._record_changes(record, exchange, layer))
        answered = False
        try:
            if takes_sse and (message.method in STREAMED_METHODS or not takes_json):
                await self._answer_streamed(
                    exchange,
                    payload,
                    message,
                    record,
                    send,
                    receive,
                    layer,
                    before_reply=kept,
                    json_first=takes_json and _answers_at_once(message),
                )
            else:
                await self._answer_json(exchange, payload, message, send, before_reply=kept)
            await kept()
            answered = True
        finally:
            runtime.connections.unregister(exchange)
            local.remove_exchange(record.session_id, message.id)
            if answered and exchange.idle:
                await local.park(record.session_id, exchange)
            else:
                await exchange.close()

    async def _exchange_for(
        self,
        runtime: ProcessRuntime,
        principal: Principal,
        record: SessionRecord,
        allowance: MessageAllowance,
    ) -> Exchange:
        """The exchange for a request of `record`'s session: the one its last request here
        left idle, when it served the same caller (tool set and limits included), or a new
        one."""
        parked = self.endpoint.local.unpark(record.session_id)
        if parked is not None:
            if parked.principal is principal or parked.principal == principal:
                parked.resume(record, allowance)
                return parked
            await parked.close()
        return await Exchange.opened(runtime, principal, record, allowance)

    async def _record_changes(
        self, record: SessionRecord, exchange: Exchange, layer: BaseChannelLayer | None
    ) -> None:
        """Keep what the request changed of the session (logging level, subscriptions) in its
        record; a change of subscriptions also goes to the session's GET stream, wherever.
        Done before the response is sent: a GET stream of this process watches a subscribed
        resource by the time its client reads the acknowledgement (one on another process
        has been sent the change by then, over the channel layer)."""
        session = exchange.session
        sessions = self.endpoint.sessions
        uris = session.features.subscribed_uris  # None: the request subscribed to nothing
        if uris is None or uris == record.resource_subscriptions:
            if session.log_level != record.log_level:
                await sessions.save(replace(record, log_level=session.log_level))
            return
        changed = replace(record, log_level=session.log_level, resource_subscriptions=uris)
        await sessions.save(changed)
        await self.endpoint.local.subscriptions_changed(record.session_id, uris, layer)

    async def _modern(
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
        takes_json, takes_sse = accepts(scope)
        listening = message.method == methods.SUBSCRIPTIONS_LISTEN
        if listening and not takes_sse:
            raise HttpRefusal(406, "subscriptions/listen is answered as text/event-stream")
        exchange = await Exchange.opened(runtime, principal, None, allowance)
        # A `subscriptions/listen` stream is held open as a GET stream is; any other request's
        # exchange lasts as long as its request.
        runtime.connections.register(exchange, lasting=listening)
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
        self,
        exchange: Exchange,
        payload: dict[str, Any],
        request: Request,
        principal: Principal,
        send: Send,
    ) -> None:
        try:
            reply = await exchange.response(payload, request)
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
                refused = await self.endpoint.sessions.create(record, caps)
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
        request: Request,
        send: Send,
        *,
        before_reply: Callable[[], Awaitable[None]],
    ) -> None:
        reply = await exchange.response(payload, request)
        await before_reply()
        # No reply: the client cancelled the request, and will not read one.
        await respond(send, 200 if reply is not None else 202, reply)

    async def _answer_streamed(
        self,
        exchange: Exchange,
        payload: dict[str, Any],
        request: Request,
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
        first: dict[str, Any] | None = None
        if json_first:
            # Read without a generator around it: a short call's only message is its response.
            outgoing = await exchange.handed(payload, request)
            first = await anext(outgoing, None)
            if first is None or is_response_to(first, payload["id"]):
                await before_reply()
                # None: the client cancelled the request, and will not read a reply.
                await respond(send, 200 if first is not None else 202, first)
                return
            replies = up_to_response(outgoing, payload["id"])
        else:
            replies = exchange.replies(payload, request)
        response = SseResponse(send, receive)
        await response.start()
        writer = StreamWriter(
            events=self.endpoint.events,
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
