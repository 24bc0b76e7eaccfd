"""The slim event and queue of every WebSocket (mcp_server/slim_waits.py) behave as asyncio's
for what uvicorn uses of them."""

import asyncio
import sys

import pytest

from mcp_server.slim_waits import SlimEvent, SlimQueue

TIMEOUT = 5.0


async def test_an_event_wakes_every_waiter_and_returns_at_once_when_set() -> None:
    event = SlimEvent()
    waiters = [asyncio.ensure_future(event.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(waiter.done() for waiter in waiters) and not event.is_set()
    event.set()
    assert await asyncio.wait_for(asyncio.gather(*waiters), TIMEOUT) == [True] * 3
    assert await event.wait() is True
    event.clear()
    assert not event.is_set()


async def test_a_cancelled_wait_leaves_no_waiter_behind() -> None:
    event = SlimEvent()
    waiter = asyncio.ensure_future(event.wait())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not event._waiters
    event.set()


async def test_a_queue_is_first_in_first_out_and_get_waits_for_an_item() -> None:
    queue: SlimQueue[int] = SlimQueue()
    queue.put_nowait(1)
    queue.put_nowait(2)
    assert (queue.qsize(), queue.empty()) == (2, False)
    assert [await queue.get(), await queue.get()] == [1, 2]
    assert queue.empty()
    getting = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    assert not getting.done()
    queue.put_nowait(3)
    assert await asyncio.wait_for(getting, TIMEOUT) == 3


async def test_a_getter_cancelled_after_its_wake_up_passes_the_item_on() -> None:
    queue: SlimQueue[str] = SlimQueue()
    first = asyncio.ensure_future(queue.get())
    second = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait("item")  # wakes `first`...
    first.cancel()  # ...which is cancelled before it runs
    assert await asyncio.wait_for(second, TIMEOUT) == "item"
    assert first.cancelled() and queue.empty()


def test_slimmer_than_asyncio() -> None:
    assert sys.getsizeof(SlimQueue()) + sys.getsizeof([]) < sys.getsizeof(asyncio.Queue()._queue)  # type: ignore[attr-defined]
    assert sys.getsizeof(SlimEvent()) < sys.getsizeof(asyncio.Event()._waiters)
