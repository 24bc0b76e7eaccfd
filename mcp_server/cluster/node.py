"""This process's place in the cluster: its channel, its groups, its connections, its loops.

Every process that serves connections or runs operations has one node. It
- runs operations whose events go to listeners (tasks; calls from other processes),
- takes cancel and attach requests for them from any process (RUNNERS_GROUP),
- heartbeats them in the database, and reaps operations whose process died,
- recovers from history the outcomes its connections wait for, should a message be lost,
- delivers broadcasts to its connections, pings idle ones, and says goodbye on shutdown,
- closes connections and stops work whose access was taken away (AccessGuard).
"""

import asyncio
import contextlib
import logging
import time
import weakref
from typing import Any, Protocol
from uuid import UUID

from channels.layers import BaseChannelLayer, get_channel_layer
from django.conf import settings

from mcp_server import metrics, selectors, services
from mcp_server.cluster import messages
from mcp_server.cluster.access import AccessGuard
from mcp_server.cluster.database import PROCESS, db_call
from mcp_server.cluster.layer import receive_forever
from mcp_server.cluster.messages import finished_message, queued_snapshot, start_message
from mcp_server.cluster.publisher import OperationPublisher
from mcp_server.models import ACTIVE_STATUSES, OperationStatus
from mcp_server.runtime.limits import SlotKey
from mcp_server.runtime.runner import (
    INTERRUPTED_BY_SHUTDOWN,
    CallRequest,
    OperationRunner,
    slot_key,
)

logger = logging.getLogger(__name__)

# How long an attach for an operation this process has not started yet is remembered (the
# attach can overtake the start message).
_PENDING_ATTACH_SECONDS = 30.0


class OutcomeWatcher(Protocol):
    """Something waiting for operations' outcomes (a connection's session)."""

    async def operation_event(self, message: messages.Message) -> None:
        """Handle an operation event (here: an outcome recovered from history)."""


class LocalConnection(OutcomeWatcher, Protocol):
    """What the node needs of a connection's session."""

    @property
    def tenant_id(self) -> int:
        """The caller's tenant."""

    @property
    def user_id(self) -> int:
        """The caller."""

    async def log(self, level: str, data: Any, logger_name: str | None) -> None:
        """Deliver a `notifications/message` if the client's level lets it through."""

    async def keep_alive(self, now: float) -> None:
        """Ping the client when idle; close the connection when a ping went unanswered."""

    async def going_away(self) -> None:
        """The server is shutting down: say so and stop this connection's work."""


