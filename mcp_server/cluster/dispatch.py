"""Calls handed to workers, on Redis Streams consumer groups: queued fairly, pulled, re-delivered.

Redis is the engine; what is ours is the MCP-specific part around it (which tenant goes next,
what a lost call becomes). Keys, all under `<MCP_CHANNEL_PREFIX>:dispatch`:

- `q:<tenant>:<user>`: a stream per user, its consumer group `workers`; one entry per call
  (its `operation.start`, msgpack). An entry is deleted (XACK, XDEL) once the call's terminal
  state is in history, so a stream holds only calls waiting or running: it trims itself.
- `tenants` (a list, with `tenants:set`): the tenants with waiting calls, in turn; `users:<t>`
  (with `users:<t>:set`): that tenant's users with waiting calls, in turn; `queued:<t>`: how
  many calls of the tenant wait (bounded by MCP_DISPATCH_QUEUE_PER_TENANT).
- `streams`: the user streams that may hold entries, waiting or pending (for the reclaim).
- `bell`: a token per call put, for idle workers to block on (BLPOP); trimmed to 64, and
  deleted by a take that finds fewer calls than it asked for (none waits then).
- `alive:<worker>`: a worker's liveness stamp, set every MCP_OPERATION_LOST_AFTER / 12 with
  a time to live of MCP_OPERATION_LOST_AFTER / 2 by its keep-alive thread while its event loop
  is not hung (cluster/keepalive.py); `workers`: the names that stamped (a set, pruned by `settle`
  of those whose stamp is gone), so `settle` can tell a busy cluster from one without workers.
- `reply:<web process>`: the outcomes of the plain calls that process handed over (a list,
  read many at a time), when nothing else of the call went to its connection before (else
  the outcome follows its progress on the channel layer, in order).
- `cancel:<operation>`: a cancel asked for a plain call a worker holds (its row is written
  with its end), read by that worker's rounds and by whoever takes the call over.
- `chunks:...`: the lane of fan-out chunks (`chunk_lane`), the same keys as above for its own
  streams, turns, bell and reply lists (`chunks:reply:<process>`: the ends of the chunks that
  process fanned out, each pushed with its entry's acknowledgement in one transaction); the
  stamps and cancel marks are the calls' lane's.

The scripts are in cluster/dispatch_scripts.py. `take` (one Lua script, so atomic across the
cluster) rotates the tenants list, then the tenant's users list, and reads one entry of that
user's stream (XREADGROUP ... COUNT 1) per turn, until it has as many as the worker's free
slots: the round robin across tenants, then users, is the cluster's, not a process's. A worker
calls it only with free slots (pull); after a take that found too few, its next one waits on
the bell first, in one pipeline. The puts of one event-loop turn of a web process go in one
`PUT` call, each against the bound. `reclaim` hands a worker the pending entries of workers
whose stamp has expired (XPENDING, XCLAIM: XAUTOCLAIM would also take a live worker's long
calls, whose entries are idle from delivery to end); what becomes of them (run again, or
interrupted) is the worker's business. For a plain call (no row before its end) the delivery is
the claim: `withdraw` takes back an entry no worker has taken yet (a cancel before it runs) or
marks it cancelled for the worker that holds it, and `settle` tells the web process that waits
what became of its entries (taken back when nobody took them in time, or when the worker
holding them died and nobody took them over), each one script, so a take or a reclaim and these
never both win. A waiting entry is taken back as nobody's only when it has waited
`unclaimed_after` and no worker is alive: busy workers take calls late, never lose them (a
backlog of 1,000 four-second calls on two workers waits about two minutes).
"""

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID

import msgpack
import redis.asyncio
import redis.exceptions
from django.conf import settings
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from mcp_server.cluster import dispatch_scripts as scripts
from mcp_server.cluster import messages
from mcp_server.runtime.admission import InFlightLimitReached

logger = logging.getLogger(__name__)

