"""This process's part of every HTTP session: its exchanges in flight and its GET streams,
and what other processes send them.

A notification or response POSTed to one process goes to the exchange or stream it concerns
here, or, when none here is concerned, to every web process (WEB_GROUP), each of which hands
it to its own: a `notifications/cancelled` reaches the call wherever it runs, a response
reaches whoever waits for it. A session's end (DELETE, revoked access) reaches them all too.
"""

import logging
from collections import OrderedDict
from typing import Any

from channels.layers import BaseChannelLayer

from mcp_server import metrics
from mcp_server.cluster import decoding, session_messages
from mcp_server.cluster.bus import OperationBus
from mcp_server.http_transport.exchange import Exchange
from mcp_server.http_transport.listen_stream import ListenStream
from mcp_server.operations.lifecycle import Stop, StopReason
from mcp_server.protocol import methods

logger = logging.getLogger(__name__)

# Idle exchanges kept for their sessions' next requests here, one per session at most; past
# this many the least recently used is closed (each is a few KiB).
PARKED_LIMIT = 1024


class LocalHttpSessions:
    """The exchanges and GET streams this process holds, by session id."""

    def __init__(self) -> None:
        self._exchanges: dict[str, dict[Any, Exchange]] = {}
        self._streams: dict[str, ListenStream] = {}
        self._buses: set[int] = set()
        # An exchange that ended idle, by session, for the session's next request here:
        # building one per request (its McpSession and parts) was ~5 % of a call's CPU.
        self._parked: OrderedDict[str, Exchange] = OrderedDict()

    def join(self, bus: OperationBus) -> None:
        """Take this process's HTTP messages from `bus` (once per bus)."""
        if id(bus) not in self._buses:
            self._buses.add(id(bus))
            bus.subscribe(session_messages.HTTP_MESSAGES, self._handle)

    def add_exchange(self, session_id: str, request_id: Any, exchange: Exchange) -> None:
        """An exchange of `session_id` runs here."""
        self._exchanges.setdefault(session_id, {})[request_id] = exchange

    def remove_exchange(self, session_id: str, request_id: Any) -> None:
        """The exchange answered (or was stopped)."""
        exchanges = self._exchanges.get(session_id)
        if exchanges is not None:
            exchanges.pop(request_id, None)
            if not exchanges:
                del self._exchanges[session_id]

    def unpark(self, session_id: str) -> Exchange | None:
        """The idle exchange kept for `session_id`'s next request here, if any (taken)."""
        return self._parked.pop(session_id, None)

    def parked(self, session_id: str) -> Exchange | None:
        """The idle exchange kept for `session_id`'s next request here, if any (kept)."""
        return self._parked.get(session_id)

    async def park(self, session_id: str, exchange: Exchange) -> None:
        """Keep an idle exchange for `session_id`'s next request here (the one it had is
        closed, and the least recently used past PARKED_LIMIT)."""
        previous = self._parked.pop(session_id, None)
        self._parked[session_id] = exchange
        if previous is not None:
            await previous.close()
        while len(self._parked) > PARKED_LIMIT:
            _, oldest = self._parked.popitem(last=False)
            await oldest.close()

    def exchanges(self, session_id: str) -> int:
        """How many exchanges of `session_id` run here."""
        return len(self._exchanges.get(session_id, {}))

    async def replace_stream(self, session_id: str, stream: ListenStream) -> None:
        """`stream` is the session's GET stream here now; one it had here ends (every
        server-initiated message goes to one stream only)."""
        previous = self._streams.get(session_id)
        self._streams[session_id] = stream
        if previous is not None:
            await previous.end()

    def remove_stream(self, session_id: str, stream: ListenStream) -> None:
        """`stream` ended."""
        if self._streams.get(session_id) is stream:
            del self._streams[session_id]

    async def deliver(
        self, session_id: str, payload: dict[str, Any], layer: BaseChannelLayer | None
    ) -> None:
        """Hand a POSTed notification or response to what it concerns here, else to the
        other web processes."""
        if await self._deliver_here(session_id, payload) or layer is None:
            return
        message = session_messages.HttpSessionMessage(session_id=session_id, payload=payload)
        try:
            await layer.group_send(session_messages.WEB_GROUP, message.encode())
        except Exception:
            metrics.channel_layer_error("send")
            logger.warning("could not pass a client message on to the web processes")

    async def _deliver_here(self, session_id: str, payload: dict[str, Any]) -> bool:
        exchanges = self._exchanges.get(session_id, {})
        if payload.get("method") == methods.NOTIFICATION_CANCELLED:
            params = payload.get("params")
            target = exchanges.get(params.get("requestId")) if isinstance(params, dict) else None
            if target is None:
                return False
            await target.deliver(payload)
            return True
        if "method" in payload:
            return True  # other notifications change nothing a process holds
        # A response: to whichever session here sent the request (unknown ids are ignored).
        receivers = [e.session for e in exchanges.values()]
        stream = self._streams.get(session_id)
        if stream is not None:
            receivers.append(stream.session)
        for session in receivers:
            await session.receive(payload)
        return bool(receivers)

    async def subscriptions_changed(
        self, session_id: str, uris: list[str], layer: BaseChannelLayer | None
    ) -> None:
        """The session's resource subscriptions are `uris` now: its GET stream, here or on
        another web process, watches them."""
        stream = self._streams.get(session_id)
        if stream is not None:
            await stream.subscriptions_changed(uris)
        if layer is None:
            return
        message = session_messages.HttpSessionSubscribed(session_id=session_id, uris=tuple(uris))
        try:
            await layer.group_send(session_messages.WEB_GROUP, message.encode())
        except Exception:
            metrics.channel_layer_error("send")
            logger.warning("could not pass a subscription change on to the web processes")

    async def end_here(self, session_id: str, reason: str) -> None:
        """The session ended: stop its exchanges and streams in this process."""
        exchanges = list(self._exchanges.pop(session_id, {}).values())
        stream = self._streams.pop(session_id, None)
        parked = self._parked.pop(session_id, None)
        if parked is not None:
            await parked.close()
        if exchanges or stream is not None:
            logger.info("an HTTP session ended (%s): stopping its work here", reason)
        for exchange in exchanges:
            await exchange.close(Stop(StopReason.DISCONNECT))
        if stream is not None:
            await stream.end()

    async def _handle(self, message: decoding.ClusterMessage) -> None:
        if isinstance(message, session_messages.HttpSessionMessage):
            await self._deliver_here(message.session_id, message.payload)
        elif isinstance(message, session_messages.HttpSessionSubscribed):
            stream = self._streams.get(message.session_id)
            if stream is not None:  # (this process's own change was applied already)
                await stream.subscriptions_changed(list(message.uris))
        elif isinstance(message, session_messages.HttpSessionEnded) and (
            message.session_id in self._exchanges
            or message.session_id in self._streams
            or message.session_id in self._parked
        ):
            await self.end_here(message.session_id, message.reason)
