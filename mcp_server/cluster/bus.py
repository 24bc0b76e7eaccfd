"""This process's place on the channel layer: operations handed over and run for listeners.

The bus joins RUNNERS_GROUP (and WEB_GROUP in a web process) on its own channel, takes cancel,
attach and detach requests for the operations it runs from any process, runs operations whose
events go to listeners (tasks; calls from other processes), and hands calls to workers (on the
dispatch streams, cluster/dispatch.py). Other messages on its channel (broadcasts, access
changes) go to the handlers subscribed to them.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from channels.layers import BaseChannelLayer
from django.conf import settings

from config import log_context
from mcp_server import metrics
from mcp_server.cluster import decoding, messages, session_messages
from mcp_server.cluster.database import PROCESS, db_call
from mcp_server.cluster.dispatch import Dispatch, DispatchQueueFull
from mcp_server.cluster.handed_off import HandedOffCalls, OutcomeWatcher
from mcp_server.cluster.layer import receive_forever
from mcp_server.cluster.publisher import OperationPublisher, Reply
from mcp_server.operations import store
from mcp_server.operations.lifecycle import Stop, StopReason
from mcp_server.runtime.limits import SlotKey
from mcp_server.runtime.runner import CallRequest, OperationRunner, slot_key

logger = logging.getLogger(__name__)

# How long an attach for an operation this process has not started yet is remembered (the
# attach can overtake the start message).
PENDING_ATTACH_SECONDS = 30.0

Subscriber = Callable[[decoding.ClusterMessage], Awaitable[None]]
# Records a cancel request in history: store.operation_request_cancel, on some thread.
RecordCancel = Callable[..., Awaitable[bool]]


class OperationBus:
    """Hand-off and listeners of the operations this process runs (one per process)."""

    def __init__(
        self,
        *,
        runner: OperationRunner,
        layer: BaseChannelLayer | None,
        web: bool,
        dispatch: Dispatch | None = None,
    ):
        self.runner = runner
        self.layer = layer
        # Where calls for workers are queued (None: a process without workers).
        self.dispatch = dispatch
        # The plain calls handed to workers without a row, which this process waits for.
        self.handed_off = (
            HandedOffCalls(dispatch=dispatch, runner=runner) if dispatch is not None else None
        )
        self.web = web
        self.channel: str | None = None
        self._published: dict[UUID, tuple[OperationPublisher, asyncio.Task[None]]] = {}
        self._pending_attach: dict[UUID, tuple[float, set[str]]] = {}
        self._subscribers: dict[str, Subscriber] = {}
        self._receiver: asyncio.Task[None] | None = None
        self._replies: asyncio.Task[None] | None = None
        self._first_join = asyncio.Event()

    def subscribe(self, kinds: frozenset[str], handler: Subscriber) -> None:
        """Hand messages of these types arriving on this process's channel to `handler`."""
        for kind in kinds:
            self._subscribers[kind] = handler

    # --- life ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Take a channel and start receiving (waits a bounded time for the groups' join)."""
        if self.layer is None or self._receiver is not None:
            return
        # The receive loop joins the groups (and rejoins them after a Redis outage): a Redis
        # that is down delays them, never this process's other duties.
        self.channel = await self.layer.new_channel()
        self._receiver = asyncio.create_task(self._receive_loop(), name="bus-receive")
        if self.web and self.handed_off is not None:
            self._replies = asyncio.create_task(self.handed_off.receive(), name="bus-replies")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_join.wait(), settings.MCP_DEPENDENCY_TIMEOUT)

    async def stop(self) -> None:
        """Stop receiving and leave the groups."""
        receiver, self._receiver = self._receiver, None
        replies, self._replies = self._replies, None
        if self.handed_off is not None:
            self.handed_off.stop_receiving()
        for task in (receiver, replies):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self.layer is not None and self.channel is not None:
            with contextlib.suppress(Exception):
                await self.layer.group_discard(messages.RUNNERS_GROUP, self.channel)
                if self.web:
                    await self.layer.group_discard(session_messages.WEB_GROUP, self.channel)
        if self.dispatch is not None:
            await self.dispatch.close()

    async def interrupt_all(self) -> None:
        """Interrupt every operation this process runs for listeners, and wait for them."""
        tasks = [task for _, task in self._published.values()]
        for key in list(self._published):
            self.runner.cancel(key, Stop(StopReason.SHUTDOWN))
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def runs(self, operation_id: UUID) -> bool:
        """Whether this process runs the operation for listeners (a task, a call from elsewhere)."""
        return operation_id in self._published

    # --- operations run for listeners ---------------------------------------------------
    async def record(self, request: CallRequest) -> None:
        """Insert the call's history row (`queued`) before anyone hears of it, so any process
        can find it; a lost hand-off then leaves a row the reaper marks interrupted."""
        create = db_call(store.operation_create, caller=slot_key(request))
        await create(snapshot=messages.queued_snapshot(request, self.runner))

    async def hand_off(
        self, request: CallRequest, *, listener: str | None, site: OutcomeWatcher | None = None
    ) -> None:
        """Queue a call for the workers (ended in history if that fails; past the tenant's
        queue bound, DispatchQueueFull). A call not `recorded` (a plain call: its worker
        writes the row) is waited for by this process, its outcome going to `site`, until
        `forget_handed_off`."""
        assert request.operation_id is not None
        assert self.dispatch is not None, "handing calls to workers needs the dispatch streams"
        assert self.handed_off is not None
        # The worker's log lines about the call name the trace the request carried.
        traceparent = log_context.current().traceparent
        reply_to = None if request.recorded else self.handed_off.reply_key
        start = messages.OperationStart.of(
            request, listener, traceparent=traceparent, reply_to=reply_to
        )
        try:
            entry = await self.dispatch.put(start)
        except Exception as exc:
            if isinstance(exc, DispatchQueueFull):
                metrics.refused(exc.data["limit"], request.principal)
                stop = Stop(StopReason.HAND_OFF_FAILED, str(exc))
            else:
                metrics.channel_layer_error("send")
                stop = Stop(StopReason.HAND_OFF_FAILED)
            if request.recorded:
                await db_call(store.operation_stop, caller=slot_key(request))(
                    operation_id=request.operation_id, stop=stop
                )
            else:
                await db_call(store.operation_end_unrecorded, caller=slot_key(request))(
                    snapshot=messages.queued_snapshot(request, self.runner), stop=stop
                )
            raise
        if not request.recorded:
            self.handed_off.add(request, entry, site)

    def forget_handed_off(self, operation_id: UUID) -> None:
        """This process no longer waits for a plain call it handed to the workers."""
        if self.handed_off is not None:
            self.handed_off.discard(operation_id)

    def run_published(
        self, request: CallRequest, listeners: set[str], *, reply: Reply | None = None
    ) -> "asyncio.Task[None]":
        """Start a call whose events go to `listeners` (its outcome by `reply`, when it can);
        it outlives the connection that began it. The task ends once its listeners were told
        how it ended."""
        assert request.operation_id is not None
        assert self.layer is not None
        key = request.operation_id
        publisher = OperationPublisher(
            operation_id=key, layer=self.layer, listeners=listeners, reply=reply
        )
        pending = self._pending_attach.pop(key, None)
        if pending is not None:
            publisher.listeners |= pending[1]
        task = asyncio.create_task(self._run(request, publisher), name=f"operation-{key}")
        self._published[key] = (publisher, task)
        return task

    async def _run(self, request: CallRequest, publisher: OperationPublisher) -> None:
        try:
            await self.runner.run_published(request, publisher)
        finally:
            assert request.operation_id is not None
            self._published.pop(request.operation_id, None)

    async def request_cancel(
        self,
        operation_id: UUID,
        *,
        as_task: bool,
        reason: Stop | None = None,
        caller: SlotKey = PROCESS,
        record: RecordCancel | None = None,
    ) -> bool:
        """Record a cancel request in history (a task turns `cancelled` at once), then cancel
        the operation wherever it runs; False when it had already ended.

        The one place that does both. The record comes first: the process running it reads it
        back at its next heartbeat round should the message be lost. `reason` is why (none: a
        cancel requested through history); `caller` is on whose behalf (its share of the
        database threads); `record` writes the request elsewhere than on the bus's database
        threads (an HTTP request's own connection).
        """
        if reason is None:
            reason = Stop(StopReason.CANCEL_REQUESTED)
        if self.handed_off is not None and operation_id in self.handed_off:
            # A plain call on a worker, with no row to record the request in: taken back
            # from the streams if no worker holds it yet, else marked there and stopped.
            verdict = await self.handed_off.withdraw(operation_id, reason)
            if verdict == "held":
                await self.cancel(operation_id, reason=reason)
            return verdict != "gone"
        if record is None:
            record = db_call(store.operation_request_cancel, caller=caller)
        if not await record(operation_id=operation_id, as_task=as_task):
            return False
        await self.cancel(operation_id, reason=reason)
        return True

    async def cancel(self, operation_id: UUID, *, reason: Stop | None = None) -> None:
        """Cancel an operation wherever it runs (here, or in the process that runs it)."""
        if self.runner.cancel(operation_id, reason):
            return
        await self.to_runners(messages.OperationCancel(id=operation_id, reason=reason))

    async def answer(self, operation_id: UUID, responses: dict[str, Any]) -> bool:
        """Hand the client's input responses to a task wherever it runs; True when it runs
        here (and has them now)."""
        if self.runner.answer(operation_id, responses):
            return True
        await self.to_runners(messages.OperationAnswer(id=operation_id, responses=responses))
        return False

    async def attach(self, operation_id: UUID, channel: str) -> None:
        """Make `channel` a listener of the operation, wherever it runs."""
        entry = self._published.get(operation_id)
        if entry is not None:
            await entry[0].attach(channel)
        else:
            await self.to_runners(messages.OperationAttach(id=operation_id, channel=channel))

    async def detach(self, operation_id: UUID, channel: str) -> None:
        """Stop sending the operation's events to `channel`."""
        entry = self._published.get(operation_id)
        if entry is not None:
            entry[0].detach(channel)
        else:
            await self.to_runners(messages.OperationDetach(id=operation_id, channel=channel))

    def forget_stale_attaches(self) -> None:
        """Drop attaches kept for operations that never started here."""
        now = time.monotonic()
        for key in [k for k, (expires, _) in self._pending_attach.items() if expires < now]:
            del self._pending_attach[key]

    async def to_runners(self, message: decoding.ClusterMessage) -> None:
        """Send `message` to every process that runs operations (best effort: logged)."""
        if self.layer is None:
            return
        try:
            await self.layer.group_send(messages.RUNNERS_GROUP, message.encode())
        except Exception:
            metrics.channel_layer_error("send")
            # Cancellation is also recorded in history and read back by the heartbeat.
            logger.warning("could not send %s to the runners", message.TYPE, exc_info=True)

    # --- messages from other processes ----------------------------------------------------
    async def _receive_loop(self) -> None:
        assert self.layer is not None
        assert self.channel is not None
        await receive_forever(self.layer, self.channel, self._handle, join=self._join_groups)

    async def _join_groups(self) -> None:
        assert self.layer is not None
        assert self.channel is not None
        try:
            await self.layer.group_add(messages.RUNNERS_GROUP, self.channel)
            if self.web:
                await self.layer.group_add(session_messages.WEB_GROUP, self.channel)
        finally:
            self._first_join.set()

    async def _handle(self, raw: messages.Message) -> None:
        try:
            message = decoding.decode_message(raw)
        except messages.MalformedMessage as exc:
            logger.warning("ignored a malformed message: %s", exc)
            return
        subscriber = self._subscribers.get(message.TYPE)
        if subscriber is not None:
            await subscriber(message)
        elif type(message) is messages.OperationCancel:
            self.runner.cancel(message.id, message.reason)
        elif type(message) is messages.OperationAnswer:
            self.runner.answer(message.id, message.responses)
        elif type(message) is messages.OperationAttach:
            entry = self._published.get(message.id)
            if entry is not None:
                await entry[0].attach(message.channel)
            else:
                expires = time.monotonic() + PENDING_ATTACH_SECONDS
                _, channels = self._pending_attach.setdefault(message.id, (expires, set()))
                channels.add(message.channel)
        elif type(message) is messages.OperationDetach:
            entry = self._published.get(message.id)
            if entry is not None:
                entry[0].detach(message.channel)
