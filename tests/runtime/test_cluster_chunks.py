"""Chunks through the dispatch streams' chunk lane on the real Redis, in one process: two
real OperationBuses on an in-memory channel layer (for the cancels), `ClusterChunks` on one
and a worker's `ChunkTaker` (with a real pool) on the other. The loss bounds, the ends and
cancellation, without starting processes."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
from channels.layers import InMemoryChannelLayer

from mcp_server.cluster import chunk_messages, decoding, messages
from mcp_server.cluster.bus import OperationBus
from mcp_server.cluster.chunks import ChunkTaker, ClusterChunks
from mcp_server.cluster.dispatch import Dispatch
from mcp_server.runtime.chunk_pool import LocalChunks
from mcp_server.runtime.context import ToolContext
from mcp_server.runtime.fanout import Chunk, ChunkFailed, ChunkLost, function_name
from mcp_server.runtime.history import HistoryWriter
from mcp_server.runtime.limits import FairScheduler, Limits, SlotKey
from mcp_server.runtime.runner import OperationRunner
from mcp_server.tools.testing import RecordedCall, sample_principal
from tests.e2e.support import read_until
from tests.runtime import fanout_items
from tests.support import wait_until

WAIT = 30.0


class PackingLayer(InMemoryChannelLayer):
    """An in-memory layer that serialises what it sends as channels-redis does (msgpack)."""

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        msgpack.packb(message)
        await super().send(channel, message)


def _bus(layer: InMemoryChannelLayer, writer: HistoryWriter) -> OperationBus:
    runner = OperationRunner(
        scheduler=FairScheduler(Limits()), writer=writer, progress_rate=10, persist_interval=1
    )
    return OperationBus(runner=runner, layer=layer, web=False)


@pytest.fixture
def bounds(settings) -> None:
    """Rounds every 0.1 s; an untaken chunk waits its turn (30 s)."""
    settings.MCP_OPERATION_LOST_AFTER = 0.6
    settings.MCP_OPERATION_UNCLAIMED_AFTER = WAIT


@pytest.fixture
async def buses(bounds: None) -> AsyncIterator[tuple[OperationBus, OperationBus]]:
    """The calling process's bus and a worker's, started."""
    layer = PackingLayer()
    writer = HistoryWriter(interval=3600)
    caller, worker = _bus(layer, writer), _bus(layer, writer)
    await caller.start()
    await worker.start()
    try:
        yield caller, worker
    finally:
        await caller.stop()
        await worker.stop()
        writer.stop()


@pytest.fixture
def lane(dispatch: Dispatch) -> Dispatch:
    """The chunk lane of this test's dispatch streams."""
    return dispatch.chunk_lane(queue_bound=100)


@pytest.fixture
def caller_chunks(buses: tuple[OperationBus, OperationBus], lane: Dispatch) -> ClusterChunks:
    """The calling process's executor of chunks."""
    return ClusterChunks(bus=buses[0], lane=lane, name="caller-1")


@pytest.fixture(scope="module")
def pool() -> Any:
    chunks = LocalChunks(processes=1, name="unused")
    yield chunks
    chunks.shutdown()


@pytest.fixture
async def taker(
    buses: tuple[OperationBus, OperationBus], lane: Dispatch, pool: LocalChunks
) -> AsyncIterator[ChunkTaker]:
    """A live worker (stamped as its process's rounds do) taking chunks, its pool warm."""
    await lane.stamp_alive("worker-1", 60)
    await pool.warm()
    taker = ChunkTaker(bus=buses[1], lane=lane, pool=pool, name="worker-1")
    taking = asyncio.create_task(taker.run())
    try:
        yield taker
    finally:
        taking.cancel()
        await asyncio.gather(taking, return_exceptions=True)
        await taker.drain(0)


def _chunk(items: list[Any], fn: Any = fanout_items.square, **params: Any) -> Chunk:
    return Chunk("op", 0, function_name(fn), 0, items, params, SlotKey(1, 1, "c"))


def _context(chunks: ClusterChunks) -> tuple[ToolContext, RecordedCall]:
    recorded = RecordedCall(sample_principal(), "fan")
    operation: Any = recorded
    return ToolContext(operation=operation, events=recorded, chunks=chunks), recorded


async def test_a_fan_out_through_the_chunk_lane_runs_on_the_worker_and_comes_back(
    caller_chunks: ClusterChunks, taker: ChunkTaker, lane: Dispatch
) -> None:
    ctx, recorded = _context(caller_chunks)
    result = await asyncio.wait_for(
        ctx.fan_out(fanout_items.square, list(range(20)), chunk_size=3, fail_every=7), WAIT
    )
    assert result.values == [None if i % 7 == 0 else i * i for i in range(20)]
    assert result.runners == {"worker-1": 7}
    assert sorted(recorded.item_errors) == sorted(
        (str(i), f"{i} is a multiple of 7") for i in (0, 7, 14)
    )
    # Every entry was acknowledged with its end: the stream holds nothing.
    assert await lane.client.xlen(lane.stream_of(1, 1)) == 0


