"""A worker process: pulls `tools/call` work from the dispatch streams and runs it.

It takes calls only while it has free slots (MCP_MAX_OPERATIONS), as many as it has
(cluster/dispatch.py gives them round robin across tenants, then users, cluster-wide), and
acknowledges each once its end is in history. A thread of its own stamps it alive while its
event loop is not hung (cluster/keepalive.py), and every round it takes over the calls of
workers whose stamp expired: a call that had not started, or whose tool is
`idempotentHint: true`, runs here (again); any other is ended `interrupted`, never run twice.
Events go back to the connections that listen (whichever web process holds them); outcomes
are written to history first. Fan-out chunks come from the streams' chunk lane, taken by
its pool's free slots (cluster/chunks.py's ChunkTaker); its stamp keeps them its own too.
On SIGTERM the worker stops taking work, lets running operations finish within a grace
period, then interrupts the rest and tells their clients.
"""

import asyncio
import dataclasses
import functools
import logging
import signal
from collections.abc import Coroutine
from typing import Any
from uuid import UUID

from django.conf import settings

from accounts import tool_sets
from accounts.limits import TenantLimits
from accounts.principal import Principal
from config import log_context
from mcp_server import metrics
from mcp_server.cluster import messages
from mcp_server.cluster.chunks import ChunkTaker, chunk_lane
from mcp_server.cluster.database import db_call
from mcp_server.cluster.dispatch import Delivery, Dispatch
from mcp_server.cluster.keepalive import KeepAlive
from mcp_server.cluster.layer import Backoff
from mcp_server.cluster.publisher import OperationPublisher
from mcp_server.cluster.rounds import every
from mcp_server.dependencies import REDIS_ERRORS, layer_outage
from mcp_server.input_state import StateBinding, resumed_round
from mcp_server.operations import store
from mcp_server.operations.lifecycle import Stop, StopReason
from mcp_server.process_runtime import ProcessRuntime
from mcp_server.runtime.chunk_pool import local_chunks
from mcp_server.runtime.runner import CallRequest, slot_key
from mcp_server.tools.catalog import catalog_for_principal

logger = logging.getLogger(__name__)


class UnknownTool(Exception):
    """The start message names a tool this worker cannot run for that caller."""


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple((key, _hashable(item)) for key, item in value.items())
    if isinstance(value, list):
        return tuple(_hashable(item) for item in value)
    return value


@functools.lru_cache(maxsize=messages.PRINCIPALS_KEPT)
def _principal_of(key: tuple[tuple[str, Any], ...]) -> Principal:
    fields = dict(key)
    fields["enabled_tools"], fields["disabled_tools"] = tool_sets.decoded(fields)
    if "limits" in fields:
        fields["limits"] = TenantLimits.from_dict(dict(fields["limits"]))
    return Principal(**fields)


def principal_from_start(start: messages.OperationStart) -> Principal:
    """The caller an `operation.start` names, built once per distinct caller (a connection's
    calls share one): the limits' defaults and the tool sets cost more than the call."""
    return _principal_of(_hashable(start.principal))


def request_from_start(start: messages.OperationStart) -> CallRequest:
    """The call an `operation.start` message describes."""
    principal = principal_from_start(start)
    tool = catalog_for_principal(principal).get(start.tool)
    if tool is None:
        raise UnknownTool(start.tool)
    inputs = None
    if start.inputs is not None:
        binding = StateBinding.of(principal, "tool", tool.name, start.arguments)
        inputs = resumed_round(start.inputs, binding)
    return CallRequest(
        principal=principal,
        tool=tool,
        arguments=start.arguments,
        connection_id=start.connection_id,
        request_id=start.request_id,
        progress_token=start.progress_token,
        operation_id=start.id,
        queued_at=start.queued_at,
        is_task=start.is_task,
        task_ttl=start.task_ttl,
        asks_through_task=start.asks_through_task,
        client_capabilities=start.client_capabilities,
        inputs=inputs,
        recorded=start.recorded,
    )


