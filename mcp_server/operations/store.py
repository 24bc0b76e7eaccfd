"""The operation store: every guarded write of an operation's row, and the interface of the
batched history writer.

Each function here is one transition of the lifecycle (`mcp_server.operations.lifecycle`) as
one conditional UPDATE or INSERT: create, claim, heartbeat, reap, request-cancel, finish (the
batched `operations_persist`), and the cancels of revoked access. Every guard keeps a terminal
status final, so processes racing each other cannot revive an ended operation.

`OperationStore` is what the runtime (the runner, a running operation, the cluster node)
depends on for history; `mcp_server.runtime.history.HistoryWriter` implements it with a
background thread that writes batches through `operations_persist`.
"""

import contextlib
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import Future
from datetime import timedelta
from typing import Any, Literal, Protocol, TypeVar, cast
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, connection, models, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Q, QuerySet
from django.db.models.functions import Now
from django.utils import timezone

from mcp_server.history_insert import RowInserter, RowUpdater
from mcp_server.history_values import history_text
from mcp_server.models import ACTIVE_ROWS, Operation, OperationError
from mcp_server.operations.lifecycle import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    OperationStatus,
    Stop,
    StopReason,
)

Snapshot = dict[str, Any]
_Statement = TypeVar("_Statement", RowInserter, RowUpdater)


class OperationStore(Protocol):
    """Where the runtime sends operation history: the latest state of each operation and its
    item errors, written later in batches (never on the event loop)."""

    def start(self) -> None:
        """Get ready to write (at the process's start, so its first call does not wait)."""

    def keeps(self, operation_id: UUID) -> bool:
        """Whether states of this operation are written (history of plain calls may be off)."""

    def record(self, snapshot: Snapshot) -> None:
        """Queue the latest state of an operation (replacing any unwritten earlier state)."""

    def adopt(self, operation_id: UUID) -> None:
        """Note that the operation's row exists already (operation_create): write updates."""

    def record_errors(self, rows: list[dict[str, Any]]) -> None:
        """Queue item-error rows (dicts of OperationError fields)."""

    def unwritten_ids(self) -> set[UUID]:
        """Operations with a state not written yet: their rows must not look abandoned."""

    def flush_soon(self) -> "Future[None]":
        """Write what is queued soon; the future resolves once it is written (or requeued). It
        may be the one every asker since the last flush began got: never cancel it."""

    def stop(self) -> None:
        """Write what is left and stop (the process is exiting)."""

    def on_written(
        self, hook: Callable[[frozenset[UUID], frozenset[UUID], frozenset[UUID]], None]
    ) -> None:
        """Tell `hook` what each batch wrote: changed rows, new item errors, ended runs."""


# Fields of an operation that change after it was created.
MUTABLE_FIELDS = (
    "status",
    "progress",
    "total",
    "message",
    "started_at",
    "finished_at",
    "duration",
    "result_summary",
    "error",
    "error_count",
    "result",
    "runner",
    "input_requests",
)


# Columns only tasks and calls run elsewhere fill in. A plain call's row leaves them to their
# database defaults: every call inserts a row, and each column costs the history writer time.
# (`runner` is kept: history shows which process ran each call, placement being per tool.)
EXECUTION_FIELDS = (
    "is_task",
    "task_ttl",
    "progress_token",
    "result",
    "heartbeat_at",
    "cancel_requested",
    "token_id",
    "input_requests",
)


# Text columns of an operation, with their length.
_TEXT_COLUMNS = {
    f.attname: f.max_length
    for f in Operation._meta.concrete_fields
    if isinstance(f, models.CharField | models.TextField)
}
_ITEM_LENGTH = OperationError._meta.get_field("item").max_length
# How many ids one statement names (SQLite allows 999 variables in older builds).
_IDS_PER_STATEMENT = 500


def history_limits() -> dict[str, int]:
    """The byte caps of the columns history caps, from settings."""
    arguments = settings.MCP_HISTORY_MAX_ARGUMENTS_BYTES
    result = settings.MCP_HISTORY_MAX_RESULT_BYTES
    return {"arguments": arguments, "result": result, "result_summary": result, "error": result}


def _on_connection(key: str, make: Callable[[dict[str, int]], _Statement]) -> _Statement:
    """The statement `make` builds for this thread's connection and the caps in settings."""
    # One of each per connection object (a thread's connection may be replaced after an error)
    # and per set of caps (settings are read on every batch; tests change them).
    limits = history_limits()
    full_key = (key, tuple(sorted(limits.items())))
    statements: dict[Any, Any] | None = getattr(connection, "_mcp_statements", None)
    if statements is None:
        statements = {}
        setattr(connection, "_mcp_statements", statements)  # noqa: B010 (not of its type)
    statement = statements.get(full_key)
    if statement is None:
        statement = statements[full_key] = make(limits)
    return cast(_Statement, statement)


