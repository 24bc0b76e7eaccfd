"""Fan-out chunks across the cluster: sent to any free worker, watched until they end.

`ClusterChunks` is the `ChunkExecutor` of a process with workers: each chunk goes to
CHUNKS_CHANNEL as a `chunk.start`, and its end comes back to this process's channel as a
`chunk.done`. The worker that took it says so at once and every heartbeat round
(`chunk.alive`); a chunk taken and then silent for the operations' bound (MCP_OPERATION_LOST_AFTER
minus two rounds) is lost (ChunkLost: `fan_out` runs it again, or ends a non-idempotent call
interrupted). So is a chunk not yet taken once nothing of its call was heard of for
MCP_OPERATION_UNCLAIMED_AFTER (a chunk waiting its turn behind its call's running chunks is
not lost), or once its message outlived the channel layer's expiry (MCP_CHANNEL_EXPIRY: no
worker can take it any more). A cancelled chunk is cancelled wherever it is (`chunk.cancel` to
every runner), and so is a chunk a worker says it holds that nobody here waits for (its call
ended while it waited in the channel).

`ChunkTaker` is the worker's side: it takes a chunk only while it holds fewer than twice its
pool's processes (so chunks are pulled by free workers, not hoarded by one), runs them in its
pool (`chunk_pool.LocalChunks`, the fair order of tenants), and reports their life and end.
"""

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from uuid import uuid4

from django.conf import settings

from mcp_server import metrics
from mcp_server.cluster import chunk_messages, decoding, messages
from mcp_server.cluster.bus import OperationBus
from mcp_server.cluster.layer import receive_riding_out
from mcp_server.cluster.rounds import every
from mcp_server.runtime.chunk_pool import LocalChunks
from mcp_server.runtime.fanout import Chunk, ChunkFailed, ChunkLost, ChunkOutcome
from mcp_server.runtime.limits import SlotKey

logger = logging.getLogger(__name__)

# Chunks a worker holds (queued in its pool or running) per pool process, at most.
HELD_PER_PROCESS = 2
# How long a worker remembers a cancelled chunk it has not received yet.
CANCELLED_MEMORY_SECONDS = 120.0


@dataclasses.dataclass(slots=True)
class _Waiting:
    """A chunk sent and not yet done: its end, and when anyone last heard of it."""

    done: "asyncio.Future[chunk_messages.ChunkDone]"
    operation_id: str
    sent: float
    last_seen: float
    runner: str = ""
    taken: bool = False


@dataclasses.dataclass(slots=True)
class _Call:
    """The chunks of one call waiting here, and when a worker last said anything of one."""

    waiting: int
    last_heard: float


