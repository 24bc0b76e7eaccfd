"""Batched, non-blocking history writes.

The event loop never waits for the database: the runtime hands snapshots of operations and
item errors to a HistoryWriter, and a background thread writes them in one transaction every
flush interval (default 0.25 s, so a finished call's row exists well within 1 s). A call that
starts and ends between two flushes costs one row insert. A clean exit flushes what is left.
"""

import atexit
import logging
import threading
from concurrent.futures import Future
from functools import lru_cache
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import close_old_connections, connections

from mcp_server.models import TERMINAL_STATUSES
from mcp_server.services import operations_persist

logger = logging.getLogger(__name__)

Snapshot = dict[str, Any]


class HistoryWriter:
    """Buffers operation snapshots and item errors and writes them in batches off the loop."""

    def __init__(self, *, interval: float, max_pending: int = 200_000) -> None:
        self._interval = interval
        self._max_pending = max_pending
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending: dict[UUID, Snapshot] = {}
        self._errors: list[dict[str, Any]] = []
        self._persisted: set[UUID] = set()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._waiters: list[Future[None]] = []
        self._thread: threading.Thread | None = None

    def record(self, snapshot: Snapshot) -> None:
        """Queue the latest state of an operation (replacing any unwritten earlier state)."""
        with self._lock:
            self._pending[snapshot["id"]] = snapshot
        self._ensure_started()

    def adopt(self, operation_id: UUID) -> None:
        """Note that an operation's row was inserted elsewhere: write its states as updates."""
        self._persisted.add(operation_id)

    def record_errors(self, rows: list[dict[str, Any]]) -> None:
        """Queue item-error rows (dicts of OperationError fields)."""
        with self._lock:
            self._errors.extend(rows)
        self._ensure_started()

    def flush_soon(self) -> "Future[None]":
        """Ask the writer thread to flush now; the future resolves once what is queued is written
        (or the write failed and was queued again)."""
        done: Future[None] = Future()
        with self._lock:
            self._waiters.append(done)
        self._ensure_started()
        self._wake.set()
        return done

    def flush(self) -> None:
        """Write everything queued so far, now, from the calling thread."""
        with self._lock:
            waiters, self._waiters = self._waiters, []
        try:
            self._flush()
        finally:
            for waiter in waiters:
                if not waiter.done():  # its asker may have stopped waiting (and cancelled it)
                    waiter.set_result(None)

    def _flush(self) -> None:
        with self._flush_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
                errors, self._errors = self._errors, []
            if not pending and not errors:
                return
            created = [s for key, s in pending.items() if key not in self._persisted]
            updated = [s for key, s in pending.items() if key in self._persisted]
            try:
                close_old_connections()
                operations_persist(created=created, updated=updated, errors=errors)
            except Exception:
                logger.exception(
                    "history write failed; keeping %d operations and %d item errors to retry",
                    len(pending),
                    len(errors),
                )
                self._requeue(pending, errors)
                return
            for key, snapshot in pending.items():
                if snapshot["status"] in TERMINAL_STATUSES:
                    self._persisted.discard(key)
                else:
                    self._persisted.add(key)

    def _requeue(self, pending: dict[UUID, Snapshot], errors: list[dict[str, Any]]) -> None:
        with self._lock:
            for key, snapshot in pending.items():
                self._pending.setdefault(key, snapshot)
            self._errors[:0] = errors
            overflow = len(self._errors) - self._max_pending
            if overflow > 0:
                logger.error("history backlog full: dropping %d oldest item errors", overflow)
                del self._errors[:overflow]

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
            self._thread.start()
        atexit.register(self.stop)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.wait(self._interval)
                self._wake.clear()
                self.flush()
            self.flush()
        finally:
            connections.close_all()

    def stop(self) -> None:
        """Stop the writer thread after a last flush (called at exit)."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        self.flush()


@lru_cache(maxsize=1)
def history_writer() -> HistoryWriter:
    """The process's history writer."""
    return HistoryWriter(interval=settings.MCP_HISTORY_FLUSH_INTERVAL)