def _operation_inserter(*, plain: bool = False) -> RowInserter:
    leave_out = EXECUTION_FIELDS if plain else ()
    return _on_connection(
        f"insert {plain}",
        lambda limits: RowInserter(Operation, connection, leave_out=leave_out, limits=limits),
    )


def _operation_updater() -> RowUpdater:
    unless = ("status", [str(status) for status in TERMINAL_STATUSES])
    return _on_connection(
        "update",
        lambda limits: RowUpdater(
            Operation, connection, columns=MUTABLE_FIELDS, unless=unless, limits=limits
        ),
    )


def _item_error(row: dict[str, Any], limit: int) -> OperationError:
    return OperationError(
        operation_id=row["operation_id"],
        item=history_text(str(row["item"]), max_chars=_ITEM_LENGTH),
        message=history_text(str(row["message"]), max_bytes=limit),
        created_at=row["created_at"],
    )


def _is_plain(snapshot: dict[str, Any]) -> bool:
    return not snapshot.get("is_task") and snapshot.get("result") is None


def operations_persist(
    *,
    created: Iterable[dict[str, Any]],
    updated: Iterable[dict[str, Any]],
    errors: Iterable[dict[str, Any]],
) -> None:
    """Write one batch of history: new operations, changed ones, then item errors, in one
    transaction."""
    new_rows = list(created)
    changed = list(updated)
    error_rows = list(errors)
    plain = [row for row in new_rows if _is_plain(row)]
    if (
        connection.vendor == "postgresql"
        and not changed
        and not error_rows
        and len(plain) in (0, len(new_rows))
        and not any(row["status"] in ACTIVE_STATUSES for row in new_rows)
    ):
        # Rows of ended calls of one kind, the usual batch (and, on a worker, the write each
        # of its plain calls waits for before its end is announced): one statement, which is
        # a transaction of its own, so BEGIN and COMMIT would be two round trips for nothing.
        _commit_ended_rows_asynchronously()
        _operation_inserter(plain=bool(plain)).insert(new_rows)
        return
    with _synchronous_transaction():
        _persist_in_transaction(new_rows, plain, changed, error_rows)


# PostgreSQL connections whose session commits asynchronously (see below).
_ASYNCHRONOUS: "weakref.WeakSet[Any]" = weakref.WeakSet()


def _commit_ended_rows_asynchronously() -> None:
    """Let the rows of ended calls commit without waiting for the WAL's flush to disk
    (MCP_HISTORY_ASYNCHRONOUS_COMMIT): visible to every reader once written, as before; a crash
    of the database server may lose the last ~0.6 s of them (3 x wal_writer_delay), as a
    crash of a web process loses what its writer had not written yet. Every other write
    (task states, item errors, guarded transitions) commits synchronously."""
    if not settings.MCP_HISTORY_ASYNCHRONOUS_COMMIT:
        return
    connection.ensure_connection()
    if connection.connection not in _ASYNCHRONOUS:
        _set_synchronous_commit("SESSION", "off")
        _ASYNCHRONOUS.add(connection.connection)


@contextlib.contextmanager
def _synchronous_transaction() -> Iterator[None]:
    """A transaction that commits synchronously, on a connection that writes history too."""
    with transaction.atomic():
        if connection.connection in _ASYNCHRONOUS:
            _set_synchronous_commit("LOCAL", "on")
        yield


def _set_synchronous_commit(scope: Literal["SESSION", "LOCAL"], value: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"SET {scope} synchronous_commit TO {value}")


def _persist_in_transaction(
    new_rows: list[dict[str, Any]],
    plain: list[dict[str, Any]],
    updated: list[dict[str, Any]],
    errors: list[dict[str, Any]],
) -> None:
    if plain:
        _operation_inserter(plain=True).insert(plain)
    if len(plain) < len(new_rows):
        _operation_inserter().insert([row for row in new_rows if not _is_plain(row)])
    # Still running when first written (a long call, a lagging writer): stamped alive now, by
    # the database clock, so no reaper takes a row written late for a lost one.
    active = [row["id"] for row in new_rows if row["status"] in ACTIVE_STATUSES]
    for start in range(0, len(active), _IDS_PER_STATEMENT):
        chunk = active[start : start + _IDS_PER_STATEMENT]
        Operation.objects.filter(pk__in=chunk).update(heartbeat_at=Now())
    # In id order, as every multi-row write takes its locks (see _locked_in_order). An ended
    # operation never changes again: a task cancelled by its client, or work the reaper marked
    # interrupted, keeps that status whatever its runner reports later.
    changed = sorted(updated, key=lambda snapshot: snapshot["id"])
    if changed:
        _operation_updater().update(changed)
    limits = history_limits()
    error_rows = [_item_error(row, limits["result"]) for row in errors]
    if error_rows:
        OperationError.objects.bulk_create(error_rows, batch_size=1000)


