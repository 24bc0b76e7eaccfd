"""History written by a process of its own: the `OperationStore` the event loop's process
holds, and the writer process it feeds through a pipe.

The event loop only keeps the latest snapshot of each operation (a dict assignment); a sender
thread pickles what is queued every flush interval (so a call that starts and ends within one
interval costs one row) and sends it as one numbered batch (`history_batches.py`). The
writer process (`python -m mcp_server.runtime.history_child`, its loop in
`history_serve.py`) writes every batch it has received in one go through a `HistoryWriter`
of its own (same transactions, set-aside and retry rules) and answers with what it wrote
and up to which batch; only then does this process forget a batch.

- A crashed writer is restarted and every batch it had not confirmed is sent again; the new
  writer looks up which of their rows exist already and writes those as updates, so a batch
  written twice changes nothing (terminal is final).
- `stop` (SIGTERM, exit) sends what is left, closes the pipe and waits for the writer to write
  it and exit; what a dead writer leaves is written from this process instead. The writer
  ignores SIGTERM and SIGINT (the process group's signal reaches it too) and drains on EOF.
- Queued states and item errors are bounded (MCP_HISTORY_QUEUE_LIMIT): past it, states of
  operations not queued yet and new item errors are dropped, logged and counted.
"""

import atexit
import logging
import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from multiprocessing.connection import Connection
from typing import Any
from uuid import UUID

from mcp_server import metrics
from mcp_server.log_throttle import ThrottledLog
from mcp_server.operations.lifecycle import TERMINAL_STATUSES
from mcp_server.operations.store import Snapshot
from mcp_server.runtime.history_batches import (
    DRAIN_TIMEOUT,
    Batch,
    encode_batch,
    history_caps,
)
from mcp_server.runtime.history_child import parse_cpus
from mcp_server.runtime.history_serve import BatchWriter

logger = logging.getLogger(__name__)

WrittenHook = Callable[[frozenset[UUID], frozenset[UUID], frozenset[UUID]], None]
# A writer that dies sooner than this after its start is restarted only after this long.
RESTART_BACKOFF = 1.0
# What the writer process runs (it imports Django only once it has its settings).
CHILD_MODULE = "mcp_server.runtime.history_child"