class ClusterNode:
    """The process-wide runtime beside the connections (one per event loop)."""

    def __init__(self, *, runner: OperationRunner, layer: BaseChannelLayer | None, web: bool):
        self.runner = runner
        self.layer = layer
        self.web = web
        self.channel: str | None = None
        self.lost_after = settings.MCP_OPERATION_LOST_AFTER
        self.beat_interval = self.lost_after / 6
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()
        self._published: dict[UUID, tuple[OperationPublisher, asyncio.Task[None]]] = {}
        self._pending_attach: dict[UUID, tuple[float, set[str]]] = {}
        self._watched: dict[UUID, weakref.WeakSet[Any]] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._started = False
        self._start_lock = asyncio.Lock()
        self.access = AccessGuard(
            connections=lambda: list(self._connections),
            runner=runner,
            interval=settings.MCP_ACCESS_CHECK_INTERVAL,
        )
        self._first_join = asyncio.Event()

    # --- life ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Join the groups and start the loops (once)."""
        if self._started:
            return
        async with self._start_lock:
            if self._started:
                return
            if self.layer is not None:
                # The receive loop joins the groups (and rejoins them after a Redis outage):
                # a Redis that is down delays them, never this process's other duties.
                self.channel = await self.layer.new_channel()
                self._loops.append(asyncio.create_task(self._receive_loop(), name="node-receive"))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._first_join.wait(), settings.MCP_DEPENDENCY_TIMEOUT)
            self._loops.append(asyncio.create_task(self._beat_loop(), name="node-heartbeat"))
            if self.web:
                self._loops.append(asyncio.create_task(self._keep_alive_loop(), name="node-ping"))
                access_loop = asyncio.create_task(self.access.run_checks(), name="node-access")
                self._loops.append(access_loop)
            self._started = True

    async def stop(self) -> None:
        """Leave the groups and stop the loops."""
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops.clear()
        if self.layer is not None and self.channel is not None:
            with contextlib.suppress(Exception):
                await self.layer.group_discard(messages.RUNNERS_GROUP, self.channel)
                if self.web:
                    await self.layer.group_discard(messages.WEB_GROUP, self.channel)
        self._started = False

    async def shut_down_web(self) -> None:
        """SIGTERM of a web process: tell every client, stop their work, interrupt tasks."""
        connections = list(self._connections)
        await asyncio.gather(*(c.going_away() for c in connections), return_exceptions=True)
        await self.interrupt_all()
        await self.stop()

    async def interrupt_all(self) -> None:
        """Interrupt every operation this process runs for listeners, and wait for them."""
        tasks = [task for _, task in self._published.values()]
        for key in list(self._published):
            self.runner.cancel(key, INTERRUPTED_BY_SHUTDOWN)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def published_count(self) -> int:
        """How many operations this process runs for listeners."""
        return len(self._published)

    async def wait_published(self, grace: float) -> bool:
        """Wait up to `grace` seconds for the operations run for listeners to end."""
        tasks = [task for _, task in self._published.values()]
        if not tasks:
            return True
        _, pending = await asyncio.wait(tasks, timeout=grace)
        return not pending

    # --- connections --------------------------------------------------------------------
    def register(self, connection: LocalConnection) -> None:
        """A connection of this process opened."""
        self._connections.add(connection)

    def unregister(self, connection: LocalConnection) -> None:
        """A connection of this process closed."""
        self._connections.discard(connection)

    @property
    def connection_count(self) -> int:
        """Open connections of this process."""
        return len(self._connections)

    def watch(self, operation_id: UUID, connection: OutcomeWatcher) -> None:
        """Recover this operation's outcome from history for `connection` if its message is lost."""
        self._watched.setdefault(operation_id, weakref.WeakSet()).add(connection)

    def unwatch(self, operation_id: UUID, connection: OutcomeWatcher) -> None:
        """Stop recovering an outcome for `connection`."""
        watchers = self._watched.get(operation_id)
        if watchers is not None:
            watchers.discard(connection)
            if not watchers:
                del self._watched[operation_id]

    # --- operations run here for listeners ------------------------------------------------
    async def submit(self, request: CallRequest, *, listener: str, in_worker: bool) -> None:
        """Record the call in history, then start it here or hand it to a worker.

        The row exists before the client hears of the call, so any process can find it; if the
        hand-off is lost, the reaper marks the row interrupted and the client is told.
        """
        assert request.operation_id is not None
        caller = slot_key(request)
        create = db_call(services.operation_create, caller=caller)
        await create(snapshot=queued_snapshot(request, self.runner))
        if not in_worker:
            self.run_published(request, {listener})
            return
        assert self.layer is not None
        try:
            await self.layer.send(messages.OPERATIONS_CHANNEL, start_message(request, listener))
        except Exception:
            metrics.channel_layer_error("send")
            await db_call(services.operation_mark_interrupted, caller=caller)(
                operation_id=request.operation_id,
                error="interrupted: could not hand the call to a worker",
            )
            raise

    def run_published(self, request: CallRequest, listeners: set[str]) -> None:
        """Start a call whose events go to `listeners`; it outlives the connection that began it."""
        assert request.operation_id is not None
        assert self.layer is not None
        key = request.operation_id
        publisher = OperationPublisher(operation_id=key, layer=self.layer, listeners=listeners)
        pending = self._pending_attach.pop(key, None)
        if pending is not None:
            publisher.listeners |= pending[1]
        task = asyncio.create_task(self._run(request, publisher), name=f"operation-{key}")
        self._published[key] = (publisher, task)

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
        reason: str | None = None,
        caller: SlotKey = PROCESS,
    ) -> bool:
        """Record a cancel request in history (a task turns `cancelled` at once), then cancel
        the operation wherever it runs; False when it had already ended.

        The record comes first: the process running it reads it back at its next heartbeat
        round should the message be lost. `caller` is on whose behalf (its share of the
        database threads).
        """
        record = db_call(services.operation_request_cancel, caller=caller)
        if not await record(operation_id=operation_id, as_task=as_task):
            return False
        await self.cancel(operation_id, reason=reason)
        return True

    async def cancel(self, operation_id: UUID, *, reason: str | None = None) -> None:
        """Cancel an operation wherever it runs (here, or in the process that runs it)."""
        if self.runner.cancel(operation_id, reason):
            return
        if self.layer is not None:
            await self._group_send(
                messages.RUNNERS_GROUP,
                {"type": messages.OPERATION_CANCEL, "id": str(operation_id), "reason": reason},
            )

    async def attach(self, operation_id: UUID, channel: str) -> None:
        """Make `channel` a listener of the operation, wherever it runs."""
        entry = self._published.get(operation_id)
        if entry is not None:
            await entry[0].attach(channel)
        elif self.layer is not None:
            await self._group_send(
                messages.RUNNERS_GROUP,
                {"type": messages.OPERATION_ATTACH, "id": str(operation_id), "channel": channel},
            )

    async def detach(self, operation_id: UUID, channel: str) -> None:
        """Stop sending the operation's events to `channel`."""
        entry = self._published.get(operation_id)
        if entry is not None:
            entry[0].detach(channel)
        elif self.layer is not None:
            await self._group_send(
                messages.RUNNERS_GROUP,
                {"type": messages.OPERATION_DETACH, "id": str(operation_id), "channel": channel},
            )

    async def _group_send(self, group: str, message: messages.Message) -> None:
        assert self.layer is not None
        try:
            await self.layer.group_send(group, message)
        except Exception:
            metrics.channel_layer_error("send")
            # Cancellation is also recorded in history and read back by the heartbeat.
            logger.warning("could not send %s to %s", message["type"], group, exc_info=True)

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
                await self.layer.group_add(messages.WEB_GROUP, self.channel)
        finally:
            self._first_join.set()

    async def _handle(self, message: messages.Message) -> None:
        kind = message.get("type")
        if kind == messages.BROADCAST:
            await self._deliver_broadcast(message)
            return
        if kind in messages.ACCESS_MESSAGES:
            await self.access.handle(message)
            return
        try:
            key = UUID(str(message.get("id")))
        except ValueError:
            return
        if kind == messages.OPERATION_CANCEL:
            self.runner.cancel(key, message.get("reason"))
        elif kind == messages.OPERATION_ATTACH:
            entry = self._published.get(key)
            if entry is not None:
                await entry[0].attach(message["channel"])
            else:
                expires = time.monotonic() + _PENDING_ATTACH_SECONDS
                _, channels = self._pending_attach.setdefault(key, (expires, set()))
                channels.add(message["channel"])
        elif kind == messages.OPERATION_DETACH:
            entry = self._published.get(key)
            if entry is not None:
                entry[0].detach(message["channel"])

    async def _deliver_broadcast(self, message: messages.Message) -> None:
        tenant_id, user_id = message.get("tenant_id"), message.get("user_id")
        matching = [
            c
            for c in list(self._connections)
            if (tenant_id is None or c.tenant_id == tenant_id)
            and (user_id is None or c.user_id == user_id)
        ]
        level = message.get("level") or "notice"
        await asyncio.gather(
            *(c.log(level, message.get("data"), "broadcast") for c in matching),
            return_exceptions=True,
        )

    # --- heartbeat, reaper, recovery -------------------------------------------------------
    async def _beat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.beat_interval)
            try:
                await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("operation heartbeat failed", exc_info=True)

    async def beat(self) -> None:
        """One round: heartbeat our operations, act on cancels and reaps, reap the lost,
        recover outcomes of operations our connections wait for."""
        now = time.monotonic()
        metrics.sample_runtime(self.runner)
        for key in [k for k, (expires, _) in self._pending_attach.items() if expires < now]:
            del self._pending_attach[key]
        # Ours until history has them: operations running here, and those whose latest state
        # the history writer has not written yet (a lagging writer must not make a cancelled
        # or finished call look abandoned, and the reaper turn it into an interrupted one).
        ours = list({*self.runner.running_ids, *self.runner.writer.unwritten_ids()})
        if ours:
            rows = await db_call(services.operations_heartbeat)(
                operation_ids=ours, runner=self.runner.name
            )
            for key, (status, cancel_requested) in rows.items():
                if status == OperationStatus.INTERRUPTED:
                    self.runner.cancel(key, INTERRUPTED_BY_SHUTDOWN)
                elif cancel_requested or status not in ACTIVE_STATUSES:
                    self.runner.cancel(key)
        # Two rounds short of the bound: one for the reaper to run, one for the client's web
        # process to read the outcome back, so a client hears within MCP_OPERATION_LOST_AFTER.
        silent_for = self.lost_after - 2 * self.beat_interval
        await db_call(services.operations_reap_lost)(
            lost_after=silent_for, unclaimed_after=settings.MCP_OPERATION_UNCLAIMED_AFTER
        )
        if self._watched:
            await self.recover_outcomes()

    async def recover_outcomes(self) -> None:
        """Deliver, from history, the outcomes of watched operations that have ended."""
        ended = await db_call(selectors.operation_outcomes)(operation_ids=list(self._watched))
        for operation in ended:
            watchers = list(self._watched.pop(operation.pk, ()))
            message = finished_message(operation)
            for connection in watchers:
                try:
                    await connection.operation_event(message)
                except Exception:
                    logger.warning("could not deliver a recovered outcome", exc_info=True)

    async def _keep_alive_loop(self) -> None:
        interval = max(
            0.05, min(settings.MCP_CLIENT_PING_INTERVAL, settings.MCP_CLIENT_PING_TIMEOUT) / 4
        )
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for connection in list(self._connections):
                try:
                    await connection.keep_alive(now)
                except Exception:
                    logger.debug("keep-alive failed", exc_info=True)


_nodes: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ClusterNode]" = (
    weakref.WeakKeyDictionary()
)


def running_node() -> ClusterNode | None:
    """The node of the running event loop, if one was started."""
    return _nodes.get(asyncio.get_running_loop())


def cluster_node(*, web: bool = True) -> ClusterNode:
    """The node of the running event loop (created on first use)."""
    from mcp_server.runtime.runner import operation_runner

    loop = asyncio.get_running_loop()
    node = _nodes.get(loop)
    if node is None:
        node = ClusterNode(runner=operation_runner(), layer=get_channel_layer(), web=web)
        _nodes[loop] = node
    return node