@_synchronous_transaction()
def operation_set_aside(*, snapshot: dict[str, Any], inserted: bool, reason: str) -> None:
    """Record, as far as history can, a run whose state could not be stored: its row (if none
    exists yet) without the values that failed, and, when that state was its last, `failed`
    with `reason`. Raises when even that cannot be written (e.g. its tenant was deleted)."""
    terminal = snapshot["status"] in TERMINAL_STATUSES
    status = OperationStatus.FAILED if terminal else snapshot["status"]
    ended = {"finished_at": snapshot["finished_at"], "duration": snapshot["duration"]}
    if inserted:
        if terminal:
            Operation.objects.filter(pk=snapshot["id"]).exclude(
                status__in=TERMINAL_STATUSES
            ).update(status=status, error=reason, **ended)
        return
    Operation.objects.create(
        id=snapshot["id"],
        tenant_id=snapshot["tenant_id"],
        user_id=snapshot["user_id"],
        tool=history_text(str(snapshot["tool"]), max_chars=_TEXT_COLUMNS["tool"]),
        status=status,
        queued_at=snapshot["queued_at"],
        started_at=snapshot["started_at"],
        error=reason,
        is_task=bool(snapshot.get("is_task")),
        task_ttl=snapshot.get("task_ttl"),
        heartbeat_at=None if terminal else Now(),
        **ended,
    )


def operation_create(*, snapshot: dict[str, Any]) -> None:
    """Insert one operation row now (a task or worker call must exist before it is answered)."""
    with transaction.atomic():
        _operation_inserter().insert([snapshot])


def operation_claim(*, operation_id: UUID, runner: str) -> bool:
    """A worker takes a queued call: stamps it alive and names itself. False when the call
    ended meanwhile (cancelled, or interrupted because nobody took it in time): a hand-off
    message can outlive its call, and the work must then not run."""
    return (
        Operation.objects.filter(pk=operation_id, status=OperationStatus.QUEUED).update(
            heartbeat_at=Now(), runner=runner
        )
        > 0
    )


def operation_take_over(
    *, operation_id: UUID, runner: str, lost_by: str
) -> Literal["taken", "no row", "ended"]:
    """A worker runs again a call whose worker (`lost_by`) stopped responding (its tool is
    idempotent): stamps it alive, names itself and says so in the row's message ('taken').
    'ended' when the call ended meanwhile (reaped, cancelled): then it must not run. 'no row'
    for a plain call whose row its first worker had not written yet (it writes it with its
    end): it runs, and its row is inserted."""
    message = f"run again on {runner}: {lost_by} stopped responding"[:500]
    rows = Operation.objects.filter(pk=operation_id)
    if rows.filter(ACTIVE_ROWS).update(heartbeat_at=Now(), runner=runner, message=message):
        return "taken"
    return "ended" if rows.exists() else "no row"


def operation_end_unrecorded(*, snapshot: dict[str, Any], stop: Stop) -> bool:
    """End as `stop` says a plain call handed to a worker, whose row may not exist yet (the
    worker writes it with the call's end): the active row is updated, or the ended row
    inserted when there is none (fields `snapshot` lacks take their defaults). False when
    the call had ended already."""
    if operation_stop(operation_id=snapshot["id"], stop=stop):
        return True
    now = timezone.now()
    queued_at = snapshot.get("queued_at") or now
    ended = {
        **{f.attname: f.get_default() for f in Operation._meta.concrete_fields},
        **snapshot,
        "queued_at": queued_at,
        "status": stop.status,
        "finished_at": now,
        "duration": now - queued_at,
        "error": stop.error,
        "heartbeat_at": None,
    }
    try:
        with transaction.atomic():
            if Operation.objects.filter(pk=snapshot["id"]).exists():
                return False
            _operation_inserter().insert([ended])
    except IntegrityError:
        return False  # its worker wrote the row meanwhile
    return True


def _locked_in_order(queryset: QuerySet[Operation], limit: int = 10_000) -> list[UUID]:
    """Lock the rows of `queryset` in id order, skipping rows another writer holds.

    Every multi-row write here (heartbeat, reaper, the history writer's updates) takes its
    locks in id order, so they cannot deadlock one another; a row skipped now is being
    written, so it is alive, and the next round gets it. (SQLite has no row locks: a no-op.)
    """
    return list(
        queryset.select_for_update(skip_locked=True)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )


