"""The embedded (single-process) channel layer: Channels' in-memory layer, without its scans.

`channels.layers.InMemoryChannelLayer` looks for expired messages and group memberships by
walking every channel and every group member on each `receive` and `group_send`. Every open
connection waits in `receive` on a channel of its own, so with N connections open each new one
costs O(N), and N reconnecting clients O(N²): 10,000 took 80 s instead of a few. This layer
keeps the same behaviour (a message dropped `expiry` seconds after it was sent, a channel with
a dropped message removed from every group, a membership ended `group_expiry` seconds after it
began) but finds what is due in heaps of deadlines, so each operation costs O(log N).
"""

import asyncio
import heapq
import secrets
import time
from copy import deepcopy
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer


class ExpiringInMemoryChannelLayer(InMemoryChannelLayer):
    """InMemoryChannelLayer whose expiry costs O(log N) per operation instead of O(N)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reset_deadlines()

    def _reset_deadlines(self) -> None:
        # (deadline of the oldest message, channel): one live entry per channel that holds
        # messages; `_scheduled` says which deadline that entry has (older entries are stale).
        self._message_deadlines: list[tuple[float, str]] = []
        self._scheduled: dict[str, float] = {}
        # (end of membership, group, channel, join time): a rejoin updates the join time, so an
        # entry whose join time no longer matches is stale.
        self._membership_deadlines: list[tuple[float, str, str, float]] = []

    async def new_channel(self, prefix: str = "specific.") -> str:
        """A new process-local channel name (Channels draws 12 letters one by one)."""
        return f"{prefix}.inmemory!{secrets.token_hex(8)}"

    def _queue(self, channel: str) -> "asyncio.Queue[tuple[float, dict[str, Any]]]":
        queue: asyncio.Queue[tuple[float, dict[str, Any]]] | None = self.channels.get(channel)
        if queue is None:
            queue = asyncio.Queue(maxsize=self.get_capacity(channel))
            self.channels[channel] = queue
        return queue

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Put a copy of `message` on `channel`; ChannelFull when it is at capacity."""
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        assert "__asgi_channel__" not in message
        queue = self._queue(channel)
        deadline = time.time() + self.expiry
        try:
            queue.put_nowait((deadline, deepcopy(message)))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None
        if channel not in self._scheduled:
            self._scheduled[channel] = deadline
            heapq.heappush(self._message_deadlines, (deadline, channel))

    async def receive(self, channel: str) -> dict[str, Any]:
        """The next message of `channel`, once one arrives (expired ones are dropped first)."""
        self.require_valid_channel_name(channel)
        self._clean_expired()
        queue = self._queue(channel)
        try:
            _, message = await queue.get()
        finally:
            if queue.empty() and self.channels.get(channel) is queue:
                del self.channels[channel]
        return message

    def _clean_expired(self) -> None:
        """Drop the messages and group memberships that are due, and only those."""
        now = time.time()
        deadlines = self._message_deadlines
        while deadlines and deadlines[0][0] < now:
            deadline, channel = heapq.heappop(deadlines)
            if self._scheduled.get(channel) != deadline:
                continue
            del self._scheduled[channel]
            self._drop_expired_messages(channel, now)
        memberships = self._membership_deadlines
        cutoff = now - self.group_expiry
        while memberships and memberships[0][0] < now:
            _, group, channel, joined = heapq.heappop(memberships)
            members = self.groups.get(group)
            if members is not None and members.get(channel) == joined and joined < cutoff:
                del members[channel]

    def _drop_expired_messages(self, channel: str, now: float) -> None:
        queue = self.channels.get(channel)
        if queue is None:
            return
        while not queue.empty() and queue._queue[0][0] < now:
            queue.get_nowait()
            self._remove_from_groups(channel)
        if queue.empty():
            # A receiver waiting on the queue keeps it; an abandoned one goes.
            if not queue._getters:
                del self.channels[channel]
            return
        head = queue._queue[0][0]
        self._scheduled[channel] = head
        heapq.heappush(self._message_deadlines, (head, channel))

    async def flush(self) -> None:
        """Forget every channel, group and deadline."""
        await super().flush()
        self._reset_deadlines()

    async def group_add(self, group: str, channel: str) -> None:
        """Add `channel` to `group` for `group_expiry` seconds."""
        await super().group_add(group, channel)
        joined = self.groups[group][channel]
        heapq.heappush(
            self._membership_deadlines, (joined + self.group_expiry, group, channel, joined)
        )
