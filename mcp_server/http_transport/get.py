"""`GET /mcp`: open the session's stream for server-initiated messages, or resume a stream
after `Last-Event-ID` (streams.py), on whichever web process the client reaches."""

from typing import Any

from accounts.principal import Principal
from accounts.ws_auth import header
from mcp_server.http_transport.endpoint import HttpEndpoint
from mcp_server.http_transport.events import StreamCursor, new_stream_name
from mcp_server.http_transport.exchange import new_inbox, session_for
from mcp_server.http_transport.http_io import HttpRefusal, Receive, Send, accepts
from mcp_server.http_transport.listen_stream import ListenStream
from mcp_server.http_transport.sse import SseResponse
from mcp_server.http_transport.streams import StreamWriter, replay
from mcp_server.process_runtime import ProcessRuntime


async def serve_get(
    endpoint: HttpEndpoint,
    scope: dict[str, Any],
    receive: Receive,
    send: Send,
    runtime: ProcessRuntime,
    principal: Principal,
) -> None:
    """Serve one GET: replay what a resumed stream missed, then the session's live stream."""
    if not accepts(scope)[1]:
        raise HttpRefusal(406, "GET /mcp serves text/event-stream only")
    record = await endpoint.record(scope, principal)
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
            events=endpoint.events,
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
        events=endpoint.events,
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
        sessions=endpoint.sessions,
        session_id=record.session_id,
        end_session=lambda session_id, reason: endpoint.end_session(session_id, reason, layer),
    )
    await endpoint.local.replace_stream(record.session_id, listening)
    runtime.connections.register(listening)
    try:
        # Read again now that changes reach the stream: one made since the record was
        # loaded would be missed otherwise.
        current = await endpoint.sessions.load(record.session_id)
        if current is not None:
            await listening.subscriptions_changed(current.resource_subscriptions)
        await listening.run()
    finally:
        runtime.connections.unregister(listening)
        endpoint.local.remove_stream(record.session_id, listening)
        await response.finish()
