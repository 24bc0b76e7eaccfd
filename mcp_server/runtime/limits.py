"""Concurrency limits with a fair queue: round robin across tenants, then users, then
connections.

A call runs at once when its connection, its user, its tenant and the process are all under
their limits. Otherwise it waits; whenever a slot frees, the next tenant in turn that may run
something is served: its next user in turn that may, and that user's next connection in turn
that may, whose oldest waiter runs. A waiter blocked only by its own connection's, user's or
tenant's limit never holds up others.

Every step is O(1) in the number of waiters: a waiter joins and leaves its connection's queue
in O(1), and finding the next one to run skips only entities at their own limit, each of which
holds at least one running slot, so a search looks at no more than a few times `Limits.total`
entries. Queue positions are announced in one pass over the queue, at most once per
`announce_interval` (and never taking more than a tenth of the loop), only to the waiters
whose position changed.
"""

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any

PositionCallback = Callable[[int], None]
# Positions announced per turn of the event loop; a pass over a long queue takes several turns.
_ANNOUNCE_BATCH = 256
# A pass announcing positions waits at least this many times as long as the last one took.
_ANNOUNCE_COST_FACTOR = 10.0


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


# Each level is in round-robin order (front is next); a connection's waiters in arrival order.
_ConnectionQueue = OrderedDict[_Waiter, None]
_UserQueue = OrderedDict[Any, _ConnectionQueue]
_TenantQueue = OrderedDict[Any, _UserQueue]


def _interleave(sequences: Iterable[Iterable[_Waiter]]) -> Iterator[_Waiter]:
    return (w for group in zip_longest(*sequences) for w in group if w is not None)


