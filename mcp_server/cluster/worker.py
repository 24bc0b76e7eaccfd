"""A worker process: takes `tools/call` work from the channel layer and runs it.

Events go back to the connections that listen (whichever web process holds them); outcomes
are written to history first. On SIGTERM the worker stops taking work, lets running
operations finish within a grace period, then interrupts the rest and tells their clients.
"""

import asyncio
import functools
import logging
import signal
from datetime import datetime
from typing import Any
from uuid import UUID

from channels.layers import get_channel_layer

from accounts.limits import TenantLimits
from accounts.principal import Principal
from config import log_context
from mcp_server import metrics, services
from mcp_server.cluster import messages
from mcp_server.cluster.database import db_call
from mcp_server.cluster.node import ClusterNode, cluster_node, receive_forever
from mcp_server.cluster.publisher import OperationPublisher
from mcp_server.runtime.history import history_writer
from mcp_server.runtime.runner import CallRequest, slot_key
from mcp_server.tools.catalog import catalog_for

logger = logging.getLogger(__name__)


class UnknownTool(Exception):
    """The start message names a tool this worker cannot run for that caller."""


def request_from_start(message: messages.Message) -> CallRequest:
    """The call an `operation.start` message describes."""
    fields = dict(message["principal"])
    tools = fields.get("enabled_tools")
    fields["enabled_tools"] = frozenset(tools) if tools is not None else None
    if "limits" in fields:
        fields["limits"] = TenantLimits(**fields["limits"])
    principal = Principal(**fields)
    tool = catalog_for(principal.enabled_tools).get(message["tool"])
    if tool is None:
        raise UnknownTool(message["tool"])
    queued_at = message.get("queued_at")
    return CallRequest(
        principal=principal,
        tool=tool,
        arguments=message.get("arguments") or {},
        connection_id=message.get("connection_id") or "",
        request_id=message.get("request_id") or "",
        progress_token=message.get("progress_token"),
        operation_id=UUID(message["id"]),
        queued_at=datetime.fromisoformat(queued_at) if queued_at else None,
        is_task=bool(message.get("is_task")),
        task_ttl=message.get("task_ttl"),
    )


class OperationWorker:
    """Runs operations handed over through OPERATIONS_CHANNEL until told to stop."""

    def __init__(self, *, grace: float) -> None:
        self.grace = grace
        self._stopping = asyncio.Event()
        self._starting: set[asyncio.Task[None]] = set()

    def stop(self) -> None:
        """Stop taking work and drain (the SIGTERM and SIGINT handler)."""
        self._stopping.set()

    async def run(self) -> None:
        """Take work until stopped, then drain within the grace period."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop)
        node = cluster_node(web=False)
        await node.start()
        logger.info("worker %s takes work from %s", node.runner.name, messages.OPERATIONS_CHANNEL)
        taker = asyncio.create_task(self._take_work(node))
        await self._stopping.wait()
        taker.cancel()
        await asyncio.gather(taker, *self._starting, return_exceptions=True)
        running = node.published_count
        if running:
            logger.info("stopping: %d operations get %.0f s to finish", running, self.grace)
        if not await node.wait_published(self.grace):
            logger.warning("grace period over: interrupting %d operations", node.published_count)
            await node.interrupt_all()
        await node.stop()
        await asyncio.to_thread(history_writer().stop)
        logger.info("worker stopped")

    async def _take_work(self, node: ClusterNode) -> None:
        layer = get_channel_layer()
        assert layer is not None
        await receive_forever(
            layer, messages.OPERATIONS_CHANNEL, functools.partial(self._start, node)
        )

    async def _start(self, node: ClusterNode, message: messages.Message) -> None:
        # Claims run side by side: taking work never waits for the database one call at a time.
        task = asyncio.create_task(self._claim_and_run(node, message))
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    async def _claim_and_run(self, node: ClusterNode, message: messages.Message) -> None:
        try:
            request = request_from_start(message)
        except Exception as exc:
            await self._refuse(node, message, exc)
            return
        assert request.operation_id is not None
        log_context.bind_call(request, message.get("traceparent"))
        claim = db_call(services.operation_claim, caller=slot_key(request))
        if not await claim(operation_id=request.operation_id, runner=node.runner.name):
            logger.info("operation %s ended before a worker took it; not run", message["id"])
            return
        metrics.handoff_claimed(request.queued_at)
        listener = message.get("listener")
        node.run_published(request, {str(listener)} if listener else set())

    async def _refuse(self, node: ClusterNode, message: dict[str, Any], exc: Exception) -> None:
        logger.warning("refused operation %s: %r", message.get("id"), exc)
        try:
            key = UUID(str(message["id"]))
        except (KeyError, ValueError):
            return
        error = f"interrupted: the worker could not start it ({type(exc).__name__}: {exc})"
        await db_call(services.operation_mark_interrupted)(operation_id=key, error=error)
        if node.layer is not None and message.get("listener"):
            publisher = OperationPublisher(
                operation_id=key, layer=node.layer, listeners={str(message["listener"])}
            )
            await publisher.finished(status="interrupted", result=None, error=error)
