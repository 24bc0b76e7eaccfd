"""The plain calls this web process handed to workers without a row: where their entries are.

A plain call on a worker has no history row until the worker writes one (with its end, for a
short call), so what the row did for it before (a cancel before it runs, a call nobody takes, a
worker that dies holding it) is done here, on its stream entry (cluster/dispatch.py), by the
process that waits for it. Each way it can end without its worker writing the row ends with
the row written here, so the waiting connection hears of it from history, as of any other.
"""

import asyncio
import logging
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from django.conf import settings

from mcp_server.cluster import messages
from mcp_server.cluster.database import db_call
from mcp_server.cluster.dispatch import Dispatch, Entry
from mcp_server.cluster.layer import Backoff
from mcp_server.dependencies import REDIS_ERRORS
from mcp_server.operations import store
from mcp_server.operations.lifecycle import Stop, StopReason
from mcp_server.runtime.runner import CallRequest, OperationRunner, slot_key

logger = logging.getLogger(__name__)


# How long one read of the replies blocks (a stop cancels it sooner).
_REPLY_WAIT = 5.0


class OutcomeWatcher(Protocol):
    """Something waiting for operations' outcomes (a connection's listeners)."""

    async def operation_event(self, event: messages.OperationEvent) -> None:
        """Handle an operation event (here: an outcome, from a reply or from history)."""


@dataclass(slots=True)
class HandedOff:
    """One plain call waiting on a worker: its request, its entry, who waits for its outcome,
    and whether the worker that held it was seen gone at the last round."""

    request: CallRequest
    entry: Entry
    waiter: OutcomeWatcher | None
    orphaned: bool = False


class HandedOffCalls:
    """The row-less calls of this process's connections, by operation id."""

    def __init__(self, *, dispatch: Dispatch, runner: OperationRunner) -> None:
        self.dispatch = dispatch
        self.runner = runner
        self._calls: dict[UUID, HandedOff] = {}
        # Where workers send the outcomes of these calls (Dispatch.reply).
        self.reply_key = dispatch.reply_key(runner.name)
        # Set by `stop_receiving`: the reply loop also ends on it, as a cancel of the loop can
        # be lost inside redis-py's blocking read (it then returns, and the loop ran on).
        self._stopping = False

    def __contains__(self, operation_id: object) -> bool:
        return operation_id in self._calls

    def __bool__(self) -> bool:
        return bool(self._calls)

    def add(self, request: CallRequest, entry: Entry, waiter: OutcomeWatcher | None) -> None:
        """Note a call just put on the streams, whose outcome `waiter` waits for."""
        assert request.operation_id is not None
        self._calls[request.operation_id] = HandedOff(request, entry, waiter)

    def discard(self, operation_id: UUID) -> None:
        """The connection stopped waiting for the call (it ended, or was cancelled)."""
        self._calls.pop(operation_id, None)

    async def withdraw(self, operation_id: UUID, reason: Stop) -> str:
        """Cancel the call: 'withdrawn' (no worker held it yet: its row is written, cancelled,
        and it never runs), 'held' (marked cancelled for the worker that holds it, which the
        caller also tells through the runners) or 'gone' (it had ended)."""
        call = self._calls.get(operation_id)
        if call is None:
            return "gone"
        # The mark outlives any round of the worker that holds it and of one taking it over.
        verdict = await self.dispatch.withdraw(
            call.entry, operation_id, marked_for=2 * settings.MCP_OPERATION_LOST_AFTER
        )
        if verdict == "withdrawn":
            await self._end(call, reason)
        return verdict

    async def receive(self) -> None:
        """Hand the outcomes workers reply with to whoever waits for them, until cancelled
        (after `stop_receiving`: a cancel lost in a blocking read ends it at its next turn)."""
        backoff = Backoff()
        self._stopping = False  # a bus started again receives again
        while not self._stopping:
            try:
                replies = await self.dispatch.replies(self.reply_key, wait=_REPLY_WAIT)
            except REDIS_ERRORS:
                # Outcomes wait in the list meanwhile (and in history, for the rounds).
                await backoff.wait()
                continue
            except Exception:
                # Never silently: without this loop every handed-off call waits for the rounds.
                logger.exception("receiving the workers' replies failed; retrying")
                await backoff.wait()
                continue
            backoff.reset()
            for reply in replies:
                await self._deliver(reply)  # never raises
            # The calls just answered send their replies before this asks Redis for more (the
            # ask is a round trip's worth of CPU on the reply's path otherwise).
            await asyncio.sleep(0)

    def stop_receiving(self) -> None:
        """Make the reply loop end at its next turn (say so before cancelling it)."""
        self._stopping = True

    async def _deliver(self, reply: messages.Message) -> None:
        try:
            event = messages.OperationFinished.decode(reply)
        except messages.MalformedMessage as exc:
            logger.warning("ignored a malformed reply: %s", exc)
            return
        call = self._calls.get(event.id)
        if call is None or call.waiter is None:
            return  # nobody waits any more (cancelled, or its connection closed)
        try:
            await call.waiter.operation_event(event)
        except Exception:
            logger.warning("could not deliver the outcome of %s", event.id, exc_info=True)

    async def settle(self) -> None:
        """Take back the calls nobody took in time and those whose worker died with nobody to
        take them over (gone at two rounds in a row), each ended in history as such."""
        calls = list(self._calls.items())
        verdicts = await self.dispatch.settle(
            [(call.entry, call.orphaned) for _, call in calls],
            unclaimed_after=settings.MCP_OPERATION_UNCLAIMED_AFTER,
        )
        for (key, call), verdict in zip(calls, verdicts, strict=True):
            call.orphaned = verdict == "orphaned"
            if verdict == "unclaimed":
                await self._end(call, Stop(StopReason.UNCLAIMED))
            elif verdict == "abandoned":
                logger.warning("operation %s: its worker stopped responding", key)
                await self._end(call, Stop(StopReason.LOST_RUNNER))

    async def _end(self, call: HandedOff, stop: Stop) -> None:
        end = db_call(store.operation_end_unrecorded, caller=slot_key(call.request))
        await end(snapshot=messages.queued_snapshot(call.request, self.runner), stop=stop)
