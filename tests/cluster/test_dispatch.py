"""The dispatch streams on the real Redis: the cluster-wide round robin, the tenant's queue
bound, acknowledgement trimming the streams, and the take-over of a dead worker's calls."""

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any, cast

import pytest

from mcp_server.cluster import messages
from mcp_server.cluster.dispatch import Dispatch, DispatchQueueFull
from mcp_server.cluster.handed_off import HandedOffCalls
from mcp_server.runtime.history import HistoryWriter
from mcp_server.runtime.limits import FairScheduler, Limits
from mcp_server.runtime.runner import OperationRunner
from tests.support import wait_until, yield_to_other_tasks


def _start(tenant: int, user: int, label: str) -> messages.OperationStart:
    return messages.OperationStart(
        id=uuid.uuid4(),
        principal={"tenant_id": tenant, "user_id": user},
        tool="echo",
        arguments={"label": label},
        connection_id="c",
        request_id=label,
        progress_token=None,
        queued_at=None,
        is_task=False,
        task_ttl=None,
        listener=None,
    )


def _labels(deliveries: Any) -> list[str]:
    return [d.message["arguments"]["label"] for d in deliveries]


async def test_calls_are_taken_round_robin_across_tenants_then_users(dispatch: Dispatch):
    for n in range(4):
        await dispatch.put(_start(1, 10, f"a{n}"))  # tenant 1 floods
    await dispatch.put(_start(1, 11, "a-other-user"))
    await dispatch.put(_start(2, 20, "b0"))
    # Two workers, one slot each, take in turns: tenant 2 is served at the second take.
    first = await dispatch.take("worker-1", 1)
    second = await dispatch.take("worker-2", 1)
    rest = await dispatch.take("worker-1", 10)
    assert _labels(first) == ["a0"]
    assert _labels(second) == ["b0"]
    # Tenant 1 alone now: its users in turn.
    assert _labels(rest) == ["a-other-user", "a1", "a2", "a3"]
    assert await dispatch.take("worker-2", 10) == []


async def test_a_tenant_past_its_queue_bound_is_refused_and_others_are_not(dispatch: Dispatch):
    dispatch.queue_bound = 2
    await dispatch.put(_start(1, 10, "a0"))
    await dispatch.put(_start(1, 11, "a1"))
    with pytest.raises(DispatchQueueFull, match="at most 2"):
        await dispatch.put(_start(1, 10, "a2"))
    await dispatch.put(_start(2, 20, "b0"))
    # A taken call no longer waits: room for one more.
    taken = await dispatch.take("worker-1", 1)
    assert _labels(taken) == ["a0"]
    await dispatch.put(_start(1, 10, "a3"))


async def test_acknowledged_entries_are_deleted(dispatch: Dispatch):
    await dispatch.put(_start(1, 10, "a0"))
    taken = await dispatch.take("worker-1", 1)
    stream = taken[0].stream
    assert await dispatch.client.xlen(stream) == 1
    await dispatch.done(taken)
    assert await dispatch.client.xlen(stream) == 0
    assert (await dispatch.client.xpending(stream, "workers"))["pending"] == 0


async def test_only_the_calls_of_a_worker_whose_stamp_expired_are_taken_over(dispatch: Dispatch):
    await dispatch.stamp_alive("live", 60)
    await dispatch.stamp_alive("dead", 60)
    await dispatch.put(_start(1, 10, "live-call"))
    await dispatch.put(_start(2, 20, "dead-call"))
    assert _labels(await dispatch.take("live", 1)) == ["live-call"]
    assert _labels(await dispatch.take("dead", 1)) == ["dead-call"]
    assert await dispatch.reclaim("survivor", idle=0, count=10) == []
    await dispatch.forget("dead")
    reclaimed = await dispatch.reclaim("survivor", idle=0, count=10)
    assert _labels(reclaimed) == ["dead-call"]
    assert reclaimed[0].lost_by == "dead"
    # Now the survivor's: nobody takes it over again while the survivor lives.
    await dispatch.stamp_alive("survivor", 60)
    assert await dispatch.reclaim("other", idle=0, count=10) == []


