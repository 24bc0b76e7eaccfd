import uuid
from datetime import UTC, datetime, timedelta

import pytest

from accounts.services import tenant_create, user_create
from mcp_server.models import Operation, OperationError, OperationStatus
from mcp_server.runtime.history import HistoryWriter

pytestmark = pytest.mark.django_db(transaction=True)


def _snapshot(tenant_id: int, user_id: int, **changes) -> dict:
    queued = datetime(2026, 11, 22, 3, 4, 5, 678901, tzinfo=UTC)
    row = {
        "id": uuid.uuid4(),
        "tenant_id": tenant_id,
        "user_id": user_id,
        "tool": "add",
        "arguments": {"a": 1, "b": [2, "three"], "ü": None},
        "status": OperationStatus.RUNNING,
        "progress": 0.0,
        "total": None,
        "message": "",
        "queued_at": queued,
        "started_at": queued + timedelta(microseconds=5),
        "finished_at": None,
        "duration": None,
        "result_summary": None,
        "error": "",
        "error_count": 0,
        "connection_id": "specific.x!y",
        "request_id": "7",
        "is_task": True,
        "task_ttl": 60_000,
        "progress_token": "tok-1",
        "result": {"content": [{"type": "text", "text": "ok"}], "isError": False},
        "heartbeat_at": None,
        "cancel_requested": False,
        "runner": "host:1",
    }
    row.update(changes)
    return row


@pytest.fixture
def owner() -> tuple[int, int]:
    tenant = tenant_create(slug="hist")
    user = user_create(username="hist", tenant_slug="hist")
    return tenant.pk, user.pk


def test_rows_read_back_exactly_as_written(owner) -> None:
    writer = HistoryWriter(interval=3600)
    finished = datetime(2026, 11, 22, 3, 4, 7, tzinfo=UTC)
    snapshot = _snapshot(
        *owner,
        status=OperationStatus.SUCCEEDED,
        finished_at=finished,
        duration=timedelta(seconds=1, microseconds=321099),
        result_summary={"result": 3.5, "nested": {"x": [1, 2]}},
        total=10.0,
        progress=10.0,
    )
    writer.record(snapshot)
    writer.flush()
    row = Operation.objects.get(pk=snapshot["id"])
    for name, value in snapshot.items():
        assert getattr(row, name) == value, name


def test_a_batch_creates_then_updates_and_logs_item_errors(owner) -> None:
    writer = HistoryWriter(interval=3600)
    snapshots = [_snapshot(*owner) for _ in range(1203)]  # several INSERT chunks
    for snapshot in snapshots:
        writer.record(snapshot)
    writer.flush()
    assert Operation.objects.filter(status=OperationStatus.RUNNING).count() == 1203
    first = snapshots[0]
    writer.record({**first, "status": OperationStatus.FAILED, "error": "boom", "error_count": 1})
    writer.record_errors(
        [
            {
                "operation_id": first["id"],
                "item": "x.png",
                "message": "bad",
                "created_at": first["queued_at"],
            }
        ]
    )
    writer.flush()
    row = Operation.objects.get(pk=first["id"])
    assert row.status == OperationStatus.FAILED
    assert row.error == "boom"
    assert list(OperationError.objects.values_list("item", "message")) == [("x.png", "bad")]