class ClusterChunks:
    """Runs chunks on the cluster's workers and watches them until they end."""

    def __init__(self, *, bus: OperationBus) -> None:
        self.bus = bus
        lost_after = settings.MCP_OPERATION_LOST_AFTER
        self.beat_interval = lost_after / 6
        # The operations' bound: two rounds short, so a client hears within LOST_AFTER.
        self.silent_for = lost_after - 2 * self.beat_interval
        self.unclaimed_after = settings.MCP_OPERATION_UNCLAIMED_AFTER
        self.expiry = float(settings.MCP_CHANNEL_EXPIRY)
        self._waiting: dict[str, _Waiting] = {}
        self._calls: dict[str, _Call] = {}
        bus.subscribe(chunk_messages.CHUNK_REPLIES, self.handle)

    async def run(self, chunk: Chunk) -> ChunkOutcome:
        """Send `chunk` to the workers and wait for its end; cancelled: cancelled there too."""
        layer, channel = self.bus.layer, self.bus.channel
        assert layer is not None, "a cluster needs a channel layer"
        assert channel is not None, "a cluster needs the bus started"
        chunk_id = uuid4().hex
        now = time.monotonic()
        waiting = _Waiting(asyncio.get_running_loop().create_future(), chunk.operation_id, now, now)
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
            reply_to=channel,
        )
        try:
            try:
                await layer.send(chunk_messages.CHUNKS_CHANNEL, start.encode())
            except Exception:
                metrics.channel_layer_error("send")
                raise ChunkLost("", why="could not be sent to the workers") from None
            done = await self._watch(waiting)
        except BaseException:
            # Lost, cancelled or failed: wherever it still is, it stops.
            await self.bus.to_runners(chunk_messages.ChunkCancel(chunk_ids=(chunk_id,)))
            raise
        finally:
            self._waiting.pop(chunk_id, None)
            call.waiting -= 1
            if not call.waiting:
                self._calls.pop(chunk.operation_id, None)
        if done.lost:
            raise ChunkLost(done.runner)
        if done.error:
            raise ChunkFailed(f"chunk {chunk.index} failed on {done.runner}: {done.error}")
        return ChunkOutcome(values=done.values, errors=done.errors, runner=done.runner)

    async def _watch(self, waiting: _Waiting) -> chunk_messages.ChunkDone:
        while True:
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(waiting.done), self.beat_interval)
            now = time.monotonic()
            if waiting.taken:
                lost = now - waiting.last_seen > self.silent_for
            else:
                call = self._calls[waiting.operation_id]
                lost = (
                    now - waiting.sent > self.expiry
                    or now - max(waiting.last_seen, call.last_heard) > self.unclaimed_after
                )
            if lost:
                raise ChunkLost(waiting.runner)

    async def handle(self, message: decoding.ClusterMessage) -> None:
        """A chunk's sign of life or end, from the worker that holds it."""
        if isinstance(message, chunk_messages.ChunkDone):
            waiting = self._waiting.get(message.chunk_id)
            if waiting is not None and not waiting.done.done():
                self._heard_of(waiting.operation_id)
                waiting.done.set_result(message)
        elif isinstance(message, chunk_messages.ChunkAlive):
            now = time.monotonic()
            unknown = []
            for chunk_id in message.chunk_ids:
                waiting = self._waiting.get(chunk_id)
                if waiting is None:
                    unknown.append(chunk_id)
                    continue
                waiting.last_seen, waiting.runner, waiting.taken = now, message.runner, True
                self._heard_of(waiting.operation_id)
            if unknown:
                # Its call ended (or gave it up) while it waited in the channel: it stops.
                await self.bus.to_runners(chunk_messages.ChunkCancel(chunk_ids=tuple(unknown)))

    def _heard_of(self, operation_id: str) -> None:
        call = self._calls.get(operation_id)
        if call is not None:
            call.last_heard = time.monotonic()


@dataclasses.dataclass(slots=True)
class _Held:
    start: chunk_messages.ChunkStart
    task: "asyncio.Task[None] | None" = None