async def test_an_idle_worker_wakes_when_a_call_is_put(dispatch: Dispatch):
    await dispatch.put(_start(1, 10, "a0"))
    # A token is waiting: the wait returns at once rather than after its bound.
    await dispatch.wait_for_work(30)
    assert _labels(await dispatch.take("worker-1", 5)) == ["a0"]


async def test_a_withdrawn_entry_is_never_taken_and_one_a_worker_holds_is_marked(
    dispatch: Dispatch,
):
    taken, waiting = _start(1, 10, "taken"), _start(1, 10, "waiting")
    taken_entry = await dispatch.put(taken)
    waiting_entry = await dispatch.put(waiting)
    assert _labels(await dispatch.take("worker-1", 1)) == ["taken"]
    assert await dispatch.withdraw(waiting_entry, waiting.id, marked_for=60) == "withdrawn"
    assert await dispatch.take("worker-2", 5) == []
    assert await dispatch.withdraw(taken_entry, taken.id, marked_for=60) == "held"
    assert await dispatch.cancelled([taken.id, waiting.id]) == {taken.id}
    # Withdrawn, it no longer counts against the tenant's queue bound.
    dispatch.queue_bound = 1
    await dispatch.put(_start(1, 10, "next"))


async def test_settle_takes_back_what_nobody_took_in_time_or_whose_worker_died(
    dispatch: Dispatch,
):
    await dispatch.stamp_alive("live", 60)
    await dispatch.stamp_alive("dead", 60)
    running = await dispatch.put(_start(1, 10, "running"))
    orphaned = await dispatch.put(_start(2, 20, "orphaned"))
    gone = await dispatch.put(_start(3, 30, "gone"))
    waiting = await dispatch.put(_start(4, 40, "waiting"))
    assert _labels(await dispatch.take("live", 1)) == ["running"]
    assert _labels(await dispatch.take("dead", 1)) == ["orphaned"]
    (done,) = await dispatch.take("live", 1)
    assert _labels([done]) == ["gone"]
    await dispatch.done([done])
    await dispatch.forget("dead")
    entries = [running, orphaned, waiting, gone]
    verdicts = await dispatch.settle([(e, False) for e in entries], unclaimed_after=60)
    assert verdicts == ["running", "orphaned", "waiting", "gone"]
    # Given up on, the orphaned entry is taken back; past the bound, the waiting one waits on
    # while a worker is alive (busy workers take calls late)...
    verdicts = await dispatch.settle([(e, True) for e in entries], unclaimed_after=0)
    assert verdicts == ["running", "abandoned", "waiting", "gone"]
    assert await dispatch.reclaim("survivor", idle=0, count=10) == []
    # ... and is taken back once no worker is.
    await dispatch.forget("live")
    assert await dispatch.settle([(waiting, False)], unclaimed_after=0) == ["unclaimed"]
    assert _labels(await dispatch.reclaim("survivor", idle=0, count=10)) == ["running"]
    assert await dispatch.take("survivor", 10) == []


async def test_a_call_past_the_unclaimed_bound_waits_while_a_worker_is_alive(
    dispatch: Dispatch,
):
    await dispatch.stamp_alive("busy", 60)
    entry = await dispatch.put(_start(1, 10, "backlog"))
    assert await dispatch.settle([(entry, False)], unclaimed_after=0) == ["waiting"]
    # A worker whose stamp is gone (expired: killed, never forgotten) counts no more, and its
    # name leaves the set of workers.
    await dispatch.client.delete(f"{dispatch.prefix}:alive:busy")
    assert await dispatch.settle([(entry, False)], unclaimed_after=0) == ["unclaimed"]
    assert await dispatch.client.smembers(f"{dispatch.prefix}:workers") == set()
    assert await dispatch.take("late", 1) == []


async def test_outcomes_sent_in_one_turn_reach_each_web_process_in_order(dispatch: Dispatch):
    first, second = dispatch.reply_key("web-1"), dispatch.reply_key("web-2")
    sent = await asyncio.gather(
        *(dispatch.reply(first, {"n": n}, ttl=60) for n in range(3)),
        dispatch.reply(second, {"n": 9}, ttl=60),
    )
    assert sent == [True] * 4
    # A list nobody reads (its web process is gone) expires.
    assert 0 < await dispatch.client.pttl(first) <= 60_000
    assert await dispatch.replies(first, wait=1) == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert await dispatch.replies(second, wait=1) == [{"n": 9}]


