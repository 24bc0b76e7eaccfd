"""Liveness of operations across processes: heartbeat, reaper, and lost-message recovery.

Every round (MCP_OPERATION_LOST_AFTER / 6 seconds) a process stamps the operations it runs,
acts on the cancel flags and statuses it reads back, marks interrupted the operations nobody
stamps any more (and the plain calls it handed to workers that nobody took, or whose worker
died: cluster/handed_off.py), and delivers from history the outcomes its connections still
wait for. A worker's keep-alive thread (cluster/keepalive.py) also heartbeats them while a
round is late (its event loop busy or starved), so a live worker's calls are not reaped.
"""

import logging
import time
import weakref
from uuid import UUID

from django.conf import settings

from mcp_server import metrics, selectors
from mcp_server.cluster.bus import OperationBus
from mcp_server.cluster.database import db_call
from mcp_server.cluster.handed_off import OutcomeWatcher
from mcp_server.cluster.messages import OperationFinished
from mcp_server.cluster.rounds import every
from mcp_server.dependencies import REDIS_ERRORS
from mcp_server.operations import store
from mcp_server.operations.lifecycle import ACTIVE_STATUSES, OperationStatus, Stop, StopReason
from mcp_server.runtime.runner import OperationRunner

logger = logging.getLogger(__name__)


class Liveness:
    """The heartbeat, reaper and outcome recovery of one process."""

    def __init__(self, *, runner: OperationRunner, bus: OperationBus) -> None:
        self.runner = runner
        self.bus = bus
        self.lost_after = settings.MCP_OPERATION_LOST_AFTER
        self.beat_interval = self.lost_after / 6
        self._watched: dict[UUID, weakref.WeakSet[OutcomeWatcher]] = {}
        # When this process's operations were last heartbeaten (monotonic), by a round or by
        # `heartbeat_if_late`.
        self._heartbeaten_at = time.monotonic()

    def watch(self, operation_id: UUID, watcher: OutcomeWatcher) -> None:
        """Recover this operation's outcome from history for `watcher` if its message is lost."""
        self._watched.setdefault(operation_id, weakref.WeakSet()).add(watcher)

    def unwatch(self, operation_id: UUID, watcher: OutcomeWatcher) -> None:
        """Stop recovering an outcome for `watcher`."""
        watchers = self._watched.get(operation_id)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._watched[operation_id]

    @property
    def watched(self) -> frozenset[UUID]:
        """The operations whose outcomes someone here waits for."""
        return frozenset(self._watched)

    async def run(self) -> None:
        """A round every `beat_interval` seconds until cancelled."""
        await every(self.beat_interval, self.beat, failure="operation heartbeat failed")

    async def beat(self) -> None:
        """One round: heartbeat our operations, act on cancels and reaps, reap the lost,
        recover outcomes of operations our connections wait for."""
        metrics.sample_runtime(self.runner)
        self.bus.forget_stale_attaches()
        # Ours until history has them: operations running here, and those whose latest state
        # the history writer has not written yet (a lagging writer must not make a cancelled
        # or finished call look abandoned, and the reaper turn it into an interrupted one).
        ours = self._ours()
        if not ours:
            self._heartbeaten_at = time.monotonic()
        else:
            rows = await db_call(self._heartbeat)(ours=ours)
            for key, (status, cancel_requested) in rows.items():
                # Ended in history meanwhile (reaped as lost), or asked to stop there.
                if status == OperationStatus.INTERRUPTED:
                    self.runner.cancel(key, Stop(StopReason.LOST_RUNNER))
                elif cancel_requested or status not in ACTIVE_STATUSES:
                    self.runner.cancel(key, Stop(StopReason.CANCEL_REQUESTED))
        # Two rounds short of the bound: one for the reaper to run, one for the client's web
        # process to read the outcome back, so a client hears within MCP_OPERATION_LOST_AFTER.
        silent_for = self.lost_after - 2 * self.beat_interval
        await db_call(store.operations_reap_lost)(
            lost_after=silent_for,
            unclaimed_after=settings.MCP_OPERATION_UNCLAIMED_AFTER,
            # A worker stamped alive (its keep-alive thread: its loop not hung) keeps its rows
            # through late heartbeats, up to the hung bound on top.
            live_runners=await self._live_workers(),
            live_lost_after=silent_for + settings.MCP_WORKER_HUNG_AFTER,
        )
        # Plain calls on workers have no row to reap: their entries say what became of them.
        if self.bus.handed_off:
            await self.bus.handed_off.settle()
        if self._watched:
            await self.recover_outcomes()

    async def _live_workers(self) -> set[str]:
        dispatch = self.bus.dispatch
        if dispatch is None:
            return set()
        try:
            return await dispatch.live_workers()
        except REDIS_ERRORS:
            return set()  # Redis down: every row by its heartbeat alone, as without workers

    def _ours(self) -> list[UUID]:
        # `running_ids` copies a dict in one C call, which no other thread interleaves with.
        return list({*self.runner.running_ids, *self.runner.writer.unwritten_ids()})

    def heartbeat_if_late(self) -> None:
        """From another thread (a worker's KeepAlive): heartbeat this process's operations
        when the event loop's own round is a round late, so that a busy or starved loop does
        not get them reaped; the loop's next round acts on their cancels and statuses."""
        if time.monotonic() - self._heartbeaten_at < 2 * self.beat_interval:
            return
        ours = self._ours()
        if not ours:
            self._heartbeaten_at = time.monotonic()
        else:
            self._heartbeat(ours)

    def _heartbeat(self, ours: list[UUID]) -> dict[UUID, tuple[str, bool]]:
        """Heartbeat `ours` (on a database thread), noting when as it is written: a loop that
        reads the answer seconds later must not make the rows look heartbeaten since."""
        began = time.monotonic()
        rows = store.operations_heartbeat(operation_ids=ours, runner=self.runner.name)
        self._heartbeaten_at = max(self._heartbeaten_at, began)
        return rows

    async def recover_outcomes(self) -> None:
        """Deliver, from history, the outcomes of watched operations that have ended."""
        ended = await db_call(selectors.operation_outcomes)(operation_ids=list(self._watched))
        for operation in ended:
            watchers = list(self._watched.pop(operation.pk, ()))
            event = OperationFinished.from_row(operation)
            for watcher in watchers:
                try:
                    await watcher.operation_event(event)
                except Exception:
                    logger.warning("could not deliver a recovered outcome", exc_info=True)
