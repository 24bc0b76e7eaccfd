"""The embedded channel layer (mcp_server/channel_layers.py): Channels' in-memory layer's
behaviour, at a cost that does not grow with the channels open."""

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from channels.exceptions import ChannelFull
from django.conf import settings

from mcp_server.channel_layers import ExpiringInMemoryChannelLayer
from tests.support import yield_to_other_tasks

TIMEOUT = 5


class CountingDict(dict[str, Any]):
    """A dict that counts how often something walks over it."""

    walks = 0

    def items(self) -> Any:
        type(self).walks += 1
        return super().items()

    def values(self) -> Any:
        type(self).walks += 1
        return super().values()

    def keys(self) -> Any:
        type(self).walks += 1
        return super().keys()

    def __iter__(self) -> Iterator[str]:
        type(self).walks += 1
        return super().__iter__()


def test_the_embedded_default_is_this_layer() -> None:
    expected = (
        "channels_redis.core.RedisChannelLayer"
        if settings.REDIS_URL
        else "mcp_server.channel_layers.ExpiringInMemoryChannelLayer"
    )
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == expected


async def test_messages_arrive_in_order_and_groups_fan_out() -> None:
    layer = ExpiringInMemoryChannelLayer()
    one, two = await layer.new_channel(), await layer.new_channel()
    await layer.send(one, {"type": "a", "n": 1})
    await layer.send(one, {"type": "a", "n": 2})
    assert [(await layer.receive(one))["n"] for _ in range(2)] == [1, 2]
    await layer.group_add("g", one)
    await layer.group_add("g", two)
    waiting = asyncio.ensure_future(layer.receive(two))
    await layer.group_send("g", {"type": "b"})
    assert (await asyncio.wait_for(waiting, TIMEOUT))["type"] == "b"
    assert (await layer.receive(one))["type"] == "b"
    await layer.group_discard("g", one)
    await layer.group_send("g", {"type": "c"})
    assert (await layer.receive(two))["type"] == "c"
    assert one not in layer.channels


async def test_a_message_is_copied_and_a_full_channel_refuses() -> None:
    layer = ExpiringInMemoryChannelLayer(capacity=2)
    channel = await layer.new_channel()
    message: dict[str, Any] = {"type": "a", "items": [1]}
    await layer.send(channel, message)
    message["items"].append(2)
    await layer.send(channel, {"type": "a"})
    with pytest.raises(ChannelFull):
        await layer.send(channel, {"type": "a"})
    assert (await layer.receive(channel))["items"] == [1]


async def test_expired_messages_are_dropped_and_their_channel_leaves_its_groups() -> None:
    # expiry < 0: every message is past its deadline as soon as it is sent.
    layer = ExpiringInMemoryChannelLayer(expiry=-1)
    dead, alive = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("g", dead)
    await layer.group_add("g", alive)
    await layer.send(dead, {"type": "lost"})
    waiting = asyncio.ensure_future(layer.receive(alive))
    await yield_to_other_tasks()  # the receiver starts waiting (and cleans up)
    assert dead not in layer.channels
    assert dead not in layer.groups["g"]
    assert alive in layer.groups["g"]
    # A waiting receiver keeps its channel: a message sent now still reaches it.
    await layer.send(alive, {"type": "late"})
    assert (await asyncio.wait_for(waiting, TIMEOUT))["type"] == "late"


async def test_unexpired_messages_and_memberships_stay() -> None:
    layer = ExpiringInMemoryChannelLayer(expiry=60, group_expiry=86400)
    channel, other = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("g", channel)
    await layer.send(channel, {"type": "kept"})
    await layer.group_send("g", {"type": "also"})
    waiting = asyncio.ensure_future(layer.receive(other))
    await yield_to_other_tasks()
    assert [(await layer.receive(channel))["type"] for _ in range(2)] == ["kept", "also"]
    assert channel in layer.groups["g"]
    waiting.cancel()


async def test_group_memberships_end_after_group_expiry() -> None:
    layer = ExpiringInMemoryChannelLayer(group_expiry=-1)
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    await layer.group_send("g", {"type": "never"})
    assert channel not in layer.groups.get("g", {})
    assert channel not in layer.channels


async def test_a_rejoined_group_keeps_its_new_membership() -> None:
    layer = ExpiringInMemoryChannelLayer(group_expiry=3600)
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    await layer.group_discard("g", channel)
    await layer.group_add("g", channel)
    layer._clean_expired()
    assert channel in layer.groups["g"]


async def test_flush_forgets_everything() -> None:
    layer = ExpiringInMemoryChannelLayer()
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    await layer.send(channel, {"type": "a"})
    await layer.flush()
    assert layer.channels == {} and layer.groups == {}
    layer._clean_expired()


async def test_receive_and_group_send_walk_no_channel_however_many_are_open() -> None:
    """Channels' own layer walks every channel on each receive: N reconnecting clients cost
    O(N²). Here nothing walks the channels (or a group other than the one sent to)."""
    layer = ExpiringInMemoryChannelLayer()
    layer.channels = CountingDict()
    layer.groups = {"other": CountingDict()}
    waiting = [asyncio.ensure_future(layer.receive(await layer.new_channel())) for _ in range(500)]
    await yield_to_other_tasks()
    sender = await layer.new_channel()
    await layer.group_add("g", sender)
    CountingDict.walks = 0
    extra = asyncio.ensure_future(layer.receive(await layer.new_channel()))
    await yield_to_other_tasks()
    await layer.group_send("g", {"type": "hello"})
    assert (await layer.receive(sender))["type"] == "hello"
    assert CountingDict.walks == 0
    for task in [*waiting, extra]:
        task.cancel()
    await asyncio.gather(*waiting, extra, return_exceptions=True)
    assert len(layer.channels) == 0