@transaction.atomic
def operations_heartbeat(*, operation_ids: list[UUID], runner: str) -> dict[UUID, tuple[str, bool]]:
    """Stamp the running process's operations alive (database clock); returns each existing
    row's status and whether a cancel was requested, so the runner can act on both."""
    seen: dict[UUID, tuple[str, bool]] = {}
    for start in range(0, len(operation_ids), _IDS_PER_STATEMENT):
        chunk = operation_ids[start : start + _IDS_PER_STATEMENT]
        alive = _locked_in_order(Operation.objects.filter(ACTIVE_ROWS, pk__in=chunk))
        if alive:
            Operation.objects.filter(pk__in=alive).update(heartbeat_at=Now(), runner=runner)
        rows = Operation.objects.filter(pk__in=chunk).values_list(
            "id", "status", "cancel_requested"
        )
        seen.update((key, (status, cancel)) for key, status, cancel in rows)
    return seen


def _ago(seconds: float) -> ExpressionWrapper:
    return ExpressionWrapper(Now() - timedelta(seconds=seconds), output_field=DateTimeField())


@transaction.atomic
def operations_reap_lost(
    *,
    lost_after: float,
    unclaimed_after: float,
    live_runners: Collection[str] = (),
    live_lost_after: float = 0,
) -> list[UUID]:
    """Mark interrupted the queued or running operations that nobody will finish.

    Two cases: a process that ran an operation stopped heartbeating for `lost_after` seconds
    (`live_lost_after` for those of `live_runners`: workers stamped alive in Redis, whose rows
    a late heartbeat must not end while they run them); or no process claimed a handed-over
    call for `unclaimed_after` seconds (by then its channel-layer message has expired: nobody
    can take it any more). Several processes may run this at once: the conditional updates
    make it idempotent.
    """
    active = Operation.objects.filter(ACTIVE_ROWS)
    silent = Q(heartbeat_at__isnull=False, heartbeat_at__lt=_ago(lost_after))
    lost = Stop(StopReason.LOST_RUNNER)
    cases: list[tuple[Q, Stop]] = []
    if live_runners:
        runners = list(live_runners)
        cases.append((silent & ~Q(runner__in=runners), lost))
        patient = Q(heartbeat_at__lt=_ago(max(live_lost_after, lost_after)), runner__in=runners)
        cases.append((patient, lost))
    else:
        cases.append((silent, lost))
    cases.append(
        (
            Q(heartbeat_at__isnull=True, queued_at__lt=_ago(unclaimed_after)),
            Stop(StopReason.UNCLAIMED),
        )
    )
    reaped: list[UUID] = []
    now = timezone.now()
    for condition, stop in cases:
        keys = _locked_in_order(active.filter(condition), limit=1000)
        if keys:
            active.filter(condition, pk__in=keys).update(
                status=stop.status,
                finished_at=now,
                duration=now - F("queued_at"),
                error=stop.error,
            )
            reaped += keys
    return reaped


def operation_request_cancel(*, operation_id: UUID, as_task: bool) -> bool:
    """Record a cancel request durably; a task turns `cancelled` at once (the MCP tasks rule).

    Returns False when the operation had already ended.
    """
    active = Operation.objects.filter(ACTIVE_ROWS, pk=operation_id)
    if not as_task:
        return active.update(cancel_requested=True) > 0
    now = timezone.now()
    stop = Stop(StopReason.CANCEL_REQUESTED)
    return (
        active.update(
            cancel_requested=True,
            status=stop.status,
            finished_at=now,
            duration=now - F("queued_at"),
            error=stop.error,
        )
        > 0
    )


def operation_stop(*, operation_id: UUID, stop: Stop) -> int:
    """End an operation that has not ended, as `stop` says (e.g. it could not be handed to a
    worker); returns rows changed."""
    now = timezone.now()
    return Operation.objects.filter(ACTIVE_ROWS, pk=operation_id).update(
        status=stop.status,
        finished_at=now,
        duration=now - F("queued_at"),
        error=stop.error,
    )


@transaction.atomic
def tasks_cancel_revoked(*, field: str, ids: Iterable[int], stop: Stop) -> list[UUID]:
    """End as `stop` says (access revoked) the active tasks of revoked access: those
    whose `field` (token_id, user_id or tenant_id) is in `ids`. The processes running them
    stop them at their next heartbeat round, should the announcement be lost."""
    if field not in ("token_id", "user_id", "tenant_id"):
        raise ValueError(f"cannot cancel tasks by {field!r}")
    active = Operation.objects.filter(ACTIVE_ROWS, is_task=True, **{f"{field}__in": list(ids)})
    keys = _locked_in_order(active)
    if keys:
        now = timezone.now()
        active.filter(pk__in=keys).update(
            status=stop.status,
            cancel_requested=True,
            finished_at=now,
            duration=now - F("queued_at"),
            error=stop.error,
        )
    return keys
