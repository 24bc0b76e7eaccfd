"""Batched, non-blocking history writes: the implementation of `OperationStore`.

The event loop never waits for the database: the runtime hands snapshots of operations and
item errors to a HistoryWriter, and a background thread writes them in one transaction every
flush interval (default 0.25 s, so a finished call's row exists well within 1 s). A call that
starts and ends between two flushes costs one row insert; so does one that ends by the flush
after the one it started before: the writer's own rounds hold back, once, the first state of a
call that is still running (its row then appears one interval later; an end is never held). A
clean exit, and every flush asked for, writes everything.

One bad row never blocks another: a batch the database refuses is split in halves until the
rows it refuses stand alone; each of those is set aside (logged with its operation id, its run
recorded `failed` with the reason where possible) and every other row is written. A batch that
fails because the database itself is unavailable is kept whole and retried.
"""

import atexit
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connections

from mcp_server import metrics
from mcp_server.operations.history_rows import operation_set_aside, operations_persist
from mcp_server.operations.lifecycle import TERMINAL_STATUSES
from mcp_server.operations.store import OperationStore, Snapshot

logger = logging.getLogger(__name__)

# Told on the writer's thread what a batch wrote: operations whose row changed, operations
# with new item errors, operations that ended.
WrittenHook = Callable[[frozenset[UUID], frozenset[UUID], frozenset[UUID]], None]
# One entry of a batch: an operation row to insert, one to update, or an item error.
CREATE, UPDATE, ITEM_ERROR = "create", "update", "item error"
# Seconds between checks of the writer's database connection (stale, broken, past its age).
_CHECK_EVERY = 1.0
Entry = tuple[str, dict[str, Any]]


def _unavailable(exc: BaseException) -> bool:
    """Whether a write failed because of the database (down, locked, connection lost) rather
    than because of what was written: then nothing is set aside, everything is retried."""
    return isinstance(exc, OperationalError | InterfaceError)


def _persist(entries: list[Entry]) -> None:
    operations_persist(
        created=[row for kind, row in entries if kind == CREATE],
        updated=[row for kind, row in entries if kind == UPDATE],
        errors=[row for kind, row in entries if kind == ITEM_ERROR],
    )