async def test_a_chunk_nobody_takes_is_lost_after_the_unclaimed_bound(
    caller_chunks: ClusterChunks, lane: Dispatch, settings
) -> None:
    caller_chunks.unclaimed_after = 0.3
    with pytest.raises(ChunkLost) as lost:
        await asyncio.wait_for(caller_chunks.run(_chunk([1])), WAIT)
    assert lost.value.runner == ""
    # Taken back: no worker that comes later runs it.
    assert await lane.take("late-worker", 5) == []


async def test_a_taken_chunk_whose_worker_stops_stamping_is_lost_naming_its_worker(
    caller_chunks: ClusterChunks, lane: Dispatch
) -> None:
    async def takes_and_dies() -> None:
        await lane.stamp_alive("host:42", 0.3)  # its last stamp: it dies with the chunk
        while not await lane.take("host:42", 1, wait=0.1):
            pass

    dying = asyncio.create_task(takes_and_dies())
    with pytest.raises(ChunkLost) as lost:
        await asyncio.wait_for(caller_chunks.run(_chunk([1])), WAIT)
    await dying
    assert lost.value.runner == "host:42"
    # Taken back from the dead worker's pending list: nothing is left to reclaim.
    assert await lane.reclaim("survivor", idle=0, count=10) == []


def _marking(index: int, marks: Any, item_ms: int) -> Chunk:
    """Chunk `index` of one call "op": one item, marked in `marks` after `item_ms`."""
    params = {"marks": str(marks), "item_ms": item_ms}
    return Chunk(
        "op",
        index,
        function_name(fanout_items.slow_mark),
        index,
        [index],
        params,
        SlotKey(1, 1, "c"),
    )


async def test_a_chunk_waiting_behind_its_calls_running_chunks_is_not_lost(
    caller_chunks: ClusterChunks, taker: ChunkTaker, tmp_path
) -> None:
    # The worker holds two (one running in its one pool process, one queued): the third
    # waits in the stream for the first to end (3 s), three times the unclaimed bound, while
    # the rounds hear the first two running.
    caller_chunks.unclaimed_after = 1.0
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(caller_chunks.run(_marking(n, tmp_path, 3000)) for n in range(3))), WAIT
    )
    assert [outcome.runner for outcome in outcomes] == ["worker-1"] * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0", "1", "2"]


async def test_a_chunk_cancelled_before_any_worker_takes_it_never_runs(
    caller_chunks: ClusterChunks, lane: Dispatch
) -> None:
    running = asyncio.ensure_future(caller_chunks.run(_chunk([1])))
    await wait_until(
        lambda: any(w.entry for w in caller_chunks._waiting.values()), WAIT, "the chunk's put"
    )
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert await lane.take("worker-1", 5) == []  # withdrawn from its stream


@pytest.mark.parametrize(
    ("done", "raised"),
    [({"lost": True}, ChunkLost), ({"error": "RuntimeError: bug"}, ChunkFailed)],
)
async def test_a_chunk_that_ends_lost_or_failed_raises_at_once(
    caller_chunks: ClusterChunks, lane: Dispatch, done: dict[str, Any], raised: type[Exception]
) -> None:
    async def answers() -> None:
        await lane.stamp_alive("host:7", 60)
        while not (taken := await lane.take("host:7", 1, wait=0.1)):
            pass
        start = chunk_messages.ChunkStart.decode(taken[0].message)
        reply = chunk_messages.ChunkDone(start.chunk_id, "host:7", [], [], **done)
        await lane.finish(taken[0], start.reply_to, reply.encode(), ttl=60)

    answering = asyncio.create_task(answers())
    with pytest.raises(raised):
        await asyncio.wait_for(caller_chunks.run(_chunk([1])), WAIT)
    await answering


async def test_a_chunk_acknowledged_without_its_end_is_lost(
    caller_chunks: ClusterChunks, lane: Dispatch
) -> None:
    async def drops_the_end() -> None:
        await lane.stamp_alive("host:8", 60)
        while not (taken := await lane.take("host:8", 1, wait=0.1)):
            pass
        await lane.done(taken)

    dropping = asyncio.create_task(drops_the_end())
    with pytest.raises(ChunkLost, match="its end never came"):
        await asyncio.wait_for(caller_chunks.run(_chunk([1])), WAIT)
    await dropping


class _HeldPuts(Dispatch):
    """The chunk lane, its queued puts sent to Redis only once `release` is set."""

    release: asyncio.Event
    reached: asyncio.Event

    async def _send_puts(self) -> None:
        self.reached.set()
        await self.release.wait()
        await super()._send_puts()


