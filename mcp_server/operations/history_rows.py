"""History's rows as the writer writes them: the statements (one inserter and one updater per
connection and caps), a batch of the history writer (`operations_persist`), a row it sets aside,
and how those commit on PostgreSQL.

A batch is one transaction, except one that is only rows of ended calls: one statement, a
transaction of its own, committed without waiting for the disk there
(MCP_HISTORY_ASYNCHRONOUS_COMMIT). An ended operation never changes again: every update is
guarded by its status (`RowUpdater`'s `unless`).
"""

import contextlib
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, TypeVar, cast

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models.functions import Now

from mcp_server.history_insert import RowInserter, RowUpdater
from mcp_server.history_values import history_text
from mcp_server.models import Operation, OperationError
from mcp_server.operations.lifecycle import ACTIVE_STATUSES, TERMINAL_STATUSES, OperationStatus

_Statement = TypeVar("_Statement", RowInserter, RowUpdater)


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
IDS_PER_STATEMENT = 500


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


def operation_inserter(*, plain: bool = False) -> RowInserter:
    """The statement that inserts operation rows (a plain call's without EXECUTION_FIELDS), for
    this thread's connection."""
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
        operation_inserter(plain=bool(plain)).insert(new_rows)
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
        operation_inserter(plain=True).insert(plain)
    if len(plain) < len(new_rows):
        operation_inserter().insert([row for row in new_rows if not _is_plain(row)])
    # Still running when first written (a long call, a lagging writer): stamped alive now, by
    # the database clock, so no reaper takes a row written late for a lost one.
    active = [row["id"] for row in new_rows if row["status"] in ACTIVE_STATUSES]
    for start in range(0, len(active), IDS_PER_STATEMENT):
        chunk = active[start : start + IDS_PER_STATEMENT]
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
