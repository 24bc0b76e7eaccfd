"""Fan-out chunks across the cluster, on the dispatch streams' chunk lane (cluster/dispatch.py).

`ClusterChunks` is the `ChunkExecutor` of a process with workers: each chunk is an entry of
its call's tenant's and user's stream in the chunk lane, so workers pull chunks by their
pools' free slots in the cluster's round robin across tenants, then users (one tenant's
100,000-item call takes its turn with another's). A worker pushes a chunk's end to this
process's reply list and acknowledges its entry in one transaction. A round every sixth of
MCP_OPERATION_LOST_AFTER settles the entries still waiting here, one script call for all:
an entry held by a worker whose stamp expired is taken back and the chunk is lost (ChunkLost,
naming the worker: `fan_out` runs it again, or ends a non-idempotent call interrupted); an
entry not yet taken is taken back (lost, no worker named) once nothing of its call was heard
of for MCP_OPERATION_UNCLAIMED_AFTER (a chunk waiting its turn behind its call's running ones
is not lost); an entry gone for two rounds with no end come is lost too. A chunk cancelled
here is withdrawn from its stream if no worker took it yet (it never runs), else cancelled
on its worker (`chunk.cancel` to every runner, on the channel layer).

`ChunkTaker` is the worker's side: it takes chunks only while it holds fewer than its pool's
slots (two per process: one running, the next queued behind it; pulled by free workers, not
hoarded by one), runs them in its pool
(`chunk_pool.LocalChunks`, the fair order of tenants), and finishes their entries. A stream
entry is delivered to one consumer only, so a chunk runs once unless its caller runs it again.
"""

import asyncio
import contextlib
import dataclasses
import logging
import time
from uuid import uuid4

import msgpack
from django.conf import settings

from mcp_server import metrics
from mcp_server.cluster import chunk_messages, decoding, messages
from mcp_server.cluster.bus import OperationBus
from mcp_server.cluster.dispatch import Delivery, Dispatch, Entry
from mcp_server.cluster.layer import Backoff
from mcp_server.dependencies import REDIS_ERRORS, layer_outage
from mcp_server.runtime.chunk_pool import LocalChunks
from mcp_server.runtime.fanout import Chunk, ChunkFailed, ChunkLost, ChunkOutcome
from mcp_server.runtime.limits import SlotKey

logger = logging.getLogger(__name__)

# How long a worker remembers a cancelled chunk it has not taken yet.
CANCELLED_MEMORY_SECONDS = 120.0
# An entry nobody takes is taken back by the caller's own rule (its call heard of), never by
# the streams' unclaimed bound.
_NEVER_MS = 2**40 / 1000


def chunk_lane(dispatch: Dispatch) -> Dispatch:
    """The chunk lane of `dispatch`: a tenant may have as many chunks waiting as calls, each
    with at most MCP_FANOUT_CHUNKS_IN_FLIGHT out."""
    bound = dispatch.queue_bound * settings.MCP_FANOUT_CHUNKS_IN_FLIGHT
    return dispatch.chunk_lane(queue_bound=bound)


@dataclasses.dataclass(slots=True)
class _Waiting:
    """A chunk sent and not yet done: its end, its entry, and what the rounds saw of it."""

    done: "asyncio.Future[chunk_messages.ChunkDone]"
    operation_id: str
    entry: Entry | None = None
    runner: str = ""
    gone_rounds: int = 0


@dataclasses.dataclass(slots=True)
class _Call:
    """The chunks of one call waiting here, and when anything was last heard of one."""

    waiting: int
    last_heard: float


