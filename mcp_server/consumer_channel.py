"""A JSON WebSocket consumer that reads its channel-layer channel only once it may be sent to.

Channels' consumers start a reader of their channel for every connection (a task and a queue,
and on Redis two more tasks and a lock waiter) and pass every frame through
`await_many_dispatch`, which waits on both sources with fresh tasks each time. Most MCP
connections never get a message over the layer: replies go straight out, and only tasks and
calls run elsewhere send events to a connection's channel. So the channel is named at once (it
is the connection's id) but read from the moment `listen()` is first called, which is before
its name is handed to anyone; frames and layer messages are dispatched one at a time, as in
Channels. At 10,000 idle connections this saves several KiB and a few tasks per connection.
"""

import asyncio
import contextlib
import functools
import logging
from typing import Any

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer

from mcp_server.cluster.layer import receive_riding_out

logger = logging.getLogger(__name__)

# The close code for a connection whose layer messages could not be handled (internal error).
CLOSE_INTERNAL_ERROR = 1011


class ListenOnDemandConsumer(AsyncJsonWebsocketConsumer):
    """AsyncJsonWebsocketConsumer reading its channel only after `listen()`.

    Its handlers must not use the database on the event loop: unlike Channels' consumers it
    does not close stale database connections (a hop to a worker thread) on disconnect.
    """

    _listener: "asyncio.Task[None] | None" = None
    _finished = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Dispatch the client's messages, and the channel's once listening, one at a time."""
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
            # Rides out Redis outages: the socket and its inline work go on without Redis.
            self.channel_receive = functools.partial(
                receive_riding_out, self.channel_layer, self.channel_name
            )
        self.base_send = send
        self._dispatching = asyncio.Lock()
        if self.groups:
            self.listen()
        try:
            while True:
                message = await receive()
                async with self._dispatching:
                    await self.dispatch(message)
        except StopConsumer:
            pass
        finally:
            await self._stop_listening()

    def listen(self) -> None:
        """Start reading this connection's channel (once; a no-op without a channel layer)."""
        if self._listener is None and not self._finished and self.channel_layer is not None:
            self._listener = asyncio.create_task(self._listen(), name="consumer-channel")

    @property
    def listening(self) -> bool:
        """Whether this connection's channel is being read."""
        return self._listener is not None and not self._listener.done()

    async def _listen(self) -> None:
        while True:
            message = await self.channel_receive()
            try:
                async with self._dispatching:
                    await self.dispatch(message)
            except Exception:
                # Channels would end the connection with the exception: do so, and say why.
                logger.exception("message %s on %s failed", message.get("type"), self.channel_name)
                with contextlib.suppress(Exception):
                    await self.close(code=CLOSE_INTERNAL_ERROR)
                return

    async def _stop_listening(self) -> None:
        self._finished = True
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        """Leave the groups and run `disconnect`, without Channels' database clean-up hop."""
        for group in self.groups:
            await self.channel_layer.group_discard(group, self.channel_name)
        await self.disconnect(message["code"])
        raise StopConsumer()