async def test_the_chunk_lane_has_its_own_queues_and_shares_the_workers_stamps(
    dispatch: Dispatch,
):
    lane = dispatch.chunk_lane(queue_bound=100)
    chunk = await lane.put_message(1, 10, {"type": "chunk.start", "label": "c0"})
    await dispatch.put(_start(1, 10, "a0"))
    # Each lane takes only its own entries, each entry once across workers.
    assert [d.message["label"] for d in await lane.take("worker-1", 5)] == ["c0"]
    assert await lane.take("worker-2", 5) == []
    assert _labels(await dispatch.take("worker-2", 5)) == ["a0"]
    # The chunk's holder is alive by the calls' lane's stamp; once it expires, given up on.
    await dispatch.stamp_alive("worker-1", 60)
    assert await lane.settle_held([(chunk, True)], unclaimed_after=60) == [("running", "worker-1")]
    await dispatch.forget("worker-1")
    assert await lane.settle_held([(chunk, True)], unclaimed_after=60) == [
        ("abandoned", "worker-1")
    ]


async def test_a_chunk_whose_worker_died_is_dropped_once_held_past_the_bound(
    dispatch: Dispatch,
):
    lane = dispatch.chunk_lane(queue_bound=100)
    dead = await lane.put_message(1, 10, {"type": "chunk.start", "label": "dead"})
    (taken_dead,) = await lane.take("worker-dead", 1)
    live = await lane.put_message(1, 10, {"type": "chunk.start", "label": "live"})
    (taken_live,) = await lane.take("worker-live", 1)
    await dispatch.stamp_alive("worker-live", 60)
    # Not held long enough yet: its caller may still take it back.
    assert await lane.drop_orphaned(idle=60, count=16) == 0
    # Held past the bound by a worker that never stamped again: deleted, unrun; a live
    # worker's stays.
    assert await lane.drop_orphaned(idle=0, count=16) == 1
    assert await lane.settle_held([(dead, False), (live, False)], unclaimed_after=60) == [
        ("gone", ""),
        ("running", "worker-live"),
    ]
    await lane.done([taken_live])
    # The lane's user stream, empty now, leaves the streams the rounds look through.
    assert await lane.drop_orphaned(idle=0, count=16) == 0
    assert await dispatch.client.smembers(f"{lane.queues}:streams") == set()
    assert taken_dead.message["label"] == "dead"


async def test_a_finished_entry_is_gone_with_its_outcome_in_the_reply_list(dispatch: Dispatch):
    lane = dispatch.chunk_lane(queue_bound=100)
    entry = await lane.put_message(1, 10, {"type": "chunk.start", "label": "c0"})
    (taken,) = await lane.take("worker-1", 1)
    key = lane.reply_key("caller")
    await lane.finish(taken, key, {"type": "chunk.done", "n": 1}, ttl=60)
    assert await lane.settle([(entry, False)], unclaimed_after=60) == ["gone"]
    assert await lane.replies(key, wait=1) == [{"type": "chunk.done", "n": 1}]


