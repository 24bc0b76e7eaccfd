"""`ctx.fan_out` on this process's cores: chunks, one progress stream, item errors, cancel,
fairness between tenants, bounds, and lost chunks (re-run only for idempotent tools)."""

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async

from mcp_server import metrics
from mcp_server.models import Operation, OperationStatus
from mcp_server.runtime.chunk_pool import QUEUED_PER_PROCESS, LocalChunks
from mcp_server.runtime.context import ToolContext
from mcp_server.runtime.fanout import (
    Chunk,
    ChunkLost,
    ChunkOutcome,
    ChunksLost,
    FanOutRefused,
    UnknownChunkFunction,
    function_name,
    run_items,
)
from mcp_server.runtime.invoke import call_tool
from mcp_server.runtime.limits import FairScheduler, Limits, SlotKey
from mcp_server.runtime.runner import CallRequest, OperationRunner
from mcp_server.tools.registry import ToolRegistry, tool
from mcp_server.tools.testing import RecordedCall, sample_principal
from tests.runtime import fanout_items
from tests.support import Wire, make_principal, wait_until, yield_to_other_tasks

WAIT = 30.0


@pytest.fixture(scope="module")
def pool() -> Iterator[LocalChunks]:
    """Two pool processes, for the module (they take a moment to start)."""
    chunks = LocalChunks(processes=2, name="test-pool")
    yield chunks
    chunks.shutdown()


def _context(
    chunks: Any, *, tenant: int = 1, idempotent: bool = False
) -> tuple[RecordedCall, ToolContext]:
    recorded = RecordedCall(sample_principal(tenant_id=tenant, user_id=tenant), "fan")
    operation: Any = recorded
    context = ToolContext(
        operation=operation, events=recorded, chunks=chunks, idempotent=idempotent
    )
    return recorded, context


async def test_chunks_add_up_to_one_progress_stream_with_values_in_order_and_item_errors(
    pool: LocalChunks,
) -> None:
    recorded, ctx = _context(pool)
    result = await ctx.fan_out(fanout_items.square, list(range(1, 51)), chunk_size=7, fail_every=10)
    assert result.chunks == 8
    assert result.values == [None if i % 10 == 0 else i * i for i in range(1, 51)]
    assert (result.succeeded, result.failed) == (45, 5)
    assert sorted(recorded.item_errors) == sorted(
        (str(i), f"{i} is a multiple of 10") for i in range(10, 51, 10)
    )
    done = [report.done for report in recorded.progress]
    assert done == sorted(done)
    assert done[-1] == 50
    assert {report.total for report in recorded.progress} == {50}
    # Each report adds a whole chunk: seven items, and the last chunk's one.
    steps = {b - a for a, b in zip([0, *done], done, strict=False) if b != a}
    assert steps <= {7, 1}
    assert recorded.progress[-1].message == "50 items in 8 chunks, run by test-pool (8)"


async def test_chunks_run_in_parallel_in_the_pools_processes(pool: LocalChunks, tmp_path) -> None:
    # Each item waits for the test's release (fanout_items.gated), and a process runs one item
    # at a time: two started with none finished is two processes running at once (timed items
    # let one process take them all on a busy machine).
    gate = socket.socket(socket.AF_UNIX)
    gate.bind(str(tmp_path / "release"))
    gate.listen(4)
    gate.settimeout(WAIT)
    _, ctx = _context(pool)
    try:
        call = asyncio.ensure_future(
            ctx.fan_out(fanout_items.gated, list(range(4)), chunk_size=1, marks=str(tmp_path))
        )
        await wait_until(
            lambda: len(list(tmp_path.glob("started-*"))) == 2, WAIT, "two items at once"
        )
        assert not list(tmp_path.glob("finished-*"))
        for _ in range(4):
            held, _ = await asyncio.to_thread(gate.accept)
            with held:
                held.sendall(b"1")  # release one item
        result = await asyncio.wait_for(call, WAIT)
    finally:
        gate.close()
    assert sorted(result.values) == [0, 1, 2, 3]


