"""Tests of sending broadcasts, and a WEB_GROUP listener the API tests share."""

import asyncio
from typing import Any
from uuid import uuid4

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from mcp_server.cluster.session_messages import WEB_GROUP

RECEIVE_TIMEOUT = 5.0


class WebGroupListener:
    """A channel of this test in WEB_GROUP (or `group`) of the configured layer, as a web
    process has."""

    def __init__(self, group: str = WEB_GROUP) -> None:
        self.group = group
        self.layer = get_channel_layer()
        self.channel: str = async_to_sync(self.layer.new_channel)()
        async_to_sync(self.layer.group_add)(group, self.channel)

    def receive(self, timeout: float = RECEIVE_TIMEOUT) -> dict[str, Any]:
        """The next message sent to the group; fails after `timeout` seconds without one."""

        async def receive() -> dict[str, Any]:
            async with asyncio.timeout(timeout):
                return await self.layer.receive(self.channel)

        return async_to_sync(receive)()

    def assert_nothing_sent(self) -> None:
        """Nothing is waiting: a marker sent to the group now is the next message received."""
        marker = {"type": "test.marker", "id": uuid4().hex}
        async_to_sync(self.layer.group_send)(self.group, marker)
        assert self.receive() == marker

    def close(self) -> None:
        """Leave the group."""
        async_to_sync(self.layer.group_discard)(self.group, self.channel)
