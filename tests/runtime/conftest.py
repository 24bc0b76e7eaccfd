"""Fixtures of the runtime tests: an owner for history rows, and the rows themselves."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from accounts.services import tenant_create, user_create
from mcp_server.models import OperationStatus


def history_row(tenant_id: int, user_id: int, **changes: Any) -> dict[str, Any]:
    """The field values of an operation row (as the runtime snapshots them), with `changes`."""
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
        "token_id": None,
        "input_requests": None,
    }
    row.update(changes)
    return row


@pytest.fixture
def owner() -> tuple[int, int]:
    """A tenant and a user of it (their ids) that history rows can belong to."""
    tenant = tenant_create(slug="hist")
    user = user_create(username="hist", tenant_slug="hist")
    return tenant.pk, user.pk