class OperationWorker:
    """Runs operations pulled from the dispatch streams until told to stop."""

    def __init__(self, *, runtime: ProcessRuntime, grace: float) -> None:
        self.runtime = runtime
        self.grace = grace
        dispatch = runtime.bus.dispatch
        assert dispatch is not None, "a worker needs the dispatch streams (REDIS_URL)"
        self.dispatch: Dispatch = dispatch
        self.chunk_lane = chunk_lane(dispatch)
        self.name = runtime.runner.name
        self.capacity = settings.MCP_MAX_OPERATIONS
        lost_after = settings.MCP_OPERATION_LOST_AFTER
        # The stamp outlives six rounds; it expires (and this worker's calls are taken over)
        # half the bound after its last round, before the reaper's bound (lost_after minus two
        # heartbeat rounds) would interrupt them: an idempotent call is run again, not lost.
        # The keep-alive thread sets it, so a busy event loop does not let it expire.
        self.stamp_ttl = lost_after / 2
        self.round_interval = lost_after / 12
        self._stopping = asyncio.Event()
        self._calls: set[asyncio.Task[None]] = set()
        self._room = asyncio.Event()
        self._unacked: list[Delivery] = []
        # The plain calls running here with no row before their end (cancel marks are theirs).
        self._unrecorded: set[UUID] = set()
        self._ack_due = asyncio.Event()
        self.ack_delay = settings.MCP_HISTORY_FLUSH_INTERVAL

    def stop(self) -> None:
        """Stop taking work and drain (the SIGTERM and SIGINT handler)."""
        self._stopping.set()

    async def run(self) -> None:
        """Take work until stopped, then drain within the grace period."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop)
        runtime, bus = self.runtime, self.runtime.bus
        await runtime.start()
        try:
            await self._stamp()
        except REDIS_ERRORS:
            logger.warning("could not stamp this worker alive yet; retrying every round")
        keepalive = KeepAlive(
            dispatch=self.dispatch,
            liveness=runtime.liveness,
            name=self.name,
            ttl=self.stamp_ttl,
            interval=self.round_interval,
        )
        keepalive.start(loop)
        logger.info(
            "worker %s takes work from the dispatch streams %s", self.name, self.dispatch.prefix
        )
        taker = asyncio.create_task(self._take_work())
        rounds = asyncio.create_task(
            every(self.round_interval, self._round, failure="dispatch round failed")
        )
        acks = asyncio.create_task(self._acknowledge())
        chunks = ChunkTaker(bus=bus, lane=self.chunk_lane, pool=local_chunks(), name=self.name)
        chunk_taker = asyncio.create_task(chunks.run())
        await self._stopping.wait()
        taker.cancel()
        chunk_taker.cancel()
        await asyncio.gather(taker, chunk_taker, return_exceptions=True)
        if chunks.held:
            logger.info("stopping: %d chunks get %.0f s to finish", chunks.held, self.grace)
        await chunks.drain(self.grace)
        running = len(self._calls)
        if running:
            logger.info("stopping: %d operations get %.0f s to finish", running, self.grace)
        if self._calls:
            _, pending = await asyncio.wait(self._calls, timeout=self.grace)
            if pending:
                logger.warning("grace period over: interrupting %d operations", len(pending))
                await bus.interrupt_all()
                await asyncio.gather(*pending, return_exceptions=True)
        rounds.cancel()
        acks.cancel()
        await asyncio.gather(rounds, acks, return_exceptions=True)
        await self._send_acks()
        await asyncio.to_thread(keepalive.stop)
        await self.dispatch.forget(self.name)
        await runtime.stop()
        await asyncio.to_thread(runtime.writer.stop)
        await asyncio.to_thread(local_chunks().shutdown)
        logger.info("worker stopped")

    # --- taking work --------------------------------------------------------------------
    async def _take_work(self) -> None:
        """Pull calls while there are free slots; with none waiting, block on the bell."""
        backoff = Backoff()
        # Whether the last take found fewer than it asked for: the next one waits for the bell
        # first (in the same round trip); a put since the take rang it.
        short = False
        while True:
            free = self.capacity - len(self._calls)
            if free <= 0:
                self._room.clear()
                await self._room.wait()
                continue
            try:
                wait = self.round_interval if short else 0
                deliveries = await self.dispatch.take(self.name, free, wait=wait)
                for delivery in deliveries:
                    self._begin(self._claim_and_run(delivery), delivery)
                short = len(deliveries) < free
                # The calls just taken start (up to their first wait) before the next take
                # is sent: its CPU is then off their path.
                await asyncio.sleep(0)
            except REDIS_ERRORS as exc:
                metrics.channel_layer_error("receive")
                layer_outage.down(exc)
                await backoff.wait()
                continue
            except Exception:
                logger.exception("taking work from the dispatch streams failed; retrying")
                await backoff.wait()
                continue
            backoff.reset()
            layer_outage.up()

    def _begin(self, work: Coroutine[Any, Any, bool], delivery: Delivery) -> None:
        task = asyncio.create_task(self._run_then_acknowledge(work, delivery))
        self._calls.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: "asyncio.Task[None]") -> None:
        self._calls.discard(task)
        self._room.set()

    async def _run_then_acknowledge(
        self, work: Coroutine[Any, Any, bool], delivery: Delivery
    ) -> None:
        try:
            await work
        except Exception:
            logger.exception("operation entry %s failed", delivery.entry_id)
        # Acknowledged once its end is in history (a worker killed before leaves it pending,
        # and whoever takes it over finds it ended): see _acknowledge.
        self._unacked.append(delivery)
        self._ack_due.set()

    async def _claim_and_run(self, delivery: Delivery) -> bool:
        """Run the call of a fresh entry if it is still queued; whether it ran."""
        decoded = await self._decoded(delivery)
        if decoded is None:
            return False
        start, request = decoded
        # A plain call's delivery is its claim (a cancel before it takes the entry back); a
        # recorded call (a task) is claimed on its row, which may have ended meanwhile.
        if start.recorded:
            claim = db_call(store.operation_claim, caller=slot_key(request))
            if not await claim(operation_id=start.id, runner=self.name):
                logger.info("operation %s ended before a worker took it; not run", start.id)
                return False
        metrics.handoff_claimed(request.queued_at)
        await self._run(start, request)
        return True

    async def _run(self, start: messages.OperationStart, request: CallRequest) -> None:
        listeners = {start.listener} if start.listener else set()
        if start.recorded:
            await self.runtime.bus.run_published(request, listeners)
            return
        reply = None
        if start.reply_to is not None:
            # The outcome straight to the web process that waits (see Dispatch.reply).
            reply = functools.partial(
                self.dispatch.reply, start.reply_to, ttl=2 * settings.MCP_OPERATION_LOST_AFTER
            )
        self._unrecorded.add(start.id)
        try:
            await self.runtime.bus.run_published(request, listeners, reply=reply)
        finally:
            self._unrecorded.discard(start.id)

    async def _decoded(
        self, delivery: Delivery
    ) -> tuple[messages.OperationStart, CallRequest] | None:
        try:
            start = messages.OperationStart.decode(delivery.message)
        except messages.MalformedMessage as exc:
            logger.warning("ignored a malformed operation.start: %s", exc)
            return None
        try:
            request = request_from_start(start)
        except Exception as exc:
            await self._refuse(start, exc)
            return None
        log_context.bind_call(request, start.traceparent)
        return start, request

    # --- rounds: the calls marked cancelled, and those of workers that stopped responding
    async def _stamp(self) -> None:
        await self.dispatch.stamp_alive(self.name, self.stamp_ttl)

    async def _round(self) -> None:
        """Stop the plain calls marked cancelled (should their `operation.cancel` be lost);
        take over the calls of workers whose stamp expired (the stamps: KeepAlive)."""
        for key in await self.dispatch.cancelled(self._unrecorded):
            self.runtime.runner.cancel(key, Stop(StopReason.CANCEL_REQUESTED))
        lost = await self.dispatch.reclaim(self.name, idle=self.round_interval, count=16)
        for delivery in lost:
            self._begin(self._take_over(delivery), delivery)
        # A dead worker's chunk is its caller's to take back, at its next round: one held past
        # twice the bound has no caller left either, and would stay pending for ever.
        idle = 2 * settings.MCP_OPERATION_LOST_AFTER
        if dropped := await self.chunk_lane.drop_orphaned(idle=idle, count=64):
            logger.warning("dropped %d chunks whose worker and caller both died", dropped)

    async def _take_over(self, delivery: Delivery) -> bool:
        """A call whose worker stopped responding: run it if it never started, run it again
        if its tool is idempotent, else end it interrupted (never run twice); whether it ran."""
        decoded = await self._decoded(delivery)
        if decoded is None:
            return False
        start, request = decoded
        if start.recorded:
            claim = db_call(store.operation_claim, caller=slot_key(request))
            if await claim(operation_id=start.id, runner=self.name):
                logger.info("operation %s: %s took it and died first", start.id, delivery.lost_by)
                await self._run(start, request)
                return True
        elif await self.dispatch.cancelled([start.id]):
            await self._end_unrecorded(start, request, Stop(StopReason.CANCEL_REQUESTED))
            return False
        if request.tool.idempotent:
            take_over = db_call(store.operation_take_over, caller=slot_key(request))
            taken = await take_over(
                operation_id=start.id, runner=self.name, lost_by=delivery.lost_by
            )
            if taken == "ended" or (taken == "no row" and start.recorded):
                return False  # ended meanwhile (reaped, cancelled)
            if taken == "taken" and not start.recorded:
                # Its first worker wrote the row (a long call): this run updates it.
                request = dataclasses.replace(request, recorded=True)
            logger.warning(
                "operation %s (%s) runs again here: %s stopped responding",
                start.id,
                request.tool.name,
                delivery.lost_by,
            )
            await self._run(start, request)
            return True
        why = f"{delivery.lost_by} stopped responding; {request.tool.name} is not idempotent"
        stop = Stop(StopReason.LOST_RUNNER, why)
        if start.recorded:
            ended = await db_call(store.operation_stop)(operation_id=start.id, stop=stop)
        else:
            ended = await self._end_unrecorded(start, request, stop)
        if ended:
            logger.warning("operation %s interrupted: %s", start.id, why)
            await self._tell(start, stop)
        return False

    async def _end_unrecorded(
        self, start: messages.OperationStart, request: CallRequest | None, stop: Stop
    ) -> bool:
        """End, as `stop` says, a plain call that does not run here (its row written now,
        unless it has one that ended); whether this ended it."""
        if request is not None:
            snapshot = messages.queued_snapshot(request, self.runtime.runner)
        else:  # it could not even be read as a call: what the hand-off says
            principal = start.principal
            snapshot = {
                "id": start.id,
                "tenant_id": principal.get("tenant_id"),
                "user_id": principal.get("user_id"),
                "tool": start.tool,
                "arguments": start.arguments,
                "queued_at": start.queued_at,
                "connection_id": start.connection_id[:64],
                "request_id": str(start.request_id)[:128],
                "runner": self.name[:200],
            }
        return bool(await db_call(store.operation_end_unrecorded)(snapshot=snapshot, stop=stop))

    # --- acknowledgements ---------------------------------------------------------------
    async def _acknowledge(self) -> None:
        while True:
            await self._ack_due.wait()
            # The history writer's own round writes the ends of the calls meanwhile: they are
            # acknowledged together after it, not each after a write of its own.
            await asyncio.sleep(self.ack_delay)
            self._ack_due.clear()
            await self._send_acks()

    async def _send_acks(self) -> None:
        batch, self._unacked = self._unacked, []
        if not batch:
            return
        # Usually written already: then at once.
        await self.runtime.runner.flush_unwritten()
        try:
            await self.dispatch.done(batch)
        except Exception:
            logger.warning("could not acknowledge %d calls; retrying", len(batch), exc_info=True)
            self._unacked[:0] = batch
            await asyncio.sleep(self.round_interval)
            self._ack_due.set()

    async def _refuse(self, start: messages.OperationStart, exc: Exception) -> None:
        logger.warning("refused operation %s: %r", start.id, exc)
        stop = Stop(StopReason.NOT_STARTED, f"{type(exc).__name__}: {exc}")
        if start.recorded:
            await db_call(store.operation_stop)(operation_id=start.id, stop=stop)
        else:
            await self._end_unrecorded(start, None, stop)
        await self._tell(start, stop)

    async def _tell(self, start: messages.OperationStart, stop: Stop) -> None:
        """Tell the call's listener how it ended without running here."""
        layer = self.runtime.bus.layer
        if layer is not None and start.listener:
            publisher = OperationPublisher(
                operation_id=start.id, layer=layer, listeners={start.listener}
            )
            await publisher.finished(status=stop.status, result=None, error=stop.error)
