"""Where a session's calls run: in this process, on the workers, or as each tool's placement says.

Every executor has the same small interface: `call` (a plain tools/call, answered when it
ends), `start_task` (a durable task, recorded then run published), `attach`/`detach` (a
connection's interest in an operation running anywhere) and `cancel` (record the request,
then stop it wherever it runs). `LocalExecutor` runs calls with this process's runner;
`ClusteredExecutor` hands them to worker processes; `PlacedExecutor` (a deployment with
workers) picks one of those two per call, from the tool's placement (mcp_server/placement.py).
"""

import abc
import asyncio
import dataclasses
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

from django.conf import settings
from django.utils import timezone

from mcp_server.cluster.bus import OperationBus
from mcp_server.cluster.database import PROCESS
from mcp_server.listener import ConnectionListener
from mcp_server.operations.lifecycle import Stop, call_outcome, stop_of
from mcp_server.placement import where
from mcp_server.runtime.limits import SlotKey
from mcp_server.runtime.runner import CallRequest, OperationRunner, slot_key
from mcp_server.tools.registry import Placement, Tool


def new_operation_id() -> UUID:
    """A fresh operation id: a UUIDv7, time-ordered to the millisecond, whose other 74 bits
    are all random (no counter, as a library's monotonic UUIDv7 has), so that a task id, a
    handle its owner may hold on to, cannot be guessed from another one."""
    millis = time.time_ns() // 1_000_000 & (1 << 48) - 1
    random = secrets.randbits(74)
    value = millis << 80 | 0x7 << 76 | (random >> 62) << 64 | 0b10 << 62 | random & (1 << 62) - 1
    return UUID(int=value)


class Executor(abc.ABC):
    """Runs a session's calls and reaches the operations it listens to (through the bus,
    wherever they run)."""

    # Whether tasks can keep running when this process goes away (what a goodbye tells
    # clients; `running_here` names those that do not).
    tasks_outlive_process = False

    def __init__(self, *, runner: OperationRunner, bus: OperationBus) -> None:
        self.runner = runner
        self.bus = bus

    @abc.abstractmethod
    async def call(self, call: CallRequest, site: ConnectionListener) -> dict[str, Any]:
        """Run a plain `tools/call` for the connection at `site`; its CallToolResult."""

    @abc.abstractmethod
    async def start_task(self, request: CallRequest, *, listener: str | None) -> None:
        """Record a task (its operation id set) and start it, its events going to `listener`
        (None: nobody listens yet; a tasks-extension task is polled, or listened to later)."""

    async def attach(self, operation_id: UUID, channel: str) -> None:
        """Make `channel` a listener of the operation, wherever it runs."""
        await self.bus.attach(operation_id, channel)

    async def answer(self, operation_id: UUID, responses: dict[str, Any]) -> None:
        """Hand the client's input responses (tasks/update) to the task wherever it runs;
        answered here, they are in history when this returns."""
        if await self.bus.answer(operation_id, responses):
            await self.runner.flush_history()

    async def detach(self, operation_id: UUID, channel: str) -> None:
        """Stop sending the operation's events to `channel`."""
        await self.bus.detach(operation_id, channel)

    async def cancel(
        self,
        operation_id: UUID,
        *,
        as_task: bool,
        reason: Stop | None = None,
        caller: SlotKey = PROCESS,
    ) -> bool:
        """Record a cancel request, then stop the operation wherever it runs; False when it
        had already ended."""
        return await self.bus.request_cancel(
            operation_id, as_task=as_task, reason=reason, caller=caller
        )

    def running_here(self, operation_ids: Iterable[UUID]) -> list[UUID]:
        """Those of the operations that this process runs (they end when it stops)."""
        return [key for key in operation_ids if self.bus.runs(key) or self.runner.is_running(key)]


