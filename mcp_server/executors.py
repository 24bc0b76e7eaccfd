"""Where a session's calls run, chosen once per process (MCP_EXECUTION).

Both executors have the same small interface: `call` (a plain tools/call, answered when it
ends), `start_task` (a durable task, recorded then run published), `attach`/`detach` (a
connection's interest in an operation running anywhere) and `cancel` (record the request,
then stop it wherever it runs). `LocalExecutor` runs calls with this process's runner;
`ClusteredExecutor` hands them to worker processes.
"""

import abc
import asyncio
import dataclasses
from typing import Any
from uuid import UUID

from django.utils import timezone
from uuid_utils.compat import uuid7

from mcp_server.cluster.bus import OperationBus
from mcp_server.cluster.database import PROCESS
from mcp_server.listener import ConnectionListener
from mcp_server.operations.lifecycle import Stop, call_outcome, stop_of
from mcp_server.runtime.limits import SlotKey
from mcp_server.runtime.runner import CallRequest, OperationRunner, slot_key


def new_operation_id() -> UUID:
    """A fresh, time-ordered operation id."""
    return UUID(str(uuid7()))


class Executor(abc.ABC):
    """Runs a session's calls and reaches the operations it listens to (through the bus,
    wherever they run)."""

    # Whether tasks keep running when this process goes away (what a goodbye tells clients).
    tasks_outlive_process = False

    def __init__(self, *, runner: OperationRunner, bus: OperationBus) -> None:
        self.runner = runner
        self.bus = bus

    @abc.abstractmethod
    async def call(self, call: CallRequest, site: ConnectionListener) -> dict[str, Any]:
        """Run a plain `tools/call` for the connection at `site`; its CallToolResult."""

    @abc.abstractmethod
    async def start_task(self, request: CallRequest, *, listener: str) -> None:
        """Record a task (its operation id set) and start it, its events going to `listener`."""

    async def attach(self, operation_id: UUID, channel: str) -> None:
        """Make `channel` a listener of the operation, wherever it runs."""
        await self.bus.attach(operation_id, channel)

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


class LocalExecutor(Executor):
    """Runs calls in this process: a plain call on the direct path (the socket is its only
    listener, nothing crosses the channel layer), a task published from here."""

    async def call(self, call: CallRequest, site: ConnectionListener) -> dict[str, Any]:
        """Run the call here, its progress and logs going straight to the connection, which
        the tool may also ask for input or a completion."""
        return await self.runner.call(
            call, send=site.send, events=site, client=site.client_requests
        )

    async def start_task(self, request: CallRequest, *, listener: str) -> None:
        """Record the task, then run it here for its listeners."""
        await self.bus.record(request)
        self.bus.run_published(request, {listener})


class ClusteredExecutor(Executor):
    """Hands calls to worker processes; their events come back to the connection's channel."""

    tasks_outlive_process = True

    async def call(self, call: CallRequest, site: ConnectionListener) -> dict[str, Any]:
        """Record the call, hand it to a worker and wait for its outcome; a cancelled wait
        (the client cancelled or left) stops the work wherever it runs."""
        key = new_operation_id()
        request = dataclasses.replace(call, operation_id=key, queued_at=timezone.now())
        attachment = site.attach(key, call.progress_token, None)
        try:
            await self.start_task(request, listener=site.connection_id)
            finished = await attachment.outcome
        except asyncio.CancelledError as exc:
            site.owner.keep(
                self.cancel(key, as_task=False, reason=stop_of(exc), caller=slot_key(request))
            )
            raise
        finally:
            site.drop(key)
        return call_outcome(finished)

    async def start_task(self, request: CallRequest, *, listener: str) -> None:
        """Record the call, then send it to the workers' queue."""
        await self.bus.record(request)
        await self.bus.hand_off(request, listener=listener)