async def test_cancel_stops_every_chunk_queued_and_running(pool: LocalChunks, tmp_path) -> None:
    recorded, ctx = _context(pool)
    call = asyncio.ensure_future(
        ctx.fan_out(
            fanout_items.slow_mark,
            list(range(400)),
            chunk_size=10,
            marks=str(tmp_path),
            item_ms=20,
        )
    )
    await wait_until(lambda: recorded.progress, WAIT, "a first chunk")
    done_at_cancel = recorded.progress[-1].done
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    ran = len(list(tmp_path.iterdir()))
    # Chunks waiting for a slot never started; those in the pool stopped at their next item:
    # per process at most the chunk it ran and the one queued behind it, beyond what was
    # reported.
    assert done_at_cancel <= ran <= done_at_cancel + 2 * 2 * 10 < 400
    # It returned once every chunk had stopped: the pool's processes run nothing of it now.
    await ctx.fan_out(fanout_items.square, [1, 2], chunk_size=1)
    assert len(list(tmp_path.iterdir())) == ran


async def test_a_chunk_cancelled_again_while_it_stops_keeps_its_slot_until_it_has(
    tmp_path,
) -> None:
    single = LocalChunks(processes=1, name="one")
    gate = socket.socket(socket.AF_UNIX)  # the chunk's item waits on it (fanout_items.gated)
    gate.bind(str(tmp_path / "release"))
    gate.listen(1)
    gate.settimeout(WAIT)
    try:
        chunk = Chunk(
            "op",
            0,
            function_name(fanout_items.gated),
            0,
            [0, 1],
            {"marks": str(tmp_path)},
            SlotKey(1, 1, "c"),
        )
        run = asyncio.ensure_future(single.run(chunk))
        started = tmp_path / "started-0"
        await wait_until(started.exists, WAIT, "the chunk's first item to start")
        run.cancel()
        await yield_to_other_tasks()
        # A worker's round cancels the call again at each read of its cancel mark.
        run.cancel()
        await yield_to_other_tasks()
        assert not run.done(), "the chunk gave its slot back while its process still ran it"
        held, _ = gate.accept()
        with held:
            held.sendall(b"1")  # release the item
        with pytest.raises(asyncio.CancelledError):
            await run
        assert (tmp_path / "finished-0").exists()
        # Its stop flag held (the slot was not handed on and reset): the next item never ran.
        assert not (tmp_path / "started-1").exists()
    finally:
        gate.close()
        single.shutdown()


async def test_one_tenants_long_call_does_not_hold_the_pool_while_another_waits(
    tmp_path,
) -> None:
    single = LocalChunks(processes=1, name="one")
    try:
        big_seen, big = _context(single, tenant=1)
        _, small = _context(single, tenant=2)
        marks: dict[str, Any] = {"marks": str(tmp_path), "item_ms": 100}
        long_call = asyncio.ensure_future(
            big.fan_out(fanout_items.slow_mark, list(range(8)), chunk_size=1, **marks)
        )
        await wait_until(lambda: big_seen.progress, WAIT, "the long call's first chunk")
        done_before = big_seen.progress[-1].done
        await small.fan_out(fanout_items.slow_mark, [100], chunk_size=1, **marks)
        # The other tenant's chunk had the next turn, not the eighth: it waited at most for
        # what the pool held when it came (a chunk running, one queued) and one that ended
        # unreported meanwhile.
        assert big_seen.progress[-1].done <= done_before + QUEUED_PER_PROCESS + 1
        await long_call
    finally:
        single.shutdown()


async def test_bounds_are_refused_before_any_chunk_runs(pool: LocalChunks, settings) -> None:
    recorded, ctx = _context(pool)
    for size in (0, settings.MCP_FANOUT_MAX_CHUNK_SIZE + 1):
        with pytest.raises(FanOutRefused, match="chunk_size must be between 1 and"):
            await ctx.fan_out(fanout_items.square, [1, 2], chunk_size=size)
    settings.MCP_FANOUT_MAX_ITEMS = 5
    with pytest.raises(FanOutRefused, match="MCP_FANOUT_MAX_ITEMS=5"):
        await ctx.fan_out(fanout_items.square, list(range(6)))
    with pytest.raises(UnknownChunkFunction):
        await ctx.fan_out(fanout_items.undeclared, [1])
    assert recorded.progress == []


