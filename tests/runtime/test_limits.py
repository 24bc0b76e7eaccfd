import asyncio

import pytest

from mcp_server.runtime.limits import FairScheduler, Limits, SlotKey
from tests.support import wait_until

WAIT = 2.0


async def _hold(scheduler: FairScheduler, key: SlotKey, release: asyncio.Event, log: list, name):
    positions: list[int] = []
    async with scheduler.slot(key, positions.append):
        log.append(name)
        await release.wait()
    return positions


async def _until(predicate) -> None:
    await wait_until(predicate, WAIT)


async def test_runs_at_once_within_limits() -> None:
    scheduler = FairScheduler(Limits(per_connection=2, per_user=2, per_tenant=2, total=2))
    async with scheduler.slot(SlotKey("t", "u", "c")), scheduler.slot(SlotKey("t", "u", "c")):
        assert scheduler.running == 2
    assert scheduler.running == 0


async def test_per_user_limit_queues_then_runs_later() -> None:
    scheduler = FairScheduler(Limits(per_connection=9, per_user=1, per_tenant=9, total=9))
    release = asyncio.Event()
    log: list[str] = []
    first = asyncio.create_task(_hold(scheduler, SlotKey("t", "u", "c1"), release, log, "first"))
    await _until(lambda: log == ["first"])
    second = asyncio.create_task(_hold(scheduler, SlotKey("t", "u", "c2"), release, log, "second"))
    await _until(lambda: scheduler.waiting == 1)
    assert log == ["first"]
    release.set()
    await asyncio.wait_for(asyncio.gather(first, second), WAIT)
    assert log == ["first", "second"]
    assert second.result() == [1]  # told it was first in line
    assert scheduler.running == 0


async def test_round_robin_across_users_of_a_tenant() -> None:
    scheduler = FairScheduler(Limits(per_connection=9, per_user=9, per_tenant=1, total=9))
    gates = {name: asyncio.Event() for name in ["busy", "a1", "a2", "a3", "b1"]}
    log: list[str] = []
    tasks = [
        asyncio.create_task(_hold(scheduler, SlotKey("t", "x", "c"), gates["busy"], log, "busy"))
    ]
    await _until(lambda: log == ["busy"])
    for name, user in [("a1", "a"), ("a2", "a"), ("a3", "a"), ("b1", "b")]:
        tasks.append(
            asyncio.create_task(_hold(scheduler, SlotKey("t", user, "c"), gates[name], log, name))
        )
        await _until(lambda name=name: scheduler.waiting == len(tasks) - 1)
    for name in ["busy", "a1", "b1", "a2"]:
        gates[name].set()
        await _until(lambda n=len(log): len(log) == n + 1)
    assert log == ["busy", "a1", "b1", "a2", "a3"]
    gates["a3"].set()
    await asyncio.wait_for(asyncio.gather(*tasks), WAIT)


async def test_round_robin_across_tenants() -> None:
    scheduler = FairScheduler(Limits(per_connection=9, per_user=9, per_tenant=9, total=1))
    gate = asyncio.Event()
    log: list[str] = []
    holder = asyncio.create_task(_hold(scheduler, SlotKey("z", "z", "z"), gate, log, "holder"))
    await _until(lambda: log == ["holder"])
    releases: dict[str, asyncio.Event] = {}
    tasks = []
    for name, tenant in [("t1a", "t1"), ("t1b", "t1"), ("t1c", "t1"), ("t2a", "t2")]:
        releases[name] = asyncio.Event()
        tasks.append(
            asyncio.create_task(
                _hold(scheduler, SlotKey(tenant, name, "c"), releases[name], log, name)
            )
        )
        await _until(lambda n=len(tasks): scheduler.waiting == n)
    gate.set()
    for name in ["t1a", "t2a", "t1b", "t1c"]:
        await _until(lambda name=name: log[-1] == name)
        releases[name].set()
    await asyncio.wait_for(asyncio.gather(holder, *tasks), WAIT)
    assert log == ["holder", "t1a", "t2a", "t1b", "t1c"]


async def test_positions_are_announced_and_fall() -> None:
    # Positions are announced in passes at most every announce_interval: wait for each
    # announcement rather than expecting it at the instant of the change.
    scheduler = FairScheduler(Limits(per_connection=9, per_user=9, per_tenant=9, total=1))
    gates = [asyncio.Event() for _ in range(3)]
    log: list[str] = []
    positions: list[list[int]] = [[], [], []]

    async def hold(i: int) -> None:
        async with scheduler.slot(SlotKey("t", f"u{i}", "c"), positions[i].append):
            log.append(str(i))
            await gates[i].wait()

    tasks = [asyncio.create_task(hold(i)) for i in range(3)]
    await _until(lambda: positions[1:] == [[1], [2]])
    gates[0].set()
    await _until(lambda: len(log) == 2 and positions[2] == [2, 1])
    gates[1].set()
    gates[2].set()
    await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
    assert positions == [[], [1], [2, 1]]