class ClusterChunks:
    """Runs chunks on the cluster's workers through the chunk lane, watching them until they end."""

    def __init__(self, *, bus: OperationBus, lane: Dispatch, name: str) -> None:
        self.bus = bus
        self.lane = lane
        self.reply_key = lane.reply_key(name)
        lost_after = settings.MCP_OPERATION_LOST_AFTER
        self.round_interval = lost_after / 6
        self.reply_ttl = 2 * lost_after
        self.unclaimed_after = settings.MCP_OPERATION_UNCLAIMED_AFTER
        self._waiting: dict[str, _Waiting] = {}
        self._calls: dict[str, _Call] = {}
        self._watch: asyncio.Task[None] | None = None

    async def run(self, chunk: Chunk) -> ChunkOutcome:
        """Put `chunk` on the chunk lane and wait for its end; cancelled: withdrawn, or
        cancelled on the worker that holds it."""
        chunk_id = uuid4().hex
        now = time.monotonic()
        waiting = _Waiting(asyncio.get_running_loop().create_future(), chunk.operation_id)
        self._waiting[chunk_id] = waiting
        call = self._calls.setdefault(chunk.operation_id, _Call(0, now))
        call.waiting += 1
        start = chunk_messages.ChunkStart(
            chunk_id=chunk_id,
            operation_id=chunk.operation_id,
            index=chunk.index,
            function=chunk.function,
            start=chunk.start,
            items=chunk.items,
            params=chunk.params,
            key=(chunk.key.tenant, chunk.key.user, chunk.key.connection),
            reply_to=self.reply_key,
        )
        # Shielded: a cancel that comes while the put is on its way must still find the
        # entry the put made, to withdraw it (else a worker would run the chunk anyway).
        put = asyncio.ensure_future(
            self.lane.put_message(chunk.key.tenant, chunk.key.user, start.encode())
        )
        try:
            try:
                waiting.entry = await asyncio.shield(put)
            except Exception as exc:
                metrics.channel_layer_error("send")
                logger.warning("could not put chunk %d: %r", chunk.index, exc)
                raise ChunkLost("", why="could not be sent to the workers") from None
            if self._watch is None:
                self._watch = asyncio.create_task(self._watching(), name="chunk-watch")
            done = await asyncio.shield(waiting.done)
        except BaseException:
            # Lost, cancelled or failed: wherever it still is, it stops.
            if waiting.entry is None and not waiting.done.done():
                waiting.entry = await self._landed(put)
            if waiting.entry is not None and not waiting.done.done():
                # Bounded: the call waits for it (fan_out), and a Redis that does not answer
                # must not hold the call's end (the chunk then runs to its end, unheard).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop(chunk_id, waiting.entry), self.reply_ttl / 4)
            raise
        finally:
            self._waiting.pop(chunk_id, None)
            call.waiting -= 1
            if not call.waiting:
                self._calls.pop(chunk.operation_id, None)
            if not self._waiting and self._watch is not None:
                self._watch.cancel()  # nothing waits: its blocking read stops too
                self._watch = None
        if done.lost:
            raise ChunkLost(done.runner)
        if done.error:
            raise ChunkFailed(f"chunk {chunk.index} failed on {done.runner}: {done.error}")
        return ChunkOutcome(values=done.values, errors=done.errors, runner=done.runner)

    async def _landed(self, put: "asyncio.Future[Entry]") -> Entry | None:
        """The entry of a put that was still on its way when its chunk was cancelled, once it
        landed (bounded, as the stop is); None when it failed or did not land in time."""
        done, _ = await asyncio.wait({put}, timeout=self.reply_ttl / 4)
        if not done:
            put.cancel()
            return None
        if put.cancelled() or put.exception() is not None:
            return None
        return put.result()

    async def _stop(self, chunk_id: str, entry: Entry) -> None:
        """Withdraw a chunk nobody took yet; cancel it on the worker holding it."""
        with contextlib.suppress(Exception):
            verdict = await self.lane.withdraw(entry, chunk_id, marked_for=self.reply_ttl)
            if verdict == "withdrawn":
                return
        await self.bus.to_runners(chunk_messages.ChunkCancel(chunk_ids=(chunk_id,)))

    async def _watching(self) -> None:
        """Read the chunks' ends from the reply list; a round every `round_interval`."""
        backoff = Backoff()
        next_round = time.monotonic() + self.round_interval
        last_answer = time.monotonic()
        while True:
            wait = max(0.01, next_round - time.monotonic())
            try:
                for reply in await self.lane.replies(self.reply_key, wait=wait):
                    self._deliver(reply)
                if time.monotonic() >= next_round:
                    next_round = time.monotonic() + self.round_interval
                    await self._settle()
                last_answer = time.monotonic()
                backoff.reset()
            except REDIS_ERRORS as exc:
                layer_outage.down(exc)
                if time.monotonic() - last_answer > self.reply_ttl / 2:
                    self._fail_all(ChunkLost("", why="was lost: the dispatch streams are down"))
                await backoff.wait()
            except Exception:
                logger.exception("watching the fan-out chunks failed; retrying")
                await backoff.wait()

    def _deliver(self, reply: messages.Message) -> None:
        try:
            done = chunk_messages.ChunkDone.decode(reply)
        except messages.MalformedMessage as exc:
            logger.warning("ignored a malformed chunk.done: %s", exc)
            return
        waiting = self._waiting.get(done.chunk_id)
        if waiting is not None and not waiting.done.done():
            self._heard_of(waiting.operation_id)
            waiting.done.set_result(done)

    async def _settle(self) -> None:
        """One round: what became of every entry still waiting here (one script call)."""
        watched = [(k, w) for k, w in self._waiting.items() if w.entry and not w.done.done()]
        if not watched:
            return
        held = await self.lane.settle_held(
            [(w.entry, True) for _, w in watched if w.entry], unclaimed_after=_NEVER_MS
        )
        now = time.monotonic()
        for (chunk_id, waiting), (verdict, holder) in zip(watched, held, strict=True):
            waiting.gone_rounds = waiting.gone_rounds + 1 if verdict == "gone" else 0
            if verdict == "running":
                waiting.runner = holder
                self._heard_of(waiting.operation_id)
            elif verdict == "abandoned":
                self._fail(waiting, ChunkLost(holder))
            elif verdict == "gone" and waiting.gone_rounds >= 2:
                self._fail(waiting, ChunkLost(waiting.runner, why="was lost: its end never came"))
            elif verdict == "waiting":
                call = self._calls.get(waiting.operation_id)
                if call is not None and now - call.last_heard > self.unclaimed_after:
                    assert waiting.entry is not None
                    withdrawn = await self.lane.withdraw(
                        waiting.entry, chunk_id, marked_for=self.reply_ttl
                    )
                    if withdrawn == "withdrawn":
                        self._fail(waiting, ChunkLost(""))

    def _fail(self, waiting: _Waiting, exc: BaseException) -> None:
        if not waiting.done.done():
            waiting.done.set_exception(exc)
            # The waiter's stop has nothing to withdraw: the entry is gone or taken back.
            waiting.entry = None

    def _fail_all(self, exc: BaseException) -> None:
        for waiting in self._waiting.values():
            self._fail(waiting, exc)

    def _heard_of(self, operation_id: str) -> None:
        call = self._calls.get(operation_id)
        if call is not None:
            call.last_heard = time.monotonic()