async def test_an_item_function_that_raises_fails_the_call(pool: LocalChunks) -> None:
    _, ctx = _context(pool)
    with pytest.raises(RuntimeError, match="bug at"):
        await ctx.fan_out(fanout_items.broken, [1, 2, 3])


def _chunks_counted(outcome: str) -> float:
    metrics.flush()  # counted on this loop, written to the metric at a flush
    return metrics.FANOUT_CHUNKS.labels(outcome)._value.get()


async def test_a_pool_process_that_dies_loses_its_chunk_which_runs_again_in_a_new_pool(
    tmp_path,
) -> None:
    single = LocalChunks(processes=1, name="crashy")
    try:
        _, ctx = _context(single, idempotent=True)
        result = await ctx.fan_out(
            fanout_items.dies_once, [1, 2, 3], chunk_size=3, marks=str(tmp_path)
        )
        assert result.values == [1, 2, 3]
        assert result.rerun == (0,)
        # The slot of the broken pool came back: the pool goes on running chunks.
        again = await ctx.fan_out(fanout_items.square, [4], chunk_size=1)
        assert again.values == [16]
        _, strict = _context(single, idempotent=False)
        (tmp_path / "died").unlink()
        with pytest.raises(ChunksLost, match="a pool process of crashy died"):
            await strict.fan_out(fanout_items.dies_once, [1], marks=str(tmp_path))
    finally:
        single.shutdown()


class ScriptedChunks:
    """A ChunkExecutor that runs items here and loses the chunks it is told to."""

    def __init__(self, *, lose: dict[int, int] | None = None) -> None:
        self.lose = dict(lose or {})  # chunk index -> how many times it is lost
        self.running = 0
        self.most_at_once = 0
        self.runs: list[int] = []

    async def run(self, chunk: Chunk) -> ChunkOutcome:
        self.runs.append(chunk.index)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await yield_to_other_tasks()  # as a chunk sent away would: the others start meanwhile
            if self.lose.get(chunk.index, 0) > 0:
                self.lose[chunk.index] -= 1
                raise ChunkLost("worker-a")
            values = [(i, item) for i, item in enumerate(chunk.items)]
            return ChunkOutcome(values=values, errors=[], runner="worker-b")
        finally:
            self.running -= 1


class SlowToStopChunks:
    """A ChunkExecutor whose chunks never end by themselves and take a round trip to stop,
    as a chunk held by a worker does (its cancel goes out on the channel layer)."""

    def __init__(self) -> None:
        self.started = 0
        self.stopping = 0
        self.stopped = 0
        self.let_stop = asyncio.Event()

    async def run(self, chunk: Chunk) -> ChunkOutcome:
        self.started += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.stopping += 1
            await self.let_stop.wait()
            self.stopped += 1
            raise
        raise AssertionError("unreachable")


async def test_a_call_cancelled_again_while_its_chunks_stop_still_stops_every_one(
    settings,
) -> None:
    settings.MCP_FANOUT_CHUNKS_IN_FLIGHT = 4
    executor = SlowToStopChunks()
    _, ctx = _context(executor)
    call = asyncio.ensure_future(ctx.fan_out(fanout_items.square, list(range(40)), chunk_size=2))
    await wait_until(lambda: executor.started == 4, WAIT, "four chunks out")
    call.cancel()
    await wait_until(lambda: executor.stopping == 4, WAIT, "every chunk stopping")
    # A worker's round cancels the call again at each read of its cancel mark.
    call.cancel()
    await yield_to_other_tasks()
    assert not call.done(), "the call ended before its chunks had stopped"
    executor.let_stop.set()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert executor.stopped == 4


async def test_chunks_in_flight_per_call_are_bounded(settings) -> None:
    settings.MCP_FANOUT_CHUNKS_IN_FLIGHT = 3
    executor = ScriptedChunks()
    _, ctx = _context(executor)
    result = await ctx.fan_out(fanout_items.square, list(range(40)), chunk_size=2)
    assert result.values == list(range(40))
    assert executor.most_at_once == 3


