"""The history writer process's loop: it takes the batches that arrive on its pipe, writes
them through a `HistoryWriter` of its own and confirms them by sequence number
(`python -m mcp_server.runtime.history_child` runs it once Django is set up)."""

import logging
import pickle
import time
from multiprocessing.connection import Connection
from typing import Any
from uuid import UUID

from mcp_server.runtime.history_batches import DRAIN_TIMEOUT, Batch, decode_batch

logger = logging.getLogger("mcp_server.runtime.history_process")

_IDS_PER_QUERY = 500


class BatchWriter:
    """Writes received batches through a `HistoryWriter` driven from this loop."""

    def __init__(self, *, interval: float, restarted: bool) -> None:
        from mcp_server.runtime.history import HistoryWriter

        self.writer = HistoryWriter(interval=interval, threaded=False)
        # A restarted writer does not know which rows its predecessor wrote: it asks.
        self._restarted = restarted
        self.received = 0

    def take(self, batch: Batch) -> None:
        """Queue a batch (one already taken is a duplicate of a re-send: ignored)."""
        from django.conf import settings

        if batch.seq <= self.received:
            return
        self.received = batch.seq
        for name, value in batch.limits.items():
            setattr(settings, name, value)
        for operation_id in batch.adopted:
            self.writer.adopt(operation_id)
        if self._restarted:
            for operation_id in self._existing([s["id"] for s in batch.snapshots]):
                self.writer.adopt(operation_id)
        for snapshot in batch.snapshots:
            self.writer.record(snapshot)
        if batch.errors:
            self.writer.record_errors(batch.errors)

    def _existing(self, ids: list[UUID]) -> set[UUID]:
        from mcp_server.models import Operation

        found: set[UUID] = set()
        for start in range(0, len(ids), _IDS_PER_QUERY):
            chunk = ids[start : start + _IDS_PER_QUERY]
            found.update(Operation.objects.filter(pk__in=chunk).values_list("pk", flat=True))
        return found

    def write(self) -> int | None:
        """Write what was taken: the last batch now wholly written or set aside (None while
        some is kept to retry)."""
        self.writer.flush()
        return None if self.writer.backlog() else self.received


def serve(incoming: Connection, outgoing: Connection, hello: dict[str, Any]) -> None:
    """Write the batches that arrive on `incoming` and confirm them on `outgoing`, until the
    pipe closes and what is left is written (or the database stayed away too long)."""
    interval = hello["interval"]
    writer = BatchWriter(interval=interval, restarted=hello["restarted"])
    written_upto = 0
    receiving = True
    drain_until: float | None = None
    while receiving or writer.writer.backlog():
        if receiving:
            timeout = interval if writer.writer.backlog() else None
            if incoming.poll(timeout):
                try:
                    while True:  # all that arrived: fewer, larger transactions
                        writer.take(decode_batch(incoming.recv_bytes()))
                        if not incoming.poll(0):
                            break
                except EOFError:
                    receiving = False
        else:
            drain_until = drain_until or time.monotonic() + DRAIN_TIMEOUT
            if time.monotonic() > drain_until:
                logger.error(
                    "history writer exiting with %d states and item errors unwritten "
                    "(the database stayed unavailable)",
                    writer.writer.backlog(),
                )
                return
            time.sleep(interval)  # the database is unavailable: retry after a while
        done = writer.write()
        if done is not None:
            written_upto = done
        # Sequence numbers only: the event loop's process knows what its batches held.
        message = (written_upto, writer.received)
        try:
            outgoing.send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))
        except OSError:
            receiving = receiving and not incoming.closed  # the parent is gone: drain
