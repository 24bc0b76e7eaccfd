"""Chunks through the cluster's bus, in one process: two real OperationBuses on an in-memory
channel layer, `ClusterChunks` on one and a worker's `ChunkTaker` (with a real pool) on the
other. The loss bounds, the messages and cancellation, without starting processes."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
from channels.layers import InMemoryChannelLayer

from mcp_server.cluster import chunk_messages, decoding, messages
from mcp_server.cluster.bus import OperationBus
from mcp_server.cluster.chunks import ChunkTaker, ClusterChunks
from mcp_server.runtime.chunk_pool import LocalChunks
from mcp_server.runtime.context import ToolContext
from mcp_server.runtime.fanout import Chunk, ChunkFailed, ChunkLost, function_name
from mcp_server.runtime.history import HistoryWriter
from mcp_server.runtime.limits import FairScheduler, Limits, SlotKey
from mcp_server.runtime.runner import OperationRunner
from mcp_server.tools.testing import RecordedCall, sample_principal
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
    """A taken chunk is lost after 0.4 s of silence; an untaken one waits its turn (30 s)."""
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


@pytest.fixture(scope="module")
def pool() -> Any:
    chunks = LocalChunks(processes=1, name="unused")
    yield chunks
    chunks.shutdown()


def _chunk(items: list[Any], fn: Any = fanout_items.square, **params: Any) -> Chunk:
    return Chunk("op", 0, function_name(fn), 0, items, params, SlotKey(1, 1, "c"))


async def test_a_fan_out_through_the_bus_runs_on_the_worker_and_comes_back(
    buses: tuple[OperationBus, OperationBus], pool: LocalChunks
) -> None:
    caller, worker = buses
    taker = ChunkTaker(bus=worker, pool=pool, name="worker-1")
    taking = asyncio.create_task(taker.run())
    try:
        recorded = RecordedCall(sample_principal(), "fan")
        operation: Any = recorded
        ctx = ToolContext(operation=operation, events=recorded, chunks=ClusterChunks(bus=caller))
        result = await asyncio.wait_for(
            ctx.fan_out(fanout_items.square, list(range(20)), chunk_size=3, fail_every=7), WAIT
        )
        assert result.values == [None if i % 7 == 0 else i * i for i in range(20)]
        assert result.runners == {"worker-1": 7}
        assert sorted(recorded.item_errors) == sorted(
            (str(i), f"{i} is a multiple of 7") for i in (0, 7, 14)
        )
    finally:
        taking.cancel()
        await asyncio.gather(taking, return_exceptions=True)
        await taker.drain(0)


async def test_a_chunk_nobody_takes_is_lost_after_the_unclaimed_bound(
    buses: tuple[OperationBus, OperationBus], settings
) -> None:
    caller, _ = buses
    settings.MCP_OPERATION_UNCLAIMED_AFTER = 0.3
    with pytest.raises(ChunkLost) as lost:
        await asyncio.wait_for(ClusterChunks(bus=caller).run(_chunk([1])), WAIT)
    assert lost.value.runner == ""


async def test_a_taken_chunk_that_goes_silent_is_lost_naming_its_worker(
    buses: tuple[OperationBus, OperationBus],
) -> None:
    caller, worker = buses
    layer = worker.layer
    assert layer is not None
    cancels: list[decoding.ClusterMessage] = []

    async def cancelled(message: decoding.ClusterMessage) -> None:
        cancels.append(message)

    worker.subscribe(frozenset({chunk_messages.CHUNK_CANCEL}), cancelled)

    async def takes_and_dies() -> None:
        start = chunk_messages.ChunkStart.decode(await layer.receive(chunk_messages.CHUNKS_CHANNEL))
        alive = chunk_messages.ChunkAlive((start.chunk_id,), runner="host:42")
        await layer.send(start.reply_to, alive.encode())

    dying = asyncio.create_task(takes_and_dies())
    with pytest.raises(ChunkLost) as lost:
        await asyncio.wait_for(ClusterChunks(bus=caller).run(_chunk([1])), WAIT)
    await dying
    assert lost.value.runner == "host:42"

    # Wherever it still is, it stops.
    await wait_until(lambda: cancels, WAIT, "the lost chunk's cancel to reach its worker")


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


@pytest.fixture
async def busy_taker(
    buses: tuple[OperationBus, OperationBus], pool: LocalChunks
) -> AsyncIterator[ChunkTaker]:
    """A worker whose room (two chunks: one running in its one pool process, one queued)
    the tests fill, so that a third chunk waits untaken while the first two are reported
    alive by the worker's own heartbeat."""
    _, worker = buses
    await pool.warm()  # a cold pool takes nothing for a while: nothing of the call is heard
    taker = ChunkTaker(bus=worker, pool=pool, name="worker-1")
    taking = asyncio.create_task(taker.run())
    try:
        yield taker
    finally:
        taking.cancel()
        await asyncio.gather(taking, return_exceptions=True)
        await taker.drain(0)


