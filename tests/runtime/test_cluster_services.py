"""The history services the cluster relies on: heartbeat, reaper, durable cancel, final states."""

from datetime import timedelta
from typing import Any

import pytest
from django.db.models.functions import Now
from django.utils import timezone

from mcp_server.models import Operation, OperationStatus
from mcp_server.operations.history_rows import operations_persist
from mcp_server.operations.lifecycle import TERMINAL_STATUSES, Stop, StopReason
from mcp_server.operations.store import (
    operation_request_cancel,
    operation_stop,
    operations_heartbeat,
    operations_reap_lost,
    tasks_cancel_revoked,
)
from tests.runtime.conftest import history_row

pytestmark = pytest.mark.django_db


@pytest.fixture
def make(owner: tuple[int, int]) -> Any:
    def create(**changes: Any) -> Operation:
        snapshot = history_row(*owner, **changes)
        operations_persist(created=[snapshot], updated=[], errors=[])
        return Operation.objects.get(pk=snapshot["id"])

    return create


def _age(operation: Operation, seconds: float, *, beat: bool) -> None:
    moment = timezone.now() - timedelta(seconds=seconds)
    # Without a beat: never stamped alive (as a call handed to workers and not yet taken).
    fields: dict[str, Any] = {"queued_at": moment, "heartbeat_at": moment if beat else None}
    Operation.objects.filter(pk=operation.pk).update(**fields)


def test_reaper_interrupts_what_stopped_heartbeating_and_what_nobody_took(make: Any) -> None:
    silent = make(status=OperationStatus.RUNNING)
    never_taken = make(status=OperationStatus.QUEUED)
    alive = make(status=OperationStatus.RUNNING)
    ended = make(status=OperationStatus.SUCCEEDED)
    _age(silent, 60, beat=True)
    _age(never_taken, 60, beat=False)
    waiting = make(status=OperationStatus.QUEUED)
    _age(waiting, 20, beat=False)  # workers busy: taken late, not never
    _age(alive, 60, beat=False)
    Operation.objects.filter(pk=alive.pk).update(heartbeat_at=Now())
    _age(ended, 60, beat=True)

    reaped = operations_reap_lost(lost_after=10, unclaimed_after=30)

    assert sorted(reaped) == sorted([silent.pk, never_taken.pk])
    rows = {row.pk: row for row in Operation.objects.all()}
    assert rows[silent.pk].status == OperationStatus.INTERRUPTED
    assert rows[silent.pk].error == "interrupted: its process stopped responding"
    assert rows[never_taken.pk].error == "interrupted: no process took it in time"
    assert rows[silent.pk].finished_at is not None
    assert rows[alive.pk].status == OperationStatus.RUNNING
    assert rows[waiting.pk].status == OperationStatus.QUEUED
    assert rows[ended.pk].status == OperationStatus.SUCCEEDED


def test_reaper_waits_the_hung_bound_for_the_rows_of_a_worker_stamped_alive(make: Any) -> None:
    busy = make(status=OperationStatus.RUNNING, runner="w-live")
    dead = make(status=OperationStatus.RUNNING, runner="w-dead")
    for operation in (busy, dead):
        _age(operation, 60, beat=True)

    reaped = operations_reap_lost(
        lost_after=10, unclaimed_after=30, live_runners={"w-live"}, live_lost_after=90
    )
    assert reaped == [dead.pk]
    # Silent past the longer bound too: its worker's loop is hung, or it lost the call.
    reaped = operations_reap_lost(
        lost_after=10, unclaimed_after=30, live_runners={"w-live"}, live_lost_after=50
    )
    assert reaped == [busy.pk]
    assert Operation.objects.get(pk=busy.pk).error == "interrupted: its process stopped responding"


def test_heartbeat_stamps_active_rows_and_reports_cancel_requests(make: Any) -> None:
    running = make(status=OperationStatus.RUNNING)
    cancelled = make(status=OperationStatus.RUNNING)
    operation_request_cancel(operation_id=cancelled.pk, as_task=False)
    missing = history_row(1, 1)["id"]  # not written yet: not reported

    seen = operations_heartbeat(operation_ids=[running.pk, cancelled.pk, missing], runner="host:42")

    assert seen == {
        running.pk: (OperationStatus.RUNNING, False),
        cancelled.pk: (OperationStatus.RUNNING, True),
    }
    row = Operation.objects.get(pk=running.pk)
    assert row.heartbeat_at is not None
    assert row.runner == "host:42"


def test_a_cancelled_task_stays_cancelled_whatever_its_runner_reports(make: Any) -> None:
    task = make(status=OperationStatus.RUNNING, is_task=True)
    assert operation_request_cancel(operation_id=task.pk, as_task=True)
    assert not operation_request_cancel(operation_id=task.pk, as_task=True)
    late = history_row(0, 0, status=OperationStatus.SUCCEEDED, progress=99.0)
    operations_persist(created=[], updated=[{**late, "id": task.pk}], errors=[])
    row = Operation.objects.get(pk=task.pk)
    assert row.status == OperationStatus.CANCELLED
    assert row.progress == 0
    assert row.error == "cancelled"


@pytest.mark.parametrize("end", sorted(TERMINAL_STATUSES))
def test_a_stop_ends_an_active_row_with_its_text_and_leaves_an_ended_one(
    make: Any, end: OperationStatus
) -> None:
    queued = make(status=OperationStatus.QUEUED, is_task=False)
    ended = make(status=end, error="as it was")
    stop = Stop(StopReason.HAND_OFF_FAILED)
    assert operation_stop(operation_id=queued.pk, stop=stop) == 1
    assert operation_stop(operation_id=ended.pk, stop=stop) == 0
    queued.refresh_from_db()
    assert (queued.status, queued.error) == (
        OperationStatus.INTERRUPTED,
        "interrupted: could not hand the call to a worker",
    )
    assert queued.finished_at is not None and queued.duration is not None
    ended.refresh_from_db()
    assert (ended.status, ended.error) == (end, "as it was")


def test_revoked_access_cancels_only_active_tasks_with_the_reason(make: Any) -> None:
    task = make(status=OperationStatus.RUNNING, is_task=True, token_id=41)
    call = make(status=OperationStatus.RUNNING, is_task=False, token_id=41)
    done = make(status=OperationStatus.SUCCEEDED, is_task=True, token_id=41)
    stop = Stop.access_revoked("token revoked")
    assert tasks_cancel_revoked(field="token_id", ids=[41], stop=stop) == [task.pk]
    rows = {row.pk: row for row in Operation.objects.all()}
    assert (rows[task.pk].status, rows[task.pk].error) == (
        OperationStatus.CANCELLED,
        "cancelled: access revoked: token revoked",
    )
    assert rows[task.pk].cancel_requested
    assert rows[call.pk].status == OperationStatus.RUNNING  # its connection's close stops it
    assert rows[done.pk].status == OperationStatus.SUCCEEDED
    with pytest.raises(ValueError, match="cannot cancel tasks by 'tool'"):
        tasks_cancel_revoked(field="tool", ids=[41], stop=stop)
