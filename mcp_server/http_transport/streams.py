"""The SSE streams of an HTTP session: each event stored before it is sent, and a stream
resumed with `Last-Event-ID` on any web process.

A `StreamWriter` appends every event to the event store, then writes it to its client while
the client reads; once the client has gone it sends each new event to the stream's group on
the channel layer instead, where the process that resumed the stream (any web process, this
one included) picks it up. Resuming joins that group first, then replays from the store what
came after the client's last event, then passes on live events, skipping any it already
replayed: nothing is lost between the two and nothing is sent twice.
"""

import asyncio
import logging
from typing import Any

from channels.layers import BaseChannelLayer

from mcp_server import metrics
from mcp_server.cluster.decoding import decode_message
from mcp_server.cluster.layer import receive_riding_out
from mcp_server.cluster.messages import MalformedMessage
from mcp_server.cluster.session_messages import HttpStreamEvent
from mcp_server.http_transport.events import EventStore, StoredEvent, StreamCursor
from mcp_server.http_transport.sse import SseResponse
from mcp_server.protocol.text_escapes import json_text

logger = logging.getLogger(__name__)

# How long (ms) a client waits before reconnecting a stream the server closed early.
RETRY_MS = 1000


def stream_group(stream: str) -> str:
    """The channel-layer group of the process that resumed `stream`."""
    return f"mcp-http.{stream}"


def _entry_order(event_id: str) -> tuple[int, int]:
    entry = event_id.partition("/")[2]
    milliseconds, _, sequence = entry.partition("-")
    return int(milliseconds or 0), int(sequence or 0)


class StreamWriter:
    """Writes one stream's events: stored, then to the client or to whoever resumed it."""

    def __init__(
        self,
        *,
        events: EventStore,
        session_id: str,
        stream: str,
        response: SseResponse,
        layer: BaseChannelLayer | None,
    ) -> None:
        self.events = events
        self.session_id = session_id
        self.stream = stream
        self.response = response
        self.layer = layer

    async def prime(self) -> None:
        """The first event: an id and empty data, so the client can resume from the start."""
        event_id = await self.events.append(self.session_id, self.stream, b"", final=False)
        await self.response.event("", event_id, retry_ms=RETRY_MS)

    async def emit(self, message: Any, *, final: bool = False) -> None:
        """Store one JSON-RPC message of the stream and deliver it."""
        data = json_text(message)
        event_id = await self.events.append(
            self.session_id, self.stream, data.encode(), final=final
        )
        if await self.response.event(data, event_id):
            return
        if self.layer is None:
            return
        try:
            await self.layer.group_send(
                stream_group(self.stream),
                HttpStreamEvent(event_id=event_id, data=data, final=final).encode(),
            )
        except Exception:
            metrics.channel_layer_error("send")
            logger.debug("could not pass on an event of stream %s", self.stream, exc_info=True)

    async def end(self) -> None:
        """Mark the stream ended without a response (its request was cancelled)."""
        event_id = await self.events.append(self.session_id, self.stream, b"", final=True)
        if not self.response.connected and self.layer is not None:
            ended = HttpStreamEvent(event_id=event_id, data="", final=True)
            try:
                await self.layer.group_send(stream_group(self.stream), ended.encode())
            except Exception:
                metrics.channel_layer_error("send")


async def replay(
    response: SseResponse,
    *,
    events: EventStore,
    session_id: str,
    cursor: StreamCursor,
    layer: BaseChannelLayer | None,
    live: bool,
) -> bool | None:
    """Send a resumed stream's missed events, then (`live`) its new ones until its final one.

    None: the stream is not kept (expired, or not this session's); False: the client left
    before the stream ended; True: the stream ended or (not `live`) is now caught up.
    """
    channel = None
    if live and layer is not None:
        channel = await layer.new_channel()
        await layer.group_add(stream_group(cursor.stream), channel)
    try:
        missed = await events.after(session_id, cursor)
        if missed is None:
            return None
        await response.start()
        last = (cursor.stream + "/" + cursor.entry, False)
        for stored in missed:
            if not await _send_stored(response, stored):
                return False
            last = (stored.event_id, stored.final)
        if last[1] or channel is None or layer is None:
            return True
        newest = _entry_order(last[0])
        while True:
            message = await _next_or_left(response, layer, channel)
            if message is None:
                return False
            try:
                event = decode_message(message)
            except MalformedMessage as exc:
                logger.warning("ignored a malformed stream event: %s", exc)
                continue
            if not isinstance(event, HttpStreamEvent) or _entry_order(event.event_id) <= newest:
                continue
            if not await response.event(event.data, event.event_id):
                return False
            newest = _entry_order(event.event_id)
            if event.final:
                return True
    finally:
        if channel is not None and layer is not None:
            await layer.group_discard(stream_group(cursor.stream), channel)


async def _next_or_left(
    response: SseResponse, layer: BaseChannelLayer, channel: str
) -> dict[str, Any] | None:
    """The next message of `channel`, or None once the client has left."""
    receiving = asyncio.ensure_future(receive_riding_out(layer, channel))
    left = asyncio.ensure_future(response.left.wait())
    await asyncio.wait({receiving, left}, return_when=asyncio.FIRST_COMPLETED)
    left.cancel()
    if not receiving.done():
        receiving.cancel()
        return None
    return receiving.result()


async def _send_stored(response: SseResponse, stored: StoredEvent) -> bool:
    return await response.event(stored.data.decode(), stored.event_id)