async def test_a_chunk_waiting_behind_its_calls_running_chunks_is_not_lost(
    buses: tuple[OperationBus, OperationBus], busy_taker: ChunkTaker, settings, tmp_path
) -> None:
    caller, _ = buses
    settings.MCP_OPERATION_UNCLAIMED_AFTER = 1.0  # ten of the worker's heartbeats (0.1 s)
    chunks = ClusterChunks(bus=caller)
    # The third waits for the first to end (3 s): three times the unclaimed bound.
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(chunks.run(_marking(n, tmp_path, 3000)) for n in range(3))), WAIT
    )
    assert [outcome.runner for outcome in outcomes] == ["worker-1"] * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0", "1", "2"]


async def test_a_chunk_older_than_the_channel_expiry_is_lost_whatever_its_call_does(
    buses: tuple[OperationBus, OperationBus], busy_taker: ChunkTaker, settings, tmp_path
) -> None:
    caller, _ = buses
    settings.MCP_CHANNEL_EXPIRY = 1
    chunks = ClusterChunks(bus=caller)
    running = [asyncio.ensure_future(chunks.run(_marking(n, tmp_path, 3000))) for n in range(2)]
    try:
        await wait_until(lambda: busy_taker.held == 2, WAIT, "the worker's room to fill")
        with pytest.raises(ChunkLost) as lost:
            await asyncio.wait_for(chunks.run(_marking(2, tmp_path, 1)), WAIT)
        assert lost.value.runner == ""
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


async def test_a_chunk_nobody_waits_for_is_cancelled_at_its_first_sign_of_life(
    buses: tuple[OperationBus, OperationBus],
) -> None:
    caller, worker = buses
    layer = worker.layer
    assert layer is not None and caller.channel is not None
    ClusterChunks(bus=caller)  # listens on the caller's channel
    cancels: list[decoding.ClusterMessage] = []

    async def cancelled(message: decoding.ClusterMessage) -> None:
        cancels.append(message)

    worker.subscribe(frozenset({chunk_messages.CHUNK_CANCEL}), cancelled)
    alive = chunk_messages.ChunkAlive(("stale-chunk",), runner="host:3")
    await layer.send(caller.channel, alive.encode())
    await wait_until(lambda: cancels, WAIT, "the stale chunk's cancel")
    assert cancels == [chunk_messages.ChunkCancel(chunk_ids=("stale-chunk",))]


@pytest.mark.parametrize(
    ("done", "raised"),
    [({"lost": True}, ChunkLost), ({"error": "RuntimeError: bug"}, ChunkFailed)],
)
async def test_a_chunk_that_ends_lost_or_failed_raises_at_once(
    buses: tuple[OperationBus, OperationBus], done: dict[str, Any], raised: type[Exception]
) -> None:
    caller, worker = buses
    layer = worker.layer
    assert layer is not None

    async def answers() -> None:
        start = chunk_messages.ChunkStart.decode(await layer.receive(chunk_messages.CHUNKS_CHANNEL))
        reply = chunk_messages.ChunkDone(start.chunk_id, "host:7", [], [], **done)
        await layer.send(start.reply_to, reply.encode())

    answering = asyncio.create_task(answers())
    with pytest.raises(raised):
        await asyncio.wait_for(ClusterChunks(bus=caller).run(_chunk([1])), WAIT)
    await answering