async def test_cancelled_waiter_leaves_no_trace() -> None:
    scheduler = FairScheduler(Limits(per_connection=1, per_user=1, per_tenant=1, total=1))
    gate = asyncio.Event()
    log: list[str] = []
    holder = asyncio.create_task(_hold(scheduler, SlotKey("t", "u", "c"), gate, log, "holder"))
    await _until(lambda: log == ["holder"])
    waiter = asyncio.create_task(_hold(scheduler, SlotKey("t", "u", "c"), gate, log, "waiter"))
    await _until(lambda: scheduler.waiting == 1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert scheduler.waiting == 0
    gate.set()
    await asyncio.wait_for(holder, WAIT)
    assert scheduler.running == 0
    assert log == ["holder"]


async def test_a_user_at_its_own_limit_does_not_block_others() -> None:
    scheduler = FairScheduler(Limits(per_connection=9, per_user=1, per_tenant=9, total=9))
    gate = asyncio.Event()
    log: list[str] = []
    busy = asyncio.create_task(_hold(scheduler, SlotKey("t", "a", "c"), gate, log, "a1"))
    await _until(lambda: log == ["a1"])
    blocked = asyncio.create_task(_hold(scheduler, SlotKey("t", "a", "c"), gate, log, "a2"))
    await _until(lambda: scheduler.waiting == 1)
    other_gate = asyncio.Event()
    other = asyncio.create_task(_hold(scheduler, SlotKey("t", "b", "c"), other_gate, log, "b1"))
    await _until(lambda: "b1" in log)
    assert "a2" not in log
    other_gate.set()
    gate.set()
    await asyncio.wait_for(asyncio.gather(busy, blocked, other), WAIT)
    assert scheduler.running == 0


async def test_a_connection_at_its_limit_does_not_block_the_users_other_connections() -> None:
    scheduler = FairScheduler(Limits(per_connection=1, per_user=9, per_tenant=9, total=9))
    gate = asyncio.Event()
    log: list[str] = []
    busy = asyncio.create_task(_hold(scheduler, SlotKey("t", "a", "c1"), gate, log, "c1-first"))
    await _until(lambda: log == ["c1-first"])
    blocked = asyncio.create_task(_hold(scheduler, SlotKey("t", "a", "c1"), gate, log, "c1-next"))
    await _until(lambda: scheduler.waiting == 1)
    other = asyncio.create_task(_hold(scheduler, SlotKey("t", "a", "c2"), gate, log, "c2"))
    await _until(lambda: "c2" in log)
    assert "c1-next" not in log
    gate.set()
    await asyncio.wait_for(asyncio.gather(busy, blocked, other), WAIT)
    assert scheduler.running == 0


async def test_round_robin_across_connections_of_a_user() -> None:
    scheduler = FairScheduler(Limits(per_connection=9, per_user=1, per_tenant=9, total=9))
    gates = {name: asyncio.Event() for name in ["busy", "c1a", "c1b", "c2a"]}
    log: list[str] = []
    keys = {"busy": "c0", "c1a": "c1", "c1b": "c1", "c2a": "c2"}
    tasks = []
    for name, connection in keys.items():
        key = SlotKey("t", "u", connection)
        tasks.append(asyncio.create_task(_hold(scheduler, key, gates[name], log, name)))
        await _until(lambda n=len(tasks): len(log) + scheduler.waiting == n)
    for name in ["busy", "c1a", "c2a"]:
        gates[name].set()
        await _until(lambda n=len(log): len(log) == n + 1)
    assert log == ["busy", "c1a", "c2a", "c1b"]
    gates["c1b"].set()
    await asyncio.wait_for(asyncio.gather(*tasks), WAIT)


# Observed: 8,000 calls queued on one connection, then a disconnect, stalled the process for
# seconds: every removal rebuilt the whole order and re-announced every position (O(n²)).
QUEUED = 20_000


async def test_queueing_and_cancelling_many_waiters_costs_linear_work() -> None:
    scheduler = FairScheduler(Limits(per_connection=1, per_user=1, per_tenant=1, total=1))
    holder = SlotKey("t", "u", "c")
    await scheduler.acquire(holder)
    announced: list[int] = []
    waiters = [
        asyncio.create_task(scheduler.acquire(SlotKey("t", "u", "c"), announced.append))
        for _ in range(QUEUED)
    ]
    await wait_until(lambda: scheduler.waiting == QUEUED and len(announced) == QUEUED, 120)
    # One connection's queue is first come, first served: each waiter heard its place once.
    assert sorted(announced) == list(range(1, QUEUED + 1))
    for task in waiters:  # front first: every removal moves everyone behind it up one place
        task.cancel()
    await asyncio.wait_for(asyncio.gather(*waiters, return_exceptions=True), 120)
    assert scheduler.waiting == 0
    # Each burst (20,000 joining, then 20,000 leaving) costs one pass over the queue; the old
    # code rebuilt the whole order for every waiter joining or leaving (2 × QUEUED passes of up
    # to QUEUED waiters each).
    assert scheduler.announce_passes <= 10
    assert len(announced) <= 2 * QUEUED
    scheduler.release(holder)
    assert scheduler.running == 0
    assert await _still_serves(scheduler)


async def _still_serves(scheduler: FairScheduler) -> bool:
    async with scheduler.slot(SlotKey("t", "u", "c")):
        return scheduler.running == 1
