"""Concurrency limits with a fair queue: round robin across tenants, then across users.

A call runs at once when its connection, its user, its tenant and the process are all under
their limits. Otherwise it waits; whenever a slot frees, waiters are considered in round-robin
order (one per tenant in turn, and within a tenant one per user in turn), and the first whose
limits allow it runs. A waiter blocked only by its own user's limit never holds up others.
"""

import asyncio
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any

PositionCallback = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Limits:
    """How many operations may run at once per connection, user, tenant and process."""

    per_connection: int = 4
    per_user: int = 8
    per_tenant: int = 32
    total: int = 64


@dataclass(frozen=True, slots=True)
class SlotKey:
    """Who a slot is for."""

    tenant: Any
    user: Any
    connection: Any


@dataclass(eq=False, slots=True)
class _Waiter:
    key: SlotKey
    future: asyncio.Future[None]
    on_position: PositionCallback | None
    position: int = field(default=0)


def _interleave(sequences: list[list[_Waiter]]) -> list[_Waiter]:
    return [w for group in zip_longest(*sequences) for w in group if w is not None]


class FairScheduler:
    """Grants run slots under Limits, queueing the rest fairly."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._running_total = 0
        self._by_connection: dict[Any, int] = {}
        self._by_user: dict[Any, int] = {}
        self._by_tenant: dict[Any, int] = {}
        # tenant -> user -> waiters, each level in round-robin order (front is next).
        self._queues: OrderedDict[Any, OrderedDict[Any, deque[_Waiter]]] = OrderedDict()

    @property
    def running(self) -> int:
        """Slots in use."""
        return self._running_total

    @property
    def waiting(self) -> int:
        """Calls waiting for a slot."""
        return sum(len(q) for users in self._queues.values() for q in users.values())

    def running_for(self, *, user: Any = None, tenant: Any = None, connection: Any = None) -> int:
        """Slots in use by one user, tenant or connection."""
        if user is not None:
            return self._by_user.get(user, 0)
        if tenant is not None:
            return self._by_tenant.get(tenant, 0)
        return self._by_connection.get(connection, 0)

    def slot(self, key: SlotKey, on_position: PositionCallback | None = None) -> "Slot":
        """`async with scheduler.slot(key):` holds a run slot, waiting fairly for one."""
        return Slot(self, key, on_position)

    async def acquire(self, key: SlotKey, on_position: PositionCallback | None = None) -> None:
        """Take a run slot, waiting in the fair queue when limits are reached."""
        if not self._queues and self._fits(key):
            self._take(key)
        else:
            await self._wait(key, on_position)

    def release(self, key: SlotKey) -> None:
        """Give back a slot taken with `acquire`."""
        self._give_back(key)

    async def _wait(self, key: SlotKey, on_position: PositionCallback | None) -> None:
        waiter = _Waiter(key, asyncio.get_running_loop().create_future(), on_position)
        users = self._queues.setdefault(key.tenant, OrderedDict())
        users.setdefault(key.user, deque()).append(waiter)
        self._dispatch()
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self._give_back(key)  # granted just as it was cancelled
            else:
                self._remove(waiter)
                self._dispatch()
            raise

    def _fits(self, key: SlotKey) -> bool:
        limits = self.limits
        return (
            self._running_total < limits.total
            and self._by_tenant.get(key.tenant, 0) < limits.per_tenant
            and self._by_user.get(key.user, 0) < limits.per_user
            and self._by_connection.get(key.connection, 0) < limits.per_connection
        )

    def _take(self, key: SlotKey) -> None:
        self._running_total += 1
        for counts, name in (
            (self._by_tenant, key.tenant),
            (self._by_user, key.user),
            (self._by_connection, key.connection),
        ):
            counts[name] = counts.get(name, 0) + 1

    def _give_back(self, key: SlotKey) -> None:
        self._running_total -= 1
        for counts, name in (
            (self._by_tenant, key.tenant),
            (self._by_user, key.user),
            (self._by_connection, key.connection),
        ):
            left = counts[name] - 1
            if left:
                counts[name] = left
            else:
                del counts[name]
        if self._queues:
            self._dispatch()

    def _remove(self, waiter: _Waiter) -> None:
        users = self._queues.get(waiter.key.tenant)
        if users is None:
            return
        queue = users.get(waiter.key.user)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            if not queue:
                del users[waiter.key.user]
        if not users:
            del self._queues[waiter.key.tenant]

    def _order(self) -> list[_Waiter]:
        """All waiters in the order round robin would serve them if slots freed one by one."""
        per_tenant = [
            _interleave([list(q) for q in users.values()]) for users in self._queues.values()
        ]
        return _interleave(per_tenant)

    def _dispatch(self) -> None:
        granted = True
        while granted and self._queues:
            granted = False
            for waiter in self._order():
                if waiter.future.done():  # cancelled while queued; its task removes it too
                    self._remove(waiter)
                    granted = True
                    break
                if self._fits(waiter.key):
                    self._grant(waiter)
                    granted = True
                    break
        self._announce()

    def _grant(self, waiter: _Waiter) -> None:
        tenant, user = waiter.key.tenant, waiter.key.user
        self._remove(waiter)
        # The tenant and user just served go to the back of their rotations.
        users = self._queues.get(tenant)
        if users is not None:
            if user in users:
                users.move_to_end(user)
            self._queues.move_to_end(tenant)
        self._take(waiter.key)
        waiter.future.set_result(None)

    def _announce(self) -> None:
        for index, waiter in enumerate(self._order(), start=1):
            if waiter.position != index:
                waiter.position = index
                if waiter.on_position is not None:
                    waiter.on_position(index)


class Slot:
    """The async context manager of `FairScheduler.slot` (a class: no generator per call)."""

    __slots__ = ("_key", "_on_position", "_scheduler")

    def __init__(
        self, scheduler: FairScheduler, key: SlotKey, on_position: PositionCallback | None
    ) -> None:
        self._scheduler = scheduler
        self._key = key
        self._on_position = on_position

    async def __aenter__(self) -> None:
        await self._scheduler.acquire(self._key, self._on_position)

    async def __aexit__(self, *exc_info: object) -> None:
        self._scheduler.release(self._key)