class FairScheduler:
    """Grants run slots under Limits, queueing the rest fairly."""

    def __init__(self, limits: Limits, *, announce_interval: float = 0.2) -> None:
        self.limits = limits
        self.announce_interval = announce_interval
        self._running_total = 0
        self._waiting = 0
        self._listening = 0  # waiters that want to hear their position
        self._by_connection: dict[Any, int] = {}
        self._by_user: dict[Any, int] = {}
        self._by_tenant: dict[Any, int] = {}
        self._queues: OrderedDict[Any, _TenantQueue] = OrderedDict()
        # A pass is scheduled or under way; positions changed since the last pass began.
        self._announcing = False
        self._positions_stale = False
        self._next_announce_at = 0.0
        # What the queue cost so far (the complexity tests read these).
        self.announce_passes = 0
        self.positions_announced = 0

    @property
    def running(self) -> int:
        """Slots in use."""
        return self._running_total

    @property
    def waiting(self) -> int:
        """Calls waiting for a slot."""
        return self._waiting

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
        if not self._waiting and self._fits(key):
            self._take(key)
        else:
            await self._wait(key, on_position)

    def release(self, key: SlotKey) -> None:
        """Give back a slot taken with `acquire`."""
        self._give_back(key)

    async def _wait(self, key: SlotKey, on_position: PositionCallback | None) -> None:
        waiter = _Waiter(key, asyncio.get_running_loop().create_future(), on_position)
        users = self._queues.get(key.tenant)
        if users is None:
            users = self._queues[key.tenant] = OrderedDict()
        connections = users.get(key.user)
        if connections is None:
            connections = users[key.user] = OrderedDict()
        waiters = connections.get(key.connection)
        if waiters is None:
            waiters = connections[key.connection] = OrderedDict()
        waiters[waiter] = None
        self._waiting += 1
        if on_position is not None:
            self._listening += 1
        self._dispatch()
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self._give_back(key)  # granted just as it was cancelled
            elif self._remove(waiter):
                self._positions_changed()
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
        if self._waiting:
            self._dispatch()

    def _remove(self, waiter: _Waiter) -> bool:
        """Take a waiter out of the queue (O(1)); False when it was not in it."""
        key = waiter.key
        users = self._queues.get(key.tenant)
        if users is None:
            return False
        connections = users.get(key.user)
        if connections is None:
            return False
        waiters = connections.get(key.connection)
        if waiters is None or waiter not in waiters:
            return False
        del waiters[waiter]
        self._waiting -= 1
        if waiter.on_position is not None:
            self._listening -= 1
        if not waiters:
            del connections[key.connection]
            if not connections:
                del users[key.user]
                if not users:
                    del self._queues[key.tenant]
        return True

    def _next_waiter(self) -> _Waiter | None:
        """The oldest waiter of the first tenant, user and connection in turn that may run."""
        limits = self.limits
        for tenant, users in self._queues.items():
            if self._by_tenant.get(tenant, 0) >= limits.per_tenant:
                continue
            for user, connections in users.items():
                if self._by_user.get(user, 0) >= limits.per_user:
                    continue
                for connection, waiters in connections.items():
                    if self._by_connection.get(connection, 0) < limits.per_connection:
                        return next(iter(waiters))
        return None

    def _dispatch(self) -> None:
        while self._waiting and self._running_total < self.limits.total:
            waiter = self._next_waiter()
            if waiter is None:
                break
            if waiter.future.done():  # cancelled while queued; its task finds it gone
                self._remove(waiter)
            else:
                self._grant(waiter)
        self._positions_changed()

    def _grant(self, waiter: _Waiter) -> None:
        key = waiter.key
        self._remove(waiter)
        # The tenant, user and connection just served go to the back of their rotations.
        users = self._queues.get(key.tenant)
        if users is not None:
            connections = users.get(key.user)
            if connections is not None:
                if key.connection in connections:
                    connections.move_to_end(key.connection)
                users.move_to_end(key.user)
            self._queues.move_to_end(key.tenant)
        self._take(key)
        waiter.future.set_result(None)

    # --- queue positions ------------------------------------------------------------------
    def _positions_changed(self) -> None:
        """Schedule one pass announcing positions (at once, or when the last is far enough
        behind)."""
        self._positions_stale = True
        if self._announcing or not self._listening:
            return
        self._announcing = True
        loop = asyncio.get_running_loop()
        loop.call_at(max(loop.time(), self._next_announce_at), self._announce)

    def _order(self) -> Iterator[_Waiter]:
        """All waiters in the order round robin would serve them if slots freed one by one."""
        return _interleave(
            _interleave(
                _interleave(list(w) for w in connections.values()) for connections in users.values()
            )
            for users in self._queues.values()
        )

    def _announce(self) -> None:
        """One pass: every waiter's place now, then the changed ones told a batch per turn."""
        started = time.perf_counter()
        self.announce_passes += 1
        self._positions_stale = False
        changed: list[tuple[_Waiter, int]] = []
        index = 0
        for waiter in self._order():
            if waiter.future.done():
                continue
            index += 1
            if waiter.position != index:
                waiter.position = index
                if waiter.on_position is not None:
                    changed.append((waiter, index))
        self._tell(changed, 0, time.perf_counter() - started)

    def _tell(self, changed: list[tuple[_Waiter, int]], start: int, cost: float) -> None:
        began = time.perf_counter()
        loop = asyncio.get_running_loop()
        for waiter, position in changed[start : start + _ANNOUNCE_BATCH]:
            # A waiter granted or gone since the pass has nothing more to hear.
            if waiter.on_position is not None and not waiter.future.done():
                self.positions_announced += 1
                waiter.on_position(position)
        cost += time.perf_counter() - began
        if start + _ANNOUNCE_BATCH < len(changed):
            loop.call_soon(self._tell, changed, start + _ANNOUNCE_BATCH, cost)
            return
        # The pass is over: the next may start once the pause after it has passed.
        self._announcing = False
        pause = max(self.announce_interval, _ANNOUNCE_COST_FACTOR * cost)
        self._next_announce_at = loop.time() + pause
        if self._positions_stale:
            self._positions_changed()


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