async def test_puts_of_one_turn_go_in_one_call_each_with_its_answer(dispatch: Dispatch):
    dispatch.queue_bound = 3
    calls = 0
    put_script = dispatch._put

    async def counted(**kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return await put_script(**kwargs)

    dispatch._put = counted  # type: ignore[assignment]
    starts = [_start(1, 10 + n % 2, f"a{n}") for n in range(5)] + [_start(2, 20, "b0")]
    answers = await asyncio.gather(*(dispatch.put(s) for s in starts), return_exceptions=True)
    assert calls == 1
    # The bound is exact within the batch: tenant 1's first three in, the rest refused, and
    # another tenant's call is not.
    entries = [a for a in answers if not isinstance(a, BaseException)]
    assert [isinstance(a, DispatchQueueFull) for a in answers] == [False] * 3 + [True] * 2 + [False]
    assert len({(e.stream, e.entry_id) for e in entries}) == 4
    assert [e.tenant for e in entries] == ["1", "1", "1", "2"]
    assert entries[1].stream == dispatch.stream_of(1, 11)
    assert sorted(_labels(await dispatch.take("worker-1", 10))) == ["a0", "a1", "a2", "b0"]
    # Taken: room for the tenant again.
    await dispatch.put(_start(1, 10, "a5"))
    assert calls == 2


async def test_a_take_that_finds_too_few_clears_the_bell_and_the_next_waits_for_a_put(
    dispatch: Dispatch,
):
    await dispatch.put(_start(1, 10, "a0"))
    await dispatch.put(_start(1, 10, "a1"))
    assert _labels(await dispatch.take("worker-1", 5)) == ["a0", "a1"]
    # Its tokens were for calls taken already: a wait now blocks until the next put.
    assert await dispatch.client.llen(f"{dispatch.prefix}:bell") == 0
    waiting = asyncio.create_task(dispatch.take("worker-1", 5, wait=30))
    await yield_to_other_tasks()
    await dispatch.put(_start(2, 20, "b0"))
    assert _labels(await asyncio.wait_for(waiting, 30)) == ["b0"]


class _OnceBroken(Dispatch):
    """Dispatch streams whose first read of the replies fails with a bug's error."""

    broken = True

    async def replies(self, key: str, *, wait: float, count: int = 256) -> list[Any]:
        if self.broken:
            self.broken = False
            raise KeyError("a bug")
        return await super().replies(key, wait=wait, count=count)


async def test_the_reply_loop_logs_an_unexpected_error_and_goes_on(dispatch: Dispatch, caplog):
    broken = _OnceBroken(dispatch.client, prefix=dispatch._base, queue_bound=100)
    runner = OperationRunner(
        scheduler=FairScheduler(Limits()),
        writer=HistoryWriter(interval=3600, threaded=False),
        progress_rate=10,
        persist_interval=1,
    )
    calls = HandedOffCalls(dispatch=broken, runner=runner)
    heard: list[messages.OperationEvent] = []

    class Waiter:
        async def operation_event(self, event: messages.OperationEvent) -> None:
            heard.append(event)

    ended = messages.OperationFinished(id=uuid.uuid4(), status="succeeded", result={}, error="")
    calls.add(cast(Any, SimpleNamespace(operation_id=ended.id)), cast(Any, None), Waiter())
    receiving = asyncio.create_task(calls.receive())
    try:
        assert await dispatch.reply(calls.reply_key, ended.encode(), ttl=60)
        await wait_until(lambda: heard, 30, "the outcome after the loop's error")
    finally:
        calls.stop_receiving()  # as the bus stops it: a cancel lost in BLMPOP cannot hang it
        receiving.cancel()
        await asyncio.gather(receiving, return_exceptions=True)
    assert [event.id for event in heard] == [ended.id]
    assert "receiving the workers' replies failed" in caplog.text


async def test_a_loop_of_blocking_reads_stops_at_every_cancel(dispatch: Dispatch) -> None:
    # redis-py's BLPOP and BLMPOP sometimes return as usual when cancelled near the end of
    # their wait; a worker's take loop or a caller's reading of chunk ends then ran on and
    # their stops hung (a few in a hundred cancels: 240 of them, at points spread over the
    # wait, all must stop the loop).
    lane = dispatch.chunk_lane(queue_bound=10)
    reply_key = lane.reply_key("caller")

    async def reading() -> None:
        while True:
            await lane.take("worker", 2, wait=0.02)
            await lane.replies(reply_key, wait=0.02)

    loop = asyncio.get_running_loop()
    for _ in range(8):
        readers = [asyncio.create_task(reading()) for _ in range(30)]
        for n, reader in enumerate(readers):
            loop.call_later(n * 0.05 / len(readers), reader.cancel)
        _, running = await asyncio.wait(readers, timeout=10)
        for reader in running:
            reader.cancel()
        assert not running, f"{len(running)} of {len(readers)} readers ran on after a cancel"