async def test_a_chunk_cancelled_while_its_put_is_on_its_way_is_withdrawn_once_it_lands(
    buses: tuple[OperationBus, OperationBus], lane: Dispatch
) -> None:
    held = _HeldPuts(lane.client, prefix=lane._base, queue_bound=100, lane="chunks")
    held.release, held.reached = asyncio.Event(), asyncio.Event()
    chunks = ClusterChunks(bus=buses[0], lane=held, name="caller-1")
    running = asyncio.ensure_future(chunks.run(_chunk([1])))
    await asyncio.wait_for(held.reached.wait(), WAIT)
    running.cancel()  # run() wakes to it before the held put is sent (FIFO callbacks)
    held.release.set()  # so the put lands after the cancel
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(running, WAIT)
    await asyncio.wait_for(asyncio.gather(*held._sending), WAIT)  # the put has landed
    assert await lane.client.xlen(lane.stream_of(1, 1)) == 0  # withdrawn, not left to run
    assert await lane.take("worker-1", 5) == []


async def test_a_cancelled_fan_out_stops_the_workers_chunks(
    caller_chunks: ClusterChunks, taker: ChunkTaker, lane: Dispatch, tmp_path
) -> None:
    ctx, recorded = _context(caller_chunks)
    call = asyncio.ensure_future(
        ctx.fan_out(
            fanout_items.slow_mark, list(range(400)), chunk_size=5, marks=str(tmp_path), item_ms=20
        )
    )
    await wait_until(lambda: recorded.progress, WAIT, "the fan-out's first progress")
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    # The worker hears of it and stops every chunk it held, queued or running; those it had
    # not taken are withdrawn.
    await wait_until(lambda: taker.held == 0, WAIT, "the worker to drop every chunk")
    assert len(list(tmp_path.iterdir())) < 400
    stream = lane.stream_of(1, 1)
    await read_until(lambda: lane.client.xlen(stream), lambda n: n == 0, WAIT, "every entry gone")


async def test_values_msgpack_cannot_carry_fail_the_call_once(
    caller_chunks: ClusterChunks, taker: ChunkTaker
) -> None:
    chunk = _chunk([1], fanout_items.undecodable)
    with pytest.raises(ChunkFailed, match="its values could not be sent"):
        await asyncio.wait_for(caller_chunks.run(chunk), WAIT)


async def test_two_workers_take_each_chunk_once(
    buses: tuple[OperationBus, OperationBus],
    caller_chunks: ClusterChunks,
    taker: ChunkTaker,
    lane: Dispatch,
    tmp_path,
) -> None:
    second_pool = LocalChunks(processes=1, name="unused-2")
    await lane.stamp_alive("worker-2", 60)
    second = ChunkTaker(bus=buses[1], lane=lane, pool=second_pool, name="worker-2")
    taking = asyncio.create_task(second.run())
    try:
        ctx, _ = _context(caller_chunks)
        result = await asyncio.wait_for(
            ctx.fan_out(
                fanout_items.slow_mark,
                list(range(40)),
                chunk_size=2,
                marks=str(tmp_path),
                item_ms=5,
            ),
            WAIT,
        )
    finally:
        taking.cancel()
        await asyncio.gather(taking, return_exceptions=True)
        await second.drain(0)
        second_pool.shutdown()
    assert sum(result.runners.values()) == 20  # each chunk ran once, wherever
    assert set(result.runners) <= {"worker-1", "worker-2"}
    assert sorted(int(p.name) for p in tmp_path.iterdir()) == list(range(40))


def test_chunk_messages_decode_what_they_encode_and_refuse_the_malformed() -> None:
    start = chunk_messages.ChunkStart(
        "c1", "op", 2, "m:f", 10, [b"a", 1], {"k": "v"}, (1, 2, "x"), "r"
    )
    assert decoding.decode_message(start.encode()) == start
    done = chunk_messages.ChunkDone("c1", "host:1", [(0, [1, 2])], [(1, "bad")])
    assert decoding.decode_message(done.encode()) == chunk_messages.ChunkDone(
        "c1", "host:1", [(0, [1, 2])], [(1, "bad")]
    )
    cancel = chunk_messages.ChunkCancel(("c1",))
    assert decoding.decode_message(cancel.encode()) == cancel
    for malformed in (
        {**start.encode(), "items": "x"},
        {**start.encode(), "key": [1, 2]},
        {**start.encode(), "reply_to": ""},
        {**done.encode(), "values": [[0]]},
        {**cancel.encode(), "chunk_ids": [1]},
    ):
        with pytest.raises(messages.MalformedMessage):
            decoding.decode_message(malformed)
