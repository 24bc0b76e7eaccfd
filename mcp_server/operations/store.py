"""The operation store: every guarded write of an operation's row, and the interface of the
batched history writer.

Each function here is one transition of the lifecycle (`mcp_server.operations.lifecycle`) as
one conditional UPDATE or INSERT: create, claim, heartbeat, reap, request-cancel, finish (the
batched `operations_persist`, in `history_rows`), and the cancels of revoked access. Every
guard keeps a terminal status final, so processes racing each other cannot revive an ended
operation.

`OperationStore` is what the runtime (the runner, a running operation, the cluster node)
depends on for history; `mcp_server.runtime.history.HistoryWriter` implements it with a
background thread that writes batches through `history_rows.operations_persist`.
"""

from collections.abc import Callable, Collection, Iterable
from concurrent.futures import Future
from datetime import timedelta
from typing import Any, Literal, Protocol
from uuid import UUID

from django.db import IntegrityError, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Q, QuerySet
from django.db.models.functions import Now
from django.utils import timezone

from mcp_server.models import ACTIVE_ROWS, Operation
from mcp_server.operations.history_rows import IDS_PER_STATEMENT, operation_inserter
from mcp_server.operations.lifecycle import (
    OperationStatus,
    Stop,
    StopReason,
)

Snapshot = dict[str, Any]


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


def operation_create(*, snapshot: dict[str, Any]) -> None:
    """Insert one operation row now (a task or worker call must exist before it is answered)."""
    with transaction.atomic():
        operation_inserter().insert([snapshot])


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
            operation_inserter().insert([ended])
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
    for start in range(0, len(operation_ids), IDS_PER_STATEMENT):
        chunk = operation_ids[start : start + IDS_PER_STATEMENT]
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
