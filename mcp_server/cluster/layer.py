"""Receiving from the channel layer through Redis outages.

A receive that fails because Redis is unreachable is retried with backoff instead of raising:
a connection's socket and its inline work do not depend on Redis, so they must not die with it.
Each outage is logged once (`layer_outage`), not once per attempt.
"""

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from channels.layers import BaseChannelLayer

from mcp_server import metrics
from mcp_server.cluster import messages
from mcp_server.dependencies import REDIS_ERRORS, layer_outage

logger = logging.getLogger(__name__)

# Retries start after this many seconds and double up to the cap (with jitter, so the
# connections of a process do not all retry at once).
_FIRST_RETRY = 0.1
_MAX_RETRY = 2.0


class Backoff:
    """Exponential backoff with jitter, reset by a success."""

    def __init__(self) -> None:
        self._delay = _FIRST_RETRY

    async def wait(self) -> None:
        """Sleep before the next attempt; each wait is longer, up to the cap."""
        await asyncio.sleep(self._delay * random.uniform(0.5, 1.0))
        self._delay = min(2 * self._delay, _MAX_RETRY)

    def reset(self) -> None:
        """An attempt succeeded: the next outage starts with short waits again."""
        self._delay = _FIRST_RETRY


async def receive_riding_out(layer: BaseChannelLayer, channel: str) -> messages.Message:
    """The next message of `channel`, however long Redis is unreachable meanwhile."""
    backoff = Backoff()
    while True:
        try:
            message = await layer.receive(channel)
        except REDIS_ERRORS as exc:
            metrics.channel_layer_error("receive")
            layer_outage.down(exc)
            await backoff.wait()
            continue
        layer_outage.up()
        return message


async def receive_forever(
    layer: BaseChannelLayer,
    channel: str,
    handle: Callable[[messages.Message], Awaitable[None]],
    *,
    join: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Hand every message of `channel` to `handle`, riding out outages of the layer and errors
    of the handler; returns only when cancelled.

    `join` (joining the channel's groups) runs first and again after every outage: a Redis that
    restarted empty has forgotten the groups. The outage ends when it succeeds.
    """
    backoff = Backoff()
    must_join = join is not None
    while True:
        try:
            if join is not None and must_join:
                await join()
                must_join = False
                layer_outage.up()
            message = await layer.receive(channel)
        except asyncio.CancelledError:
            raise
        except REDIS_ERRORS as exc:
            metrics.channel_layer_error("receive")
            layer_outage.down(exc)
            must_join = join is not None
            await backoff.wait()
            continue
        except Exception:
            logger.warning("receiving from %s failed; retrying in 1 s", channel, exc_info=True)
            await asyncio.sleep(1)
            continue
        backoff.reset()
        layer_outage.up()
        try:
            await handle(message)
        except Exception:
            logger.exception("message %s from %s failed", message.get("type"), channel)