async def test_a_lost_chunk_of_an_idempotent_tool_runs_again_and_history_says_so() -> None:
    rerun_before = _chunks_counted("rerun")
    executor = ScriptedChunks(lose={2: 1})
    recorded, ctx = _context(executor, idempotent=True)
    result = await ctx.fan_out(fanout_items.square, list(range(10)), chunk_size=3)
    assert result.values == list(range(10))
    assert result.rerun == (2,)
    assert sorted(executor.runs) == [0, 1, 2, 2, 3]
    assert recorded.progress[-1].message == (
        "10 items in 4 chunks, run by worker-b (4); re-run after their worker was lost: chunks 2"
    )
    assert _chunks_counted("rerun") == rerun_before + 1


async def test_a_lost_chunk_of_another_tool_ends_the_fan_out(settings) -> None:
    _, ctx = _context(ScriptedChunks(lose={1: 1}), idempotent=False)
    with pytest.raises(ChunksLost, match="chunk 1 of 4 was lost with its worker worker-a"):
        await ctx.fan_out(fanout_items.square, list(range(10)), chunk_size=3)
    settings.MCP_FANOUT_CHUNK_ATTEMPTS = 2
    always = ScriptedChunks(lose={0: 99})
    _, ctx = _context(always, idempotent=True)
    with pytest.raises(ChunksLost, match="lost 2 times"):
        await ctx.fan_out(fanout_items.square, [1], chunk_size=1)
    assert always.runs == [0, 0]


tools = ToolRegistry()


@tool(into=tools, duration="long")
async def fan_squares(n: int, ctx: ToolContext) -> dict:
    """Square 0..n-1 in chunks of 2."""
    result = await ctx.fan_out(fanout_items.square, list(range(n)), chunk_size=2)
    return {"sum": sum(result.values)}


@pytest.mark.django_db(transaction=True)
async def test_a_call_whose_chunk_is_lost_is_interrupted(writer) -> None:
    runner = OperationRunner(
        scheduler=FairScheduler(Limits()),
        writer=writer,
        progress_rate=10,
        persist_interval=0.05,
    )
    runner.chunks = ScriptedChunks(lose={1: 1})
    principal = await database_sync_to_async(make_principal)("acme", "ann")
    found = tools.get("fan_squares")
    assert found is not None
    request = CallRequest(
        principal=principal,
        tool=found,
        arguments={"n": 8},
        connection_id="c",
        request_id=1,
        progress_token=None,
    )
    wire = Wire()
    result = await runner.call(request, send=wire.send, events=wire)
    assert result["isError"] is True
    text = result["content"][0]["text"]
    assert text.startswith("interrupted: its process stopped responding: chunk 1 of 4 was lost")
    await database_sync_to_async(writer.flush)()
    row = await database_sync_to_async(Operation.objects.get)()
    assert row.status == OperationStatus.INTERRUPTED
    assert row.error == text


def test_item_functions_run_by_name() -> None:
    name = function_name(fanout_items.square)
    assert name == "tests.runtime.fanout_items:square"
    outcome = run_items(name, [1, 2, 3], {"fail_every": 2}, lambda: False)
    assert outcome.values == [(0, 1), (2, 9)]
    assert outcome.errors == [(1, "2 is a multiple of 2")]
    stopped = run_items(name, [1, 2, 3], {}, lambda: True)
    assert stopped.values == []


@tool(into=tools, duration="long")
async def fan_too_many(n: int, ctx: ToolContext) -> dict:
    """Fan out more items than the bound lets it."""
    await ctx.fan_out(fanout_items.square, list(range(n)))
    return {}


async def test_a_refused_fan_out_is_a_tool_error_naming_the_bound(settings) -> None:
    settings.MCP_FANOUT_MAX_ITEMS = 3
    found = tools.get("fan_too_many")
    assert found is not None
    context = _context(ScriptedChunks())[1]
    result = await call_tool(found, {"n": 4}, context)
    assert result["isError"] is True
    assert result["content"][0]["text"] == (
        "4 items are more than one call may fan out (MCP_FANOUT_MAX_ITEMS=3)"
    )