class ChunkTaker:
    """A worker's side of fan-out: takes chunks while it has room, runs them in its pool."""

    def __init__(
        self,
        *,
        bus: OperationBus,
        pool: LocalChunks,
        name: str,
        claim: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.bus = bus
        self.pool = pool
        self.name = name
        # First take of a chunk anywhere? (None: every delivery is the only one, one process.)
        self.claim = claim
        self.beat_interval = settings.MCP_OPERATION_LOST_AFTER / 6
        self._room = asyncio.Semaphore(HELD_PER_PROCESS * pool.processes)
        self._held: dict[str, _Held] = {}
        self._cancelled: dict[str, float] = {}
        self._beats: asyncio.Task[None] | None = None
        bus.subscribe(frozenset({chunk_messages.CHUNK_CANCEL}), self.handle)

    @property
    def held(self) -> int:
        """How many chunks this worker holds (queued in its pool or running)."""
        return len(self._held)

    async def run(self) -> None:
        """Once the pool's processes run, take chunks until cancelled, and report the held
        ones' life until `drain` ends."""
        await self.pool.warm()
        if self._beats is None:
            self._beats = asyncio.create_task(
                every(self.beat_interval, self.beat, failure="chunk heartbeat failed")
            )
        logger.info("worker %s takes chunks from %s", self.name, chunk_messages.CHUNKS_CHANNEL)
        await self._take()

    async def drain(self, grace: float) -> None:
        """Once no longer taking: wait up to `grace` seconds for the held chunks (still
        reported alive meanwhile), report the rest lost, and stop the heartbeat."""
        tasks = [held.task for held in self._held.values() if held.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        for chunk_id, held in list(self._held.items()):
            if held.task is not None:
                held.task.cancel()
                await asyncio.gather(held.task, return_exceptions=True)
            lost = chunk_messages.ChunkDone(chunk_id, self.name, [], [], lost=True)
            await self._reply(held.start, lost)
        beats, self._beats = self._beats, None
        if beats is not None:
            beats.cancel()
            await asyncio.gather(beats, return_exceptions=True)

    async def _take(self) -> None:
        layer = self.bus.layer
        assert layer is not None
        while True:
            await self._room.acquire()
            try:
                raw = await receive_riding_out(layer, chunk_messages.CHUNKS_CHANNEL)
                start = chunk_messages.ChunkStart.decode(raw)
            except messages.MalformedMessage as exc:
                logger.warning("ignored a malformed chunk.start: %s", exc)
                self._room.release()
                continue
            except BaseException:
                self._room.release()
                raise
            if self.claim is not None and not await self._claimed(start):
                self._room.release()  # delivered twice: the other copy runs
                logger.info(
                    "chunk %d of operation %s was taken elsewhere already",
                    start.index,
                    start.operation_id,
                )
                continue
            if self._cancelled.pop(start.chunk_id, None) is not None:
                self._room.release()  # cancelled before it arrived: never started
                logger.info(
                    "chunk %d of operation %s cancelled before it started",
                    start.index,
                    start.operation_id,
                )
                continue
            held = _Held(start)
            self._held[start.chunk_id] = held
            held.task = asyncio.create_task(self._run(held), name=f"chunk-{start.chunk_id}")
            await self._reply(start, chunk_messages.ChunkAlive((start.chunk_id,), runner=self.name))

    async def _claimed(self, start: chunk_messages.ChunkStart) -> bool:
        """Whether this worker may run `start` (its first take); True if Redis cannot say
        (a Redis that is down loses the chunk's alive and done messages anyway)."""
        assert self.claim is not None
        try:
            return await self.claim(start.chunk_id)
        except Exception:
            logger.warning("could not claim chunk %s; running it", start.chunk_id, exc_info=True)
            return True

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
        finally:
            self._held.pop(start.chunk_id, None)
            self._room.release()
        if done is not None and not await self._reply(start, done) and not done.error:
            # Values the layer cannot carry (not plain data) fail the call, not its chunk
            # again and again; a layer that is down fails this too, and the chunk is lost.
            error = "its values could not be sent (an item function must return plain data)"
            await self._reply(
                start, chunk_messages.ChunkDone(start.chunk_id, self.name, [], [], error)
            )

    async def beat(self) -> None:
        """Tell each caller which of its chunks this worker holds; forget old cancels."""
        by_caller: dict[str, list[str]] = {}
        for chunk_id, held in list(self._held.items()):
            by_caller.setdefault(held.start.reply_to, []).append(chunk_id)
        for reply_to, chunk_ids in by_caller.items():
            alive = chunk_messages.ChunkAlive(tuple(chunk_ids), runner=self.name)
            await self._send(reply_to, alive)
        now = time.monotonic()
        for chunk_id in [k for k, at in self._cancelled.items() if at < now]:
            del self._cancelled[chunk_id]

    async def handle(self, message: decoding.ClusterMessage) -> None:
        """`chunk.cancel`: stop held chunks; remember the others (they may still arrive)."""
        if not isinstance(message, chunk_messages.ChunkCancel):
            return
        for chunk_id in message.chunk_ids:
            held = self._held.get(chunk_id)
            if held is not None and held.task is not None:
                held.task.cancel()
            else:
                self._cancelled[chunk_id] = time.monotonic() + CANCELLED_MEMORY_SECONDS

    async def _reply(
        self,
        start: chunk_messages.ChunkStart,
        message: chunk_messages.ChunkAlive | chunk_messages.ChunkDone,
    ) -> bool:
        return await self._send(start.reply_to, message)

    async def _send(
        self, channel: str, message: chunk_messages.ChunkAlive | chunk_messages.ChunkDone
    ) -> bool:
        """Send `message` to `channel`; False (logged) when it could not be sent."""
        layer = self.bus.layer
        assert layer is not None
        try:
            await layer.send(channel, message.encode())
        except Exception:
            # The caller's watch treats a silent chunk as lost, and runs it again.
            metrics.channel_layer_error("send")
            logger.warning("could not send %s to %s", message.TYPE, channel, exc_info=True)
            return False
        return True


def _sendable(text: str) -> str:
    """`text` with lone surrogates (a name that is not UTF-8) as their escape's text, which the
    channel layer can carry (history's rule: protocol/text_escapes.py)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