class HistoryWriter:
    """Buffers operation snapshots and item errors and writes them in batches off the loop
    (the process's `OperationStore`)."""

    def __init__(
        self,
        *,
        interval: float,
        max_pending: int = 200_000,
        calls: bool = True,
        threaded: bool = True,
    ) -> None:
        self._interval = interval
        # False: no thread of its own, its owner calls flush (the writer process's loop).
        self._threaded = threaded
        # False (MCP_HISTORY_ENABLED off): only operations whose row exists elsewhere are written.
        self._calls = calls
        self._max_pending = max_pending
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending: dict[UUID, Snapshot] = {}
        self._errors: list[dict[str, Any]] = []
        self._persisted: set[UUID] = set()
        # Taken from _pending and being written now.
        self._writing: frozenset[UUID] = frozenset()
        # Operations whose row could not be written at all: their later states are dropped.
        self._unstorable: set[UUID] = set()
        # Running calls whose first state the last round held back: the next round writes it.
        self._held: set[UUID] = set()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._waiters: list[Future[None]] = []
        self._thread: threading.Thread | None = None
        # When the oldest state not yet written was recorded (monotonic; the writer's lag).
        self._oldest = 0.0
        self._on_written: WrittenHook | None = None
        # When the writer's connection was last checked (close_old_connections).
        self._checked_at = -math.inf

    def on_written(self, hook: WrittenHook) -> None:
        """Tell `hook`, on the writer's thread, what each batch wrote (resource updates)."""
        self._on_written = hook

    def start(self) -> None:
        """Start the writer thread (else started by the first state queued)."""
        self._ensure_started()

    def keeps(self, operation_id: UUID) -> bool:
        """Whether states of this operation are written: with history of plain calls off,
        only those of rows made elsewhere (tasks, handed-over calls)."""
        return self._calls or operation_id in self._persisted

    def record(self, snapshot: Snapshot) -> None:
        """Queue the latest state of an operation (replacing any unwritten earlier state)."""
        if not self.keeps(snapshot["id"]):
            return
        with self._lock:
            if not self._pending and not self._errors:
                self._oldest = time.monotonic()
            self._pending[snapshot["id"]] = snapshot
        self._ensure_started()

    def adopt(self, operation_id: UUID) -> None:
        """Note that an operation's row was inserted elsewhere: write its states as updates."""
        self._persisted.add(operation_id)

    def record_errors(self, rows: list[dict[str, Any]]) -> None:
        """Queue item-error rows (dicts of OperationError fields)."""
        if not self._calls:
            rows = [row for row in rows if row["operation_id"] in self._persisted]
            if not rows:
                return
        with self._lock:
            if not self._pending and not self._errors:
                self._oldest = time.monotonic()
            self._errors.extend(rows)
        self._ensure_started()

    def unwritten_ids(self) -> set[UUID]:
        """Operations with a state not written yet: their rows must not look abandoned."""
        with self._lock:
            return set(self._pending) | self._writing

    def flush_soon(self) -> "Future[None]":
        """Ask the writer thread to flush now; the future resolves once what is queued is written
        (or the write failed and was queued again). Every asker until the flush begins gets the
        same future: never cancel it."""
        with self._lock:
            if not self._waiters:
                self._waiters.append(Future())
            done = self._waiters[0]
        self._ensure_started()
        self._wake.set()
        return done

    def flush(self, *, hold: bool = False) -> None:
        """Write what is queued so far, now, from the calling thread; with `hold` (the writer
        thread's own rounds), except the first state of each call still running, once."""
        with self._lock:
            waiters, self._waiters = self._waiters, []
        try:
            self._flush(hold=hold and not waiters)
        finally:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _flush(self, *, hold: bool) -> None:
        with self._flush_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
                errors, self._errors = self._errors, []
                oldest = self._oldest
                held = self._hold_back(pending, errors) if hold else {}
                self._pending, self._held = held, set(held)
                self._writing = frozenset(pending)
                # What is held back waits since before this round: its lag is still counted.
                self._oldest = oldest if held else time.monotonic()
            try:
                self._write(pending, errors)
            finally:
                with self._lock:
                    self._writing = frozenset()
                    backlog = len(self._pending) + len(self._errors)
            if pending or errors:
                metrics.history_written(time.monotonic() - oldest, backlog)
                self._tell_written(pending, errors)

    def _hold_back(
        self, pending: dict[UUID, Snapshot], errors: list[dict[str, Any]]
    ) -> dict[UUID, Snapshot]:
        """Take from `pending` the first states of running calls not held before: most of them
        end before the next round, and their row is then written once, with its end. A call
        with item errors in this round is not held: its errors need its row."""
        with_errors = {row["operation_id"] for row in errors}
        held = {
            key: snapshot
            for key, snapshot in pending.items()
            if snapshot["status"] not in TERMINAL_STATUSES
            and key not in self._persisted
            and key not in self._held
            and key not in with_errors
        }
        for key in held:
            del pending[key]
        return held

    def _tell_written(self, pending: dict[UUID, Snapshot], errors: list[dict[str, Any]]) -> None:
        hook = self._on_written
        if hook is None:
            return
        ended = frozenset(key for key, s in pending.items() if s["status"] in TERMINAL_STATUSES)
        try:
            hook(frozenset(pending), frozenset(row["operation_id"] for row in errors), ended)
        except Exception:
            logger.exception("could not announce what history wrote")

    def _write(self, pending: dict[UUID, Snapshot], errors: list[dict[str, Any]]) -> None:
        if self._unstorable:
            pending, errors = self._drop_unstorable(pending, errors)
        if not pending and not errors:
            return
        entries: list[Entry] = [
            (CREATE, s) for key, s in pending.items() if key not in self._persisted
        ]
        entries += [(UPDATE, s) for key, s in pending.items() if key in self._persisted]
        entries += [(ITEM_ERROR, row) for row in errors]
        try:
            self._persist_on_a_sound_connection(entries)
        except Exception as exc:
            if _unavailable(exc):
                metrics.history_failed("unavailable")
                logger.exception(
                    "history write failed; keeping %d operations and %d item errors to retry",
                    len(pending),
                    len(errors),
                )
                self._requeue(pending, errors)
                return
            logger.warning(
                "history refused a batch of %d rows (%s); writing it in parts",
                len(entries),
                type(exc).__name__,
            )
            left = self._write_in_parts(entries)
            if left:
                keys = {row["id"] for kind, row in left if kind != ITEM_ERROR}
                self._requeue(
                    {key: pending[key] for key in keys},
                    [row for kind, row in left if kind == ITEM_ERROR],
                )
                pending = {key: s for key, s in pending.items() if key not in keys}
        for key, snapshot in pending.items():
            if key in self._unstorable:
                continue
            if snapshot["status"] in TERMINAL_STATUSES:
                self._persisted.discard(key)
            else:
                self._persisted.add(key)

    def _persist_on_a_sound_connection(self, entries: list[Entry]) -> None:
        # Django's check of a connection (close_old_connections: stale, broken, past its age)
        # is a round trip, and a worker flushes for each of its plain calls: a connection
        # checked within _CHECK_EVERY is used unchecked, and checked only if the write fails
        # for want of the database (the server may have dropped it since), then tried again.
        if time.monotonic() - self._checked_at < _CHECK_EVERY:
            try:
                _persist(entries)
                return
            except Exception as exc:
                if not _unavailable(exc):
                    raise
        close_old_connections()
        self._checked_at = time.monotonic()
        _persist(entries)

    def _write_in_parts(self, entries: list[Entry]) -> list[Entry]:
        """Write `entries`, halving every part the database refuses, and setting aside the
        single rows it refuses; returns what is left when the database became unavailable.

        Parts are written in order (operation rows before the item errors that name them).
        """
        parts = [entries[: len(entries) // 2], entries[len(entries) // 2 :]]
        while parts:
            part = parts.pop(0)
            if not part:
                continue
            try:
                _persist(part)
            except Exception as exc:
                if _unavailable(exc):
                    metrics.history_failed("unavailable")
                    logger.exception("history write failed; keeping the rest to retry")
                    return [entry for rest in [part, *parts] for entry in rest]
                if len(part) == 1:
                    self._set_aside(part[0], exc)
                else:
                    half = len(part) // 2
                    parts[:0] = [part[:half], part[half:]]
        return []

    def _set_aside(self, entry: Entry, exc: Exception) -> None:
        kind, row = entry
        key = row["operation_id"] if kind == ITEM_ERROR else row["id"]
        metrics.history_failed("set_aside")
        logger.error(
            "history could not store %s of operation %s (%s: %s); set aside",
            kind,
            key,
            type(exc).__name__,
            exc,
        )
        if kind == ITEM_ERROR:
            return
        reason = (
            f"history could not store this run ({type(exc).__name__}); "
            "the server log names this operation"
        )
        try:
            operation_set_aside(snapshot=row, inserted=kind == UPDATE, reason=reason)
        except Exception as again:
            logger.error(
                "history could not record operation %s at all (%s: %s); its states are dropped",
                key,
                type(again).__name__,
                again,
            )
            if kind == CREATE and row["status"] not in TERMINAL_STATUSES:
                self._unstorable.add(key)
            return
        if kind == CREATE and row["status"] not in TERMINAL_STATUSES:
            self._persisted.add(key)

    def _drop_unstorable(
        self, pending: dict[UUID, Snapshot], errors: list[dict[str, Any]]
    ) -> tuple[dict[UUID, Snapshot], list[dict[str, Any]]]:
        dropped = {key: s for key, s in pending.items() if key in self._unstorable}
        kept_errors = [row for row in errors if row["operation_id"] not in self._unstorable]
        for key, snapshot in dropped.items():
            if snapshot["status"] in TERMINAL_STATUSES:
                self._unstorable.discard(key)  # its last state: nothing more will come
        kept = {key: s for key, s in pending.items() if key not in dropped}
        return kept, kept_errors

    def _requeue(self, pending: dict[UUID, Snapshot], errors: list[dict[str, Any]]) -> None:
        with self._lock:
            for key, snapshot in pending.items():
                self._pending.setdefault(key, snapshot)
            self._errors[:0] = errors
            overflow = len(self._errors) - self._max_pending
            if overflow > 0:
                logger.error("history backlog full: dropping %d oldest item errors", overflow)
                del self._errors[:overflow]

    def backlog(self) -> int:
        """How many states and item errors wait to be written (kept after a failed write)."""
        with self._lock:
            return len(self._pending) + len(self._errors)

    def _ensure_started(self) -> None:
        if self._thread is not None or not self._threaded:
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
                woken = self._wake.wait(self._interval)
                self._wake.clear()
                # A round of its own (not asked for, not the last) may hold states back.
                self.flush(hold=not woken and not self._stop.is_set())
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


def writer_from_settings() -> OperationStore:
    """A history writer for this process, configured from settings: a thread of this one
    (MCP_HISTORY_WRITER "thread", the default) or a writer process of its own ("process")."""
    if settings.MCP_HISTORY_WRITER == "process":
        from mcp_server.runtime.history_process import HistoryProcess

        return HistoryProcess.from_settings()
    return HistoryWriter(
        interval=settings.MCP_HISTORY_FLUSH_INTERVAL, calls=settings.MCP_HISTORY_ENABLED
    )