class LocalExecutor(Executor):
    """Runs calls in this process: a plain call on the direct path (the socket is its only
    listener, nothing crosses the channel layer), a task published from here."""

    async def call(self, call: CallRequest, site: ConnectionListener) -> dict[str, Any]:
        """Run the call here, its progress and logs going straight to the connection, which
        the tool may also ask for input or a completion."""
        return await self.runner.call(
            call,
            send=site.send,
            events=site.events_for(call),
            client=site.client_requests if call.asks_client else None,
        )

    async def start_task(self, request: CallRequest, *, listener: str | None) -> None:
        """Record the task, then run it here for its listeners."""
        await self.bus.record(request)
        self.bus.run_published(request, {listener} if listener is not None else set())


class ClusteredExecutor(Executor):
    """Hands calls to worker processes; their events come back to the connection's channel."""

    tasks_outlive_process = True

    async def call(self, call: CallRequest, site: ConnectionListener) -> dict[str, Any]:
        """Hand the call to a worker and wait for its outcome; a cancelled wait (the client
        cancelled or left) stops the work wherever it runs. Its row is written by the worker,
        with its end (none before: history would write it twice), unless history keeps only
        rows written elsewhere (MCP_HISTORY_ENABLED off): then it is recorded first."""
        key = new_operation_id()
        request = dataclasses.replace(
            call,
            operation_id=key,
            queued_at=timezone.now(),
            recorded=not settings.MCP_HISTORY_ENABLED,
        )
        attachment = site.attach(key, call.progress_token, None, log_rank=call.log_rank)
        # Not cut short by a cancel: the cancel must find the call where the hand-off put it.
        handing_off = asyncio.ensure_future(self._hand_off(request, site))
        waits = True
        try:
            await asyncio.shield(handing_off)
            finished = await attachment.outcome
        except asyncio.CancelledError as exc:
            # Forgotten once the cancel is through (it finds the call's entry by its id).
            waits = False
            site.owner.keep(self._stop(request, stop_of(exc), handing_off))
            raise
        finally:
            site.drop(key)
            if waits:
                self.bus.forget_handed_off(key)
        return call_outcome(finished)

    async def _hand_off(self, request: CallRequest, site: ConnectionListener) -> None:
        if request.recorded:
            await self.bus.record(request)
        await self.bus.hand_off(request, listener=site.connection_id, site=site)

    async def _stop(
        self, request: CallRequest, reason: Stop, handing_off: "asyncio.Future[None]"
    ) -> None:
        assert request.operation_id is not None
        try:
            try:
                await handing_off
            except Exception:
                return  # never handed off (and ended in history so)
            await self.cancel(
                request.operation_id, as_task=False, reason=reason, caller=slot_key(request)
            )
        finally:
            self.bus.forget_handed_off(request.operation_id)

    async def start_task(self, request: CallRequest, *, listener: str | None) -> None:
        """Record the call, then send it to the workers' queue."""
        await self.bus.record(request)
        await self.bus.hand_off(request, listener=listener)


class PlacedExecutor(Executor):
    """Runs each call where its tool's placement says: here (`LocalExecutor`) or on the
    workers (`ClusteredExecutor`); `overrides` are the operator's, by tool name."""

    tasks_outlive_process = True

    def __init__(
        self,
        *,
        runner: OperationRunner,
        bus: OperationBus,
        overrides: Mapping[str, Placement],
    ) -> None:
        super().__init__(runner=runner, bus=bus)
        self.local = LocalExecutor(runner=runner, bus=bus)
        self.workers = ClusteredExecutor(runner=runner, bus=bus)
        self.overrides = dict(overrides)

    def executor_for(self, tool: Tool) -> Executor:
        """The executor that runs `tool`'s calls."""
        return self.local if where(tool, self.overrides) == "local" else self.workers

    async def call(self, call: CallRequest, site: ConnectionListener) -> dict[str, Any]:
        """Run the call where its tool runs."""
        return await self.executor_for(call.tool).call(call, site)

    async def start_task(self, request: CallRequest, *, listener: str | None) -> None:
        """Record the task and start it where its tool runs."""
        await self.executor_for(request.tool).start_task(request, listener=listener)