async def test_a_cancelled_fan_out_stops_the_workers_chunks(
    buses: tuple[OperationBus, OperationBus], pool: LocalChunks, tmp_path
) -> None:
    caller, worker = buses
    taker = ChunkTaker(bus=worker, pool=pool, name="worker-1")
    taking = asyncio.create_task(taker.run())
    try:
        recorded = RecordedCall(sample_principal(), "fan")
        operation: Any = recorded
        ctx = ToolContext(operation=operation, events=recorded, chunks=ClusterChunks(bus=caller))
        call = asyncio.ensure_future(
            ctx.fan_out(
                fanout_items.slow_mark,
                list(range(400)),
                chunk_size=5,
                marks=str(tmp_path),
                item_ms=20,
            )
        )

        await wait_until(lambda: recorded.progress, WAIT, "the fan-out's first progress")
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        # The worker hears of it and stops every chunk it held, queued or running.
        await wait_until(lambda: taker.held == 0, WAIT, "the worker to drop every chunk")
        assert len(list(tmp_path.iterdir())) < 400
    finally:
        taking.cancel()
        await asyncio.gather(taking, return_exceptions=True)
        await taker.drain(0)


async def test_values_the_layer_cannot_carry_fail_the_call_once(
    buses: tuple[OperationBus, OperationBus], pool: LocalChunks
) -> None:
    caller, worker = buses
    taker = ChunkTaker(bus=worker, pool=pool, name="worker-1")
    taking = asyncio.create_task(taker.run())
    try:
        chunk = _chunk([1], fanout_items.undecodable)
        with pytest.raises(ChunkFailed, match="its values could not be sent"):
            await asyncio.wait_for(ClusterChunks(bus=caller).run(chunk), WAIT)
    finally:
        taking.cancel()
        await asyncio.gather(taking, return_exceptions=True)
        await taker.drain(0)


async def test_a_chunk_delivered_twice_runs_once(
    buses: tuple[OperationBus, OperationBus], pool: LocalChunks, tmp_path
) -> None:
    caller, worker = buses
    layer = caller.layer
    assert layer is not None and caller.channel is not None
    claimed: set[str] = set()
    answers: list[bool] = []

    async def claim(chunk_id: str) -> bool:
        answers.append(chunk_id not in claimed)
        claimed.add(chunk_id)
        return answers[-1]

    done: list[decoding.ClusterMessage] = []

    async def replies(message: decoding.ClusterMessage) -> None:
        if isinstance(message, chunk_messages.ChunkDone):
            done.append(message)

    caller.subscribe(chunk_messages.CHUNK_REPLIES, replies)
    taker = ChunkTaker(bus=worker, pool=pool, name="worker-1", claim=claim)
    taking = asyncio.create_task(taker.run())
    try:
        chunk = _chunk([3], fanout_items.slow_mark, marks=str(tmp_path), item_ms=1)
        start = chunk_messages.ChunkStart(
            "twice",
            "op",
            0,
            chunk.function,
            0,
            chunk.items,
            chunk.params,
            (1, 1, "c"),
            caller.channel,
        )
        for _ in range(2):  # as channels-redis may, when several processes read one channel
            await layer.send(chunk_messages.CHUNKS_CHANNEL, start.encode())
        await wait_until(lambda: len(answers) == 2 and done, WAIT, "both takes and one end")
        await wait_until(lambda: taker.held == 0, WAIT, "the chunk to end")
        assert answers == [True, False]
        assert [message.chunk_id for message in done] == ["twice"]  # type: ignore[union-attr]
    finally:
        taking.cancel()
        await asyncio.gather(taking, return_exceptions=True)
        await taker.drain(0)


def test_chunk_messages_decode_what_they_encode_and_refuse_the_malformed() -> None:
    start = chunk_messages.ChunkStart(
        "c1", "op", 2, "m:f", 10, [b"a", 1], {"k": "v"}, (1, 2, "x"), "r"
    )
    assert decoding.decode_message(start.encode()) == start
    done = chunk_messages.ChunkDone("c1", "host:1", [(0, [1, 2])], [(1, "bad")])
    assert decoding.decode_message(done.encode()) == chunk_messages.ChunkDone(
        "c1", "host:1", [(0, [1, 2])], [(1, "bad")]
    )
    alive = chunk_messages.ChunkAlive(("c1", "c2"), runner="host:1")
    assert decoding.decode_message(alive.encode()) == alive
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