GROUP = "workers"
# Wake-up tokens kept for idle workers, at most (one is enough to wake one).
_BELL_LENGTH = 64


class DispatchQueueFull(InFlightLimitReached):
    """The tenant has MCP_DISPATCH_QUEUE_PER_TENANT calls waiting for a worker already."""

    def __init__(self, limit: int) -> None:
        super().__init__("tenant", "dispatch_queue_per_tenant", limit)
        self.args = (
            f"Too many calls of this tenant wait for a worker (at most {limit}); "
            "wait for some to finish, or cancel them, before sending more",
        )


@dataclass(frozen=True, slots=True)
class Entry:
    """Where a call put on the streams is: its stream, entry id and tenant."""

    stream: str
    entry_id: str
    tenant: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """One call a worker took from the streams: where its entry is, and what it says."""

    stream: str
    entry_id: str
    message: messages.Message
    # Set for a reclaimed entry: the worker that took it first and stopped responding.
    lost_by: str = ""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _raise_lost_cancel() -> None:
    """Raise the cancel of this task that a blocking read returned over: redis-py's blocking
    commands (BLPOP, BLMPOP) sometimes end normally when cancelled as their wait runs out
    (a few in a hundred cancels), and a loop around them (a worker taking chunks, a caller
    reading their ends) then ran on, so its stop waited for ever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _delivery(row: list[Any]) -> Delivery | None:
    try:
        message = msgpack.unpackb(row[2], raw=False)
    except Exception:
        logger.warning("ignored an undecodable dispatch entry %s", _text(row[1]))
        return None
    lost_by = _text(row[3]) if len(row) > 3 else ""
    return Delivery(_text(row[0]), _text(row[1]), message, lost_by)


class Dispatch:
    """This process's client of the dispatch streams (web processes put, workers take)."""

    def __init__(
        self, client: "redis.asyncio.Redis", *, prefix: str, queue_bound: int, lane: str = ""
    ) -> None:
        self.client = client
        # The workers' stamps, cancel marks and reply lists: shared by every lane.
        self.prefix = f"{prefix}:dispatch"
        # This lane's streams, turns and bell (`chunk_lane`: the fan-out chunks').
        self.queues = f"{self.prefix}:{lane}" if lane else self.prefix
        self._base = prefix
        self.queue_bound = queue_bound
        self._put = client.register_script(scripts.PUT)
        self._take = client.register_script(scripts.TAKE)
        self._reclaim = client.register_script(scripts.RECLAIM)
        self._settle = client.register_script(scripts.SETTLE)
        self._withdraw = client.register_script(scripts.WITHDRAW)
        self._drop_orphaned = client.register_script(scripts.DROP_ORPHANED)
        self._live_workers = client.register_script(scripts.LIVE_WORKERS)
        self._done = client.register_script(scripts.DONE)
        self._reply = client.register_script(scripts.REPLY)
        # Outcomes waiting for the next round trip (Dispatch.reply), and its task.
        self._replies: list[tuple[str, bytes, asyncio.Future[bool]]] = []
        # Puts waiting for the next round trip (Dispatch.put).
        self._puts: list[tuple[str, str, bytes, asyncio.Future[str]]] = []
        self._sending: set[asyncio.Future[None]] = set()

    def chunk_lane(self, *, queue_bound: int) -> "Dispatch":
        """The lane of the fan-out chunks on the same Redis: streams, turns and bell of its
        own (a worker takes chunks with its pool's free slots, calls with its event loop's),
        the workers' stamps shared."""
        return Dispatch(self.client, prefix=self._base, queue_bound=queue_bound, lane="chunks")

    def stream_of(self, tenant: int | str, user: int | str) -> str:
        """The stream of a user's calls."""
        return f"{self.queues}:q:{tenant}:{user}"

    async def put(self, start: messages.OperationStart) -> Entry:
        """Queue a call for the workers in its tenant's and user's turn; where its entry is.
        DispatchQueueFull when the tenant has as many waiting as the bound allows. The puts
        of one turn of the event loop go together, in one round trip."""
        tenant, user = start.principal["tenant_id"], start.principal["user_id"]
        return await self.put_message(tenant, user, start.encode())

    async def put_message(
        self, tenant: int | str, user: int | str, message: messages.Message
    ) -> Entry:
        """Queue any message (a call's start, a chunk's) in its tenant's and user's turn."""
        payload = msgpack.packb(message, use_bin_type=True)
        put: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._puts.append((str(tenant), str(user), payload, put))
        if len(self._puts) == 1:
            self._sending.add(sending := asyncio.ensure_future(self._send_puts()))
            sending.add_done_callback(self._sending.discard)
        entry_id = await put
        if not entry_id:
            raise DispatchQueueFull(self.queue_bound)
        return Entry(self.stream_of(tenant, user), entry_id, str(tenant))

    async def _send_puts(self) -> None:
        batch, self._puts = self._puts, []
        args: list[str | int | bytes] = [self.queues, self.queue_bound, _BELL_LENGTH]
        for tenant, user, payload, _ in batch:
            args += [tenant, user, payload]
        try:
            ids = [_text(i) for i in cast(list[Any], await self._put(args=args))]
        except Exception as exc:
            for *_, put in batch:
                if not put.done():
                    put.set_exception(exc)
            return
        except BaseException:
            for *_, put in batch:
                put.cancel()
            raise
        for (*_, put), entry_id in zip(batch, ids, strict=True):
            if not put.done():
                put.set_result(entry_id)

    async def take(self, consumer: str, count: int, *, wait: float = 0) -> list[Delivery]:
        """Up to `count` waiting calls, round robin across tenants then users. With `wait`,
        first block until a call may have been put since the last take found too few (a
        bell token) or `wait` seconds have passed: the wait and the take in one round trip."""
        args: list[str | int] = [self.queues, consumer, count]
        if not wait:
            rows = cast(list[Any], await self._take(args=args))
        else:
            rows = await self._take_after_bell(args, wait)
            _raise_lost_cancel()
        return [d for row in rows if (d := _delivery(row)) is not None]

    async def wait_for_work(self, seconds: float) -> None:
        """Block until a call may have been put (a bell token), or `seconds` have passed."""
        await self.client.blpop([f"{self.queues}:bell"], timeout=seconds)
        _raise_lost_cancel()

    async def _take_after_bell(self, args: list[str | int], wait: float) -> list[Any]:
        # BLPOP then EVALSHA in one pipeline: Redis runs the take once the wait ends. The
        # script object's own pipeline path would check SCRIPT EXISTS first, another trip.
        for attempt in range(2):
            pipe = self.client.pipeline(transaction=False)
            pipe.blpop([f"{self.queues}:bell"], timeout=wait)
            pipe.evalsha(self._take.sha, 0, *args)
            try:
                _, rows = await pipe.execute()
                return cast(list[Any], rows)
            except redis.exceptions.NoScriptError:
                if attempt:
                    raise
                await self.client.script_load(scripts.TAKE)
        raise AssertionError("unreachable")

    async def done(self, deliveries: Iterable[Delivery]) -> None:
        """Acknowledge and delete the entries of calls whose end is in history."""
        # Atomic: an entry acknowledged is deleted with it (`withdraw` and `settle` take an
        # entry that exists and is not pending for one no worker has taken).
        args = [part for d in deliveries for part in (d.stream, d.entry_id)]
        if args:
            await self._done(args=args)

    async def finish(
        self, delivery: Delivery, reply_key: str, outcome: messages.Message | None, *, ttl: float
    ) -> None:
        """Send an entry's outcome to `reply_key` (None: nobody waits) and acknowledge and
        delete the entry, in one transaction: an entry gone has its outcome in the list."""
        pipe = self.client.pipeline(transaction=True)
        if outcome is not None:
            pipe.rpush(reply_key, msgpack.packb(outcome, use_bin_type=True))
            pipe.pexpire(reply_key, int(ttl * 1000))
        pipe.xack(delivery.stream, GROUP, delivery.entry_id)
        pipe.xdel(delivery.stream, delivery.entry_id)
        await pipe.execute()

    def alive_keys(self, consumer: str) -> tuple[str, str]:
        """A worker's liveness stamp, and the set of the workers that stamped."""
        return f"{self.prefix}:alive:{consumer}", f"{self.prefix}:workers"

    async def stamp_alive(self, consumer: str, ttl: float) -> None:
        """Say this worker is alive for `ttl` seconds (its pending entries stay its own, and
        calls waiting for a worker keep waiting). Its first stamp: the next ones come from
        its keep-alive thread (cluster/keepalive.py), on a connection of its own."""
        stamp, workers = self.alive_keys(consumer)
        pipe = self.client.pipeline(transaction=False)
        pipe.set(stamp, b"1", px=int(ttl * 1000))
        pipe.sadd(workers, consumer)
        await pipe.execute()

    async def live_workers(self) -> set[str]:
        """The workers stamped alive now."""
        names = cast(list[Any], await self._live_workers(args=[self.prefix]))
        return {_text(name) for name in names}

    async def forget(self, consumer: str) -> None:
        """A worker that stops: its stamp goes at once (what it still holds is reclaimed)."""
        stamp, workers = self.alive_keys(consumer)
        with contextlib.suppress(Exception):
            pipe = self.client.pipeline(transaction=False)
            pipe.delete(stamp)
            pipe.srem(workers, consumer)
            await pipe.execute()

    async def reclaim(self, consumer: str, *, idle: float, count: int) -> list[Delivery]:
        """Take over up to `count` entries pending for at least `idle` seconds with workers
        whose stamp has expired."""
        args: list[str | int] = [self.queues, consumer, int(idle * 1000), count, self.prefix]
        rows = cast(list[Any], await self._reclaim(args=args))
        return [d for row in rows if (d := _delivery(row)) is not None]

    async def drop_orphaned(self, *, idle: float, count: int) -> int:
        """Delete, unrun, up to `count` entries held for at least `idle` seconds by workers
        whose stamp has expired; how many (the chunk lane's, whose callers died too)."""
        args: list[str | int] = [self.queues, int(idle * 1000), count, self.prefix]
        return int(cast(int, await self._drop_orphaned(args=args)))

    async def withdraw(self, entry: "Entry", operation_id: UUID | str, *, marked_for: float) -> str:
        """Cancel a plain call's entry: 'withdrawn' (no worker had taken it; it never runs),
        'held' (a worker holds it: marked cancelled for `marked_for` seconds) or 'gone'."""
        args: list[str | int] = [
            self.queues,
            entry.stream,
            entry.entry_id,
            entry.tenant,
            int(marked_for * 1000),
            str(operation_id),
            self.prefix,
        ]
        return _text(await self._withdraw(args=args))

    async def settle(
        self, entries: Sequence[tuple["Entry", bool]], *, unclaimed_after: float
    ) -> list[str]:
        """What became of these entries (see dispatch_scripts.SETTLE), taking back those
        nobody took within `unclaimed_after` seconds while no worker is alive, and the
        orphaned ones flagged True (given up on)."""
        held = await self.settle_held(entries, unclaimed_after=unclaimed_after)
        return [verdict for verdict, _ in held]

    async def settle_held(
        self, entries: Sequence[tuple["Entry", bool]], *, unclaimed_after: float
    ) -> list[tuple[str, str]]:
        """`settle`, each verdict with the worker that holds or held the entry ('' for none)."""
        args: list[str | int] = [self.queues, int(unclaimed_after * 1000), self.prefix]
        for entry, give_up in entries:
            args += [entry.stream, entry.entry_id, entry.tenant, "1" if give_up else "0"]
        rows = cast(list[Any], await self._settle(args=args))
        return [(_text(verdict), _text(holder)) for verdict, holder in rows]

    def reply_key(self, process: str) -> str:
        """Where the outcomes for a web process's plain calls go."""
        return f"{self.queues}:reply:{process}"

    async def reply(self, key: str, message: messages.Message, *, ttl: float) -> bool:
        """Send a call's outcome to the web process that waits for it; False when it could
        not be sent this way (logged; the caller uses the channel layer). The outcomes of
        one turn of the event loop go together, in one round trip."""
        try:
            payload = msgpack.packb(message, use_bin_type=True)
        except Exception:
            logger.warning("could not encode an outcome for %s", key, exc_info=True)
            return False
        sent = asyncio.get_running_loop().create_future()
        self._replies.append((key, payload, sent))
        if len(self._replies) == 1:
            self._sending.add(sending := asyncio.ensure_future(self._send_replies(ttl)))
            sending.add_done_callback(self._sending.discard)
        return await sent

    async def _send_replies(self, ttl: float) -> None:
        batch, self._replies = self._replies, []
        try:
            await self._push_replies(batch, ttl)
            ok = True
        except Exception:
            logger.warning("could not send %d outcomes", len(batch), exc_info=True)
            ok = False
        for _, _, sent in batch:
            if not sent.done():
                sent.set_result(ok)

    async def _push_replies(
        self, batch: list[tuple[str, bytes, asyncio.Future[bool]]], ttl: float
    ) -> None:
        # A web process that is gone leaves its list behind for `ttl` at most. The outcomes
        # of a turn are most often for one web process: one script call, not a pipeline.
        keys = dict.fromkeys(key for key, _, _ in batch)
        if len(keys) == 1:
            payloads = [payload for _, payload, _ in batch]
            await self._reply(keys=list(keys), args=[int(ttl * 1000), *payloads])
            return
        pipe = self.client.pipeline(transaction=False)
        for key, payload, _ in batch:
            pipe.rpush(key, payload)
        for key in keys:
            pipe.pexpire(key, int(ttl * 1000))
        await pipe.execute()

    async def replies(self, key: str, *, wait: float, count: int = 256) -> list[messages.Message]:
        """The outcomes sent to `key`, up to `count` (blocks up to `wait` seconds for one)."""
        got = await self.client.blmpop(wait, 1, key, direction="LEFT", count=count)
        _raise_lost_cancel()
        if not got:
            return []
        out = []
        for raw in cast(list[Any], got)[1]:
            try:
                out.append(msgpack.unpackb(raw, raw=False))
            except Exception:
                logger.warning("ignored an undecodable outcome on %s", key)
        return out

    async def cancelled(self, operation_ids: Iterable[UUID]) -> set[UUID]:
        """Those of these operations marked cancelled (`withdraw` of a held entry)."""
        keys = list(operation_ids)
        if not keys:
            return set()
        marks = await self.client.mget([f"{self.prefix}:cancel:{key}" for key in keys])
        return {key for key, mark in zip(keys, marks, strict=True) if mark is not None}

    async def close(self) -> None:
        """Close the connections."""
        with contextlib.suppress(Exception):
            await asyncio.shield(self.client.aclose())


def dispatch_from_settings() -> Dispatch | None:
    """The dispatch of a deployment with Redis (None without)."""
    if not settings.REDIS_URL:
        return None
    client = redis.asyncio.Redis.from_url(
        settings.REDIS_URL,
        # Blocking reads (BLPOP) last longer than any socket timeout would.
        socket_timeout=None,
        socket_connect_timeout=settings.MCP_DEPENDENCY_TIMEOUT,
        retry=Retry(NoBackoff(), 1),
        max_connections=settings.MCP_REDIS_MAX_CONNECTIONS,
    )
    return Dispatch(
        client,
        prefix=settings.MCP_CHANNEL_PREFIX,
        queue_bound=settings.MCP_DISPATCH_QUEUE_PER_TENANT,
    )
