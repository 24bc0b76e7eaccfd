"""An event and an unbounded queue for objects that every connection holds, without the deques.

`asyncio.Event` makes a `collections.deque` for its waiters and `asyncio.Queue` three (items,
getters, putters): 0.75 KiB each, whether anything ever waits or not. uvicorn gives every
WebSocket one of each, which at 10,000 idle connections is 30 MB (docs/BENCHMARKS.md,
"Connection storms"). These keep the same semantics for what uvicorn uses of them (set, clear,
wait, is_set; put_nowait, get, empty, qsize) in lists made when something is there.
"""

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class SlimEvent:
    """`asyncio.Event`'s set, clear, wait and is_set, its waiters in a list made on demand."""

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        """Whether the flag is set."""
        return self._value

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        if self._value:
            return
        self._value = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        """Reset the flag."""
        self._value = False

    async def wait(self) -> bool:
        """Wait until the flag is set (at once if it is); True."""
        if self._value:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
            return True
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


class SlimQueue(Generic[T]):
    """An unbounded FIFO queue: `asyncio.Queue`'s put_nowait, get, empty and qsize.

    Meant for short queues (uvicorn pauses reading once a message waits): items are taken
    from the front of a list.
    """

    __slots__ = ("_getters", "_items")

    def __init__(self) -> None:
        self._items: list[T] = []
        self._getters: list[asyncio.Future[None]] | None = None

    def qsize(self) -> int:
        """How many items wait."""
        return len(self._items)

    def empty(self) -> bool:
        """Whether no item waits."""
        return not self._items

    def put_nowait(self, item: T) -> None:
        """Add `item` at the end and wake the first getter waiting."""
        self._items.append(item)
        self._wake_next()

    async def get(self) -> T:
        """Take the first item, waiting for one if there is none."""
        while not self._items:
            waiter = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = []
            self._getters.append(waiter)
            try:
                await waiter
            except BaseException:
                waiter.cancel()
                if self._getters is not None and waiter in self._getters:
                    self._getters.remove(waiter)
                # Woken and cancelled at once: the item it was woken for is another's.
                if self._items and not waiter.cancelled():
                    self._wake_next()
                raise
        return self._items.pop(0)

    def _wake_next(self) -> None:
        while self._getters:
            waiter = self._getters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                return
