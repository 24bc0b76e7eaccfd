"""A worker process: takes `tools/call` work from the channel layer and runs it.

Events go back to the connections that listen (whichever web process holds them); outcomes
are written to history first. On SIGTERM the worker stops taking work, lets running
operations finish within a grace period, then interrupts the rest and tells their clients.
"""

import asyncio
import logging
import signal

from accounts import tool_sets
from accounts.limits import TenantLimits
from accounts.principal import Principal
from config import log_context
from mcp_server import metrics
from mcp_server.cluster import messages
from mcp_server.cluster.chunks import ChunkTaker
from mcp_server.cluster.database import db_call
from mcp_server.cluster.layer import receive_forever
from mcp_server.cluster.publisher import OperationPublisher
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


def request_from_start(start: messages.OperationStart) -> CallRequest:
    """The call an `operation.start` message describes."""
    fields = dict(start.principal)
    fields["enabled_tools"], fields["disabled_tools"] = tool_sets.decoded(fields)
    if "limits" in fields:
        fields["limits"] = TenantLimits.from_dict(fields["limits"])
    principal = Principal(**fields)
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
    )


class OperationWorker:
    """Runs operations handed over through OPERATIONS_CHANNEL until told to stop."""

    def __init__(self, *, runtime: ProcessRuntime, grace: float) -> None:
        self.runtime = runtime
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
        runtime, bus = self.runtime, self.runtime.bus
        await runtime.start()
        logger.info(
            "worker %s takes work from %s", runtime.runner.name, messages.OPERATIONS_CHANNEL
        )
        taker = asyncio.create_task(self._take_work())
        chunks = ChunkTaker(bus=bus, pool=local_chunks(), name=runtime.runner.name)
        chunk_taker = asyncio.create_task(chunks.run())
        await self._stopping.wait()
        taker.cancel()
        chunk_taker.cancel()
        await asyncio.gather(taker, chunk_taker, *self._starting, return_exceptions=True)
        if chunks.held:
            logger.info("stopping: %d chunks get %.0f s to finish", chunks.held, self.grace)
        await chunks.drain(self.grace)
        running = bus.published_count
        if running:
            logger.info("stopping: %d operations get %.0f s to finish", running, self.grace)
        if not await bus.wait_published(self.grace):
            logger.warning("grace period over: interrupting %d operations", bus.published_count)
            await bus.interrupt_all()
        await runtime.stop()
        await asyncio.to_thread(runtime.writer.stop)
        await asyncio.to_thread(local_chunks().shutdown)
        logger.info("worker stopped")

    async def _take_work(self) -> None:
        layer = self.runtime.bus.layer
        assert layer is not None
        await receive_forever(layer, messages.OPERATIONS_CHANNEL, self._start)

    async def _start(self, message: messages.Message) -> None:
        # Claims run side by side: taking work never waits for the database one call at a time.
        task = asyncio.create_task(self._claim_and_run(message))
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    async def _claim_and_run(self, message: messages.Message) -> None:
        try:
            start = messages.OperationStart.decode(message)
        except messages.MalformedMessage as exc:
            logger.warning("ignored a malformed operation.start: %s", exc)
            return
        try:
            request = request_from_start(start)
        except Exception as exc:
            await self._refuse(start, exc)
            return
        log_context.bind_call(request, start.traceparent)
        bus = self.runtime.bus
        claim = db_call(store.operation_claim, caller=slot_key(request))
        if not await claim(operation_id=start.id, runner=bus.runner.name):
            logger.info("operation %s ended before a worker took it; not run", start.id)
            return
        metrics.handoff_claimed(request.queued_at)
        bus.run_published(request, {start.listener} if start.listener else set())

    async def _refuse(self, start: messages.OperationStart, exc: Exception) -> None:
        logger.warning("refused operation %s: %r", start.id, exc)
        stop = Stop(StopReason.NOT_STARTED, f"{type(exc).__name__}: {exc}")
        await db_call(store.operation_stop)(operation_id=start.id, stop=stop)
        layer = self.runtime.bus.layer
        if layer is not None and start.listener:
            publisher = OperationPublisher(
                operation_id=start.id, layer=layer, listeners={start.listener}
            )
            await publisher.finished(status=stop.status, result=None, error=stop.error)