@dataclasses.dataclass(slots=True)
class _Held:
    delivery: Delivery
    start: chunk_messages.ChunkStart
    task: "asyncio.Task[None] | None" = None


class ChunkTaker:
    """A worker's side of fan-out: takes chunks while it has room, runs them in its pool."""

    def __init__(self, *, bus: OperationBus, lane: Dispatch, pool: LocalChunks, name: str) -> None:
        self.bus = bus
        self.lane = lane
        self.pool = pool
        self.name = name
        self.room = pool.slots
        lost_after = settings.MCP_OPERATION_LOST_AFTER
        self.wait = lost_after / 12
        self.reply_ttl = 2 * lost_after
        self._freed = asyncio.Event()
        self._held: dict[str, _Held] = {}
        self._cancelled: dict[str, float] = {}
        bus.subscribe(frozenset({chunk_messages.CHUNK_CANCEL}), self.handle)

    @property
    def held(self) -> int:
        """How many chunks this worker holds (queued in its pool or running)."""
        return len(self._held)

    async def run(self) -> None:
        """Once the pool's processes run, take chunks until cancelled."""
        await self.pool.warm()
        logger.info(
            "worker %s takes chunks from the dispatch streams %s", self.name, self.lane.queues
        )
        await self._take()

    async def drain(self, grace: float) -> None:
        """Once no longer taking: wait up to `grace` seconds for the held chunks, then
        report the rest lost (their callers run them again, or interrupt their calls)."""
        tasks = [held.task for held in self._held.values() if held.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        for chunk_id, held in list(self._held.items()):
            if held.task is not None:
                held.task.cancel()
                await asyncio.gather(held.task, return_exceptions=True)
            lost = chunk_messages.ChunkDone(chunk_id, self.name, [], [], lost=True)
            # Bounded: a Redis that stays down must not hold the worker's stop (its caller
            # finds the chunk lost with this worker's stamp then).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._finish(held, lost.encode()), self.reply_ttl / 4)

    async def _take(self) -> None:
        """Pull chunks while the pool has room; with none waiting, block on the bell."""
        backoff = Backoff()
        short = False
        while True:
            free = self.room - len(self._held)
            if free <= 0:
                self._freed.clear()
                await self._freed.wait()
                continue
            try:
                deliveries = await self.lane.take(self.name, free, wait=self.wait if short else 0)
            except REDIS_ERRORS as exc:
                metrics.channel_layer_error("receive")
                layer_outage.down(exc)
                await backoff.wait()
                continue
            backoff.reset()
            short = len(deliveries) < free
            for delivery in deliveries:
                await self._begin(delivery)

    async def _begin(self, delivery: Delivery) -> None:
        try:
            start = chunk_messages.ChunkStart.decode(delivery.message)
        except messages.MalformedMessage as exc:
            logger.warning("ignored a malformed chunk.start: %s", exc)
            await self.lane.done([delivery])
            return
        held = _Held(delivery, start)
        if self._cancelled.pop(start.chunk_id, None) is not None:
            logger.info(
                "chunk %d of operation %s cancelled before it started",
                start.index,
                start.operation_id,
            )
            await self._finish(held, None)
            return
        self._held[start.chunk_id] = held
        held.task = asyncio.create_task(self._run(held), name=f"chunk-{start.chunk_id}")

    async def _run(self, held: _Held) -> None:
        start = held.start
        chunk = Chunk(
            operation_id=start.operation_id,
            index=start.index,
            function=start.function,
            start=start.start,
            items=start.items,
            params=start.params,
            key=SlotKey(*start.key),
        )
        done: chunk_messages.ChunkDone | None
        try:
            outcome = await self.pool.run(chunk)
            errors = [(position, _sendable(reason)) for position, reason in outcome.errors]
            done = chunk_messages.ChunkDone(start.chunk_id, self.name, outcome.values, errors)
        except asyncio.CancelledError:
            done = None  # cancelled by its caller, who waits no more
            logger.info("chunk %d of operation %s cancelled", start.index, start.operation_id)
        except ChunkLost:
            done = chunk_messages.ChunkDone(start.chunk_id, self.name, [], [], lost=True)
        except Exception as exc:
            logger.exception("chunk %d of operation %s failed", start.index, start.operation_id)
            error = _sendable(f"{type(exc).__name__}: {exc}")
            done = chunk_messages.ChunkDone(start.chunk_id, self.name, [], [], error=error)
        try:
            await self._finish(held, None if done is None else _encodable(done))
        finally:
            self._held.pop(start.chunk_id, None)
            self._freed.set()

    async def _finish(self, held: _Held, outcome: messages.Message | None) -> None:
        """Push the chunk's end (None: nobody waits) and acknowledge its entry, retrying
        while Redis does not answer (the entry stays this live worker's meanwhile)."""
        backoff = Backoff()
        while True:
            try:
                await self.lane.finish(
                    held.delivery, held.start.reply_to, outcome, ttl=self.reply_ttl
                )
                return
            except REDIS_ERRORS as exc:
                layer_outage.down(exc)
                logger.warning("could not finish chunk %s; retrying", held.start.chunk_id)
                await backoff.wait()

    async def handle(self, message: decoding.ClusterMessage) -> None:
        """`chunk.cancel`: stop held chunks; remember the others (they may still be taken)."""
        if not isinstance(message, chunk_messages.ChunkCancel):
            return
        now = time.monotonic()
        for chunk_id in [k for k, at in self._cancelled.items() if at < now]:
            del self._cancelled[chunk_id]
        for chunk_id in message.chunk_ids:
            held = self._held.get(chunk_id)
            if held is not None and held.task is not None:
                held.task.cancel()
            else:
                self._cancelled[chunk_id] = now + CANCELLED_MEMORY_SECONDS


def _encodable(done: chunk_messages.ChunkDone) -> messages.Message:
    """The end as it travels; values that are not plain data fail the call (not the chunk
    again and again)."""
    encoded = done.encode()
    try:
        msgpack.packb(encoded, use_bin_type=True)
    except Exception:
        error = "its values could not be sent (an item function must return plain data)"
        return chunk_messages.ChunkDone(done.chunk_id, done.runner, [], [], error).encode()
    return encoded


def _sendable(text: str) -> str:
    """`text` with lone surrogates (a name that is not UTF-8) as their escape's text, which
    msgpack can carry (history's rule: protocol/text_escapes.py)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