class HistoryProcess:
    """The event loop's side of the writer process: queues states, sends them in batches,
    forgets a batch once the writer says it is written (the process's `OperationStore`)."""

    def __init__(
        self,
        *,
        interval: float,
        queue_limit: int,
        calls: bool = True,
        cpus: str = "",
        child_settings: Callable[[], dict[str, Any]],
    ) -> None:
        if queue_limit < 1:
            raise ValueError(f"MCP_HISTORY_QUEUE_LIMIT must be at least 1, not {queue_limit}")
        if cpus:
            parse_cpus(cpus)  # a bad setting fails at start-up, not in the writer
        self._interval = interval
        self._queue_limit = queue_limit
        self._calls = calls
        self._cpus = cpus
        self._child_settings = child_settings
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._pending: dict[UUID, Snapshot] = {}
        self._errors: list[dict[str, Any]] = []
        self._adopt: list[UUID] = []
        self._adopted: set[UUID] = set()
        self._unacked: dict[int, Batch] = {}
        self._unacked_rows = 0
        self._seq = 0
        self._tried = 0
        self._waiters: list[tuple[int, Future[None]]] = []
        self._dropped = ThrottledLog(logger, logging.ERROR)
        self._on_written: WrittenHook | None = None
        self._wake = threading.Event()
        self._closing = False
        self._started = False
        self._process: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._outgoing: Connection | None = None
        self._incoming: Connection | None = None
        self._sender: threading.Thread | None = None
        self._reader: threading.Thread | None = None

    @classmethod
    def from_settings(cls) -> "HistoryProcess":
        """A writer process configured from settings."""
        from django.conf import settings

        return cls(
            interval=settings.MCP_HISTORY_FLUSH_INTERVAL,
            queue_limit=settings.MCP_HISTORY_QUEUE_LIMIT,
            calls=settings.MCP_HISTORY_ENABLED,
            cpus=settings.MCP_HISTORY_WRITER_CPUS,
            child_settings=writer_settings,
        )

    @property
    def pid(self) -> int | None:
        """The writer process's id (None before it started)."""
        return self._process.pid if self._process is not None else None

    def on_written(self, hook: WrittenHook) -> None:
        """Tell `hook`, on the reader thread, what each batch wrote (resource updates)."""
        self._on_written = hook

    def start(self) -> None:
        """Start the writer process now (it takes a second to import Django; else the first
        state queued starts it)."""
        self._ensure_started()

    def keeps(self, operation_id: UUID) -> bool:
        """Whether states of this operation are written: with history of plain calls off,
        only those of rows made elsewhere (tasks, handed-over calls)."""
        return self._calls or operation_id in self._adopted

    def record(self, snapshot: Snapshot) -> None:
        """Queue the latest state of an operation (replacing any unsent earlier state)."""
        key = snapshot["id"]
        if not self.keeps(key):
            return
        with self._lock:
            if key not in self._pending and not self._room():
                self._drop(1)
                return
            self._pending[key] = snapshot
        if snapshot["status"] in TERMINAL_STATUSES:
            self._adopted.discard(key)
        self._ensure_started()

    def adopt(self, operation_id: UUID) -> None:
        """Note that an operation's row was inserted elsewhere: write its states as updates."""
        with self._lock:
            self._adopted.add(operation_id)
            self._adopt.append(operation_id)

    def record_errors(self, rows: list[dict[str, Any]]) -> None:
        """Queue item-error rows (dicts of OperationError fields)."""
        if not self._calls:
            rows = [row for row in rows if row["operation_id"] in self._adopted]
        if not rows:
            return
        with self._lock:
            if not self._room():
                self._drop(len(rows))
                return
            self._errors.extend(rows)
        self._ensure_started()

    def unwritten_ids(self) -> set[UUID]:
        """Operations with a state not written yet: their rows must not look abandoned."""
        with self._lock:
            ids = set(self._pending)
            for batch in self._unacked.values():
                ids.update(snapshot["id"] for snapshot in batch.snapshots)
            return ids

    def flush_soon(self) -> "Future[None]":
        """Send what is queued now; the future resolves once the writer has written it (or
        tried, and kept it to retry)."""
        done: Future[None] = Future()
        with self._lock:
            queued = self._pending or self._errors or self._adopt
            target = self._seq + 1 if queued else self._seq
            if target <= self._tried:
                done.set_result(None)
                return done
            self._waiters.append((target, done))
        self._ensure_started()
        self._wake.set()
        return done

    def stop(self) -> None:
        """Send what is left, let the writer write it and exit (called at exit)."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            started = self._started
        if not started:
            return
        self._wake.set()
        if self._sender is not None:
            self._sender.join(timeout=DRAIN_TIMEOUT)
        with self._send_lock:
            if self._outgoing is not None:
                self._outgoing.close()  # EOF: the writer drains and exits
        if self._reader is not None:
            self._reader.join(timeout=DRAIN_TIMEOUT)
        process = self._process
        if process is not None:
            try:
                process.wait(timeout=DRAIN_TIMEOUT)
            except subprocess.TimeoutExpired:
                logger.error("history writer did not exit in %.0f s; killing it", DRAIN_TIMEOUT)
                process.kill()
                process.wait()
        self._write_left_here()

    # --- the queue ---------------------------------------------------------------------------

    def _room(self) -> bool:
        return len(self._pending) + len(self._errors) + self._unacked_rows < self._queue_limit

    def _drop(self, count: int) -> None:
        # Under the lock: counted, and logged at most once a second.
        self._dropped.occurred(
            "history queue full (%d states and item errors, MCP_HISTORY_QUEUE_LIMIT): dropped",
            self._queue_limit,
            count=count,
        )
        metrics.history_failed("full", count)

    def _take_batch(self) -> Batch | None:
        with self._lock:
            if not (self._pending or self._errors or self._adopt):
                return None
            self._seq += 1
            batch = Batch(
                seq=self._seq,
                snapshots=list(self._pending.values()),
                errors=self._errors,
                adopted=self._adopt,
            )
            self._pending, self._errors, self._adopt = {}, [], []
            self._unacked[batch.seq] = batch
            self._unacked_rows += batch.rows()
            return batch

    def _confirm(self, written: int, tried: int) -> list[Batch]:
        """Forget the batches up to `written` (returned), resolve the waits up to `tried`."""
        confirmed = []
        with self._lock:
            for seq in [seq for seq in self._unacked if seq <= written]:
                confirmed.append(self._unacked.pop(seq))
                self._unacked_rows -= confirmed[-1].rows()
            self._tried = max(self._tried, tried)
            due = [done for target, done in self._waiters if target <= self._tried]
            self._waiters = [(t, done) for t, done in self._waiters if t > self._tried]
        for done in due:
            if not done.done():  # its asker may have stopped waiting (and cancelled it)
                done.set_result(None)
        return confirmed

    # --- the writer process ------------------------------------------------------------------

    def _ensure_started(self) -> None:
        if self._started:
            return
        with self._lock:
            if self._started or self._closing:
                return
            self._started = True
        with self._send_lock:
            self._spawn(restarted=False)
        self._sender = threading.Thread(target=self._send_loop, name="history-sender", daemon=True)
        self._reader = threading.Thread(target=self._read_loop, name="history-reader", daemon=True)
        self._sender.start()
        self._reader.start()
        atexit.register(self.stop)

    def _spawn(self, *, restarted: bool) -> None:
        """Start a writer process and greet it (under the send lock)."""
        from django.conf import settings

        to_child, from_parent = os.pipe()[::-1]  # (write end, read end)
        from_child, to_parent = os.pipe()
        command = [sys.executable, "-m", CHILD_MODULE, str(from_parent), str(to_parent)]
        self._process = subprocess.Popen(
            command,
            pass_fds=(from_parent, to_parent),
            cwd=settings.BASE_DIR,
            stdin=subprocess.DEVNULL,
        )
        os.close(from_parent)
        os.close(to_parent)
        self._started_at = time.monotonic()
        self._outgoing = Connection(to_child, readable=False)
        self._incoming = Connection(from_child, writable=False)
        hello = {
            "settings": self._child_settings(),
            "interval": self._interval,
            "cpus": self._cpus,
            "restarted": restarted,
        }
        self._outgoing.send_bytes(pickle.dumps(hello, pickle.HIGHEST_PROTOCOL))

    def _send(self, batch: Batch) -> None:
        batch.limits = history_caps()
        payload = encode_batch(batch)
        with self._send_lock:
            try:
                if self._outgoing is not None and not self._outgoing.closed:
                    self._outgoing.send_bytes(payload)
            except OSError:
                pass  # the writer died: the reader restarts it and sends this batch again

    def _send_loop(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            closing = self._closing
            batch = self._take_batch()
            if batch is not None:
                self._send(batch)
            if closing:
                return

    def _read_loop(self) -> None:
        while True:
            incoming = self._incoming
            try:
                assert incoming is not None
                message = pickle.loads(incoming.recv_bytes())
            except (EOFError, OSError):
                if self._closing:
                    return
                self._restart()
                continue
            written, tried = message
            self._tell_written(self._confirm(written, tried))

    def _tell_written(self, batches: list[Batch]) -> None:
        hook = self._on_written
        if hook is None or not batches:
            return
        snapshots = [snapshot for batch in batches for snapshot in batch.snapshots]
        changed = frozenset(snapshot["id"] for snapshot in snapshots)
        errors = frozenset(row["operation_id"] for batch in batches for row in batch.errors)
        ended = frozenset(s["id"] for s in snapshots if s["status"] in TERMINAL_STATUSES)
        try:
            hook(changed, errors, ended)
        except Exception:
            logger.exception("could not announce what history wrote")

    def _restart(self) -> None:
        """The writer died: start another and send it every batch not confirmed."""
        process = self._process
        code = process.wait() if process is not None else None
        metrics.history_failed("writer_lost")
        with self._lock:
            held = sorted(self._unacked.values(), key=lambda batch: batch.seq)
        logger.error(
            "history writer process exited (%s); restarting it and sending again the %d "
            "batches it had not confirmed",
            code,
            len(held),
        )
        if time.monotonic() - self._started_at < RESTART_BACKOFF:
            time.sleep(RESTART_BACKOFF)  # a writer that cannot start must not spin
        with self._send_lock:
            if self._closing:
                return
            if self._incoming is not None:
                self._incoming.close()
            if self._outgoing is not None:
                self._outgoing.close()
            self._spawn(restarted=True)
            assert self._outgoing is not None
            for batch in held:
                self._outgoing.send_bytes(encode_batch(batch))

    def _write_left_here(self) -> None:
        """Write, from this process, what the writer did not confirm (it died at exit)."""
        with self._lock:
            left = sorted(self._unacked.values(), key=lambda batch: batch.seq)
            self._unacked, self._unacked_rows = {}, 0
        if not left:
            return
        logger.error("history writer left %d batches; writing them from this process", len(left))
        writer = BatchWriter(interval=self._interval, restarted=True)
        for batch in left:
            writer.take(batch)
        writer.write()


# --- the writer process's side -------------------------------------------------------------


def writer_settings() -> dict[str, Any]:
    """The settings the writer process takes from this one: its database (a test database
    has another name than the environment's) and the history caps."""
    from django.db import connections

    return {
        "DATABASES": {"default": dict(connections["default"].settings_dict)},
        "limits": history_caps(),
    }
