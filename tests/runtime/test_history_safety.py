"""One bad value or row never stops history: escaped values, rows set aside, size caps.

Real databases (SQLite, and PostgreSQL with DATABASE_URL): PostgreSQL refuses U+0000 in text
and jsonb; both refuse lone surrogates (UTF-8) and rows of a tenant that no longer exists.
"""

import logging
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.db.models import IntegerField, Sum, TextField
from django.db.models.functions import Cast, Coalesce, Length
from django.test import override_settings

from mcp_server.cluster.messages import OperationFinished
from mcp_server.history_values import TRUNCATED
from mcp_server.models import Operation, OperationError, OperationStatus
from mcp_server.operations.lifecycle import task_outcome
from mcp_server.protocol.errors import JsonRpcError
from mcp_server.runtime.history import HistoryWriter
from mcp_server.runtime.runner import CallRequest, OperationRunner
from mcp_server.tools.registry import registry
from tests.runtime.conftest import history_row
from tests.support import Wire, make_principal

pytestmark = pytest.mark.django_db(transaction=True)

NUL = "\u0000"
SURROGATE = "\udc80"  # what os.fsdecode makes of the byte 0x80 in a file name
MISSING = 999_999  # no tenant or user has this id


def _ended(row: dict[str, Any], status: str = OperationStatus.SUCCEEDED, **changes: Any) -> dict:
    finished = row["queued_at"] + timedelta(seconds=1)
    ended = {"status": status, "finished_at": finished, "duration": timedelta(seconds=1)}
    return {**row, **ended, **changes}


def _item_error(operation_id: Any, item: str, message: str) -> dict[str, Any]:
    from django.utils import timezone

    return {
        "operation_id": operation_id,
        "item": item,
        "message": message,
        "created_at": timezone.now(),
    }


def test_values_the_database_cannot_hold_are_stored_as_their_escapes(owner) -> None:
    writer = HistoryWriter(interval=3600)
    task = history_row(
        *owner,
        arguments={f"k{NUL}": [f"a{NUL}b", f"f-{SURROGATE}.png", 1]},
        request_id=f"id{NUL}",
        message=f"step{NUL}",
        progress_token=f"tok{NUL}",
        result={"content": [{"type": "text", "text": f"r{NUL}{SURROGATE}"}]},
    )
    plain = _ended(
        history_row(*owner, is_task=False, result=None, arguments={"text": f"x{NUL}"}),
        result_summary={"text": f"x{NUL}"},
        error=f"bad {SURROGATE}",
    )
    writer.record(task)
    writer.record(plain)
    writer.flush()
    # The update path too: the task ends with unstorable values, and logs an item error.
    writer.record(_ended(task, result_summary={"name": f"{SURROGATE}"}, error=f"e{NUL}"))
    writer.record_errors([_item_error(task["id"], f"i{NUL}{SURROGATE}", f"m{NUL}")])
    writer.flush()

    stored = Operation.objects.get(pk=task["id"])
    assert stored.arguments == {"k\\u0000": ["a\\u0000b", "f-\\udc80.png", 1]}
    assert stored.request_id == "id\\u0000"
    assert stored.progress_token == "tok\\u0000"
    assert stored.status == OperationStatus.SUCCEEDED
    assert stored.result_summary == {"name": "\\udc80"}
    assert stored.error == "e\\u0000"
    assert stored.result == {"content": [{"type": "text", "text": "r\\u0000\\udc80"}]}
    other = Operation.objects.get(pk=plain["id"])
    assert other.arguments == {"text": "x\\u0000"}
    assert other.error == "bad \\udc80"
    assert list(OperationError.objects.values_list("item", "message")) == [
        ("i\\u0000\\udc80", "m\\u0000")
    ]


def test_rows_the_database_refuses_are_set_aside_and_every_other_row_is_written(
    owner, caplog: pytest.LogCaptureFixture
) -> None:
    writer = HistoryWriter(interval=3600)
    good = [_ended(history_row(*owner)) for _ in range(40)]
    # A tenant deleted while its call ran: the row cannot exist at all.
    orphan = _ended(history_row(MISSING, MISSING))
    # A result no JSON can hold: the run is recorded failed, with the reason.
    broken = _ended(history_row(*owner), result_summary={"value": object()})
    for row in [*good[:20], orphan, broken, *good[20:]]:
        writer.record(row)
    writer.record_errors(
        [_item_error(good[0]["id"], "a.png", "unreadable"), _item_error(orphan["id"], "b", "x")]
    )
    with caplog.at_level(logging.WARNING, logger="mcp_server.runtime.history"):
        writer.flush()

    statuses = dict(Operation.objects.values_list("id", "status"))
    assert {row["id"] for row in good} <= set(statuses)
    assert all(statuses[row["id"]] == OperationStatus.SUCCEEDED for row in good)
    assert orphan["id"] not in statuses
    failed = Operation.objects.get(pk=broken["id"])
    assert failed.status == OperationStatus.FAILED
    assert failed.error.startswith("history could not store this run (TypeError)")
    assert list(OperationError.objects.values_list("item", flat=True)) == ["a.png"]
    logged = caplog.text
    assert str(orphan["id"]) in logged and str(broken["id"]) in logged
    # Nothing is kept to retry: the next batch is written at once.
    assert not writer.unwritten_ids()
    later = _ended(history_row(*owner))
    writer.record(later)
    writer.flush()
    assert Operation.objects.filter(pk=later["id"]).exists()


def test_a_last_state_the_database_refuses_ends_the_run_failed_with_the_reason(owner) -> None:
    writer = HistoryWriter(interval=3600)
    running, neighbour = history_row(*owner), history_row(*owner)
    writer.record(running)
    writer.record(neighbour)
    writer.flush()
    writer.record(_ended(running, result_summary={"value": object()}))
    writer.record(_ended(neighbour, progress=3.0))
    writer.flush()
    row = Operation.objects.get(pk=running["id"])
    assert row.status == OperationStatus.FAILED
    assert "history could not store this run" in row.error
    assert row.finished_at is not None
    assert Operation.objects.get(pk=neighbour["id"]).status == OperationStatus.SUCCEEDED


def test_a_run_history_cannot_hold_at_all_costs_later_batches_nothing(
    owner, caplog: pytest.LogCaptureFixture
) -> None:
    writer = HistoryWriter(interval=3600)
    orphan = history_row(MISSING, MISSING)
    writer.record(orphan)
    writer.flush()
    assert not Operation.objects.filter(pk=orphan["id"]).exists()
    # Its later states are dropped unseen: the batch they share is written in one go.
    neighbour = _ended(history_row(*owner))
    writer.record({**orphan, "progress": 5.0})
    writer.record_errors([_item_error(orphan["id"], "x", "y")])
    writer.record(neighbour)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mcp_server.runtime.history"):
        writer.flush()
    assert "in parts" not in caplog.text
    assert Operation.objects.filter(pk=neighbour["id"]).exists()
    writer.record(_ended(orphan))
    writer.flush()
    assert not writer.unwritten_ids()


@override_settings(MCP_HISTORY_MAX_RESULT_BYTES=4096)
def test_a_task_result_history_could_not_keep_whole_is_reported_as_such(owner) -> None:
    writer = HistoryWriter(interval=3600)
    big = {"content": [{"type": "text", "text": "x" * 10_000}]}
    task = _ended(history_row(*owner, result=big))
    writer.record(task)
    writer.flush()
    stored = Operation.objects.get(pk=task["id"])
    assert stored.result is not None and stored.result[TRUNCATED] is True
    with pytest.raises(JsonRpcError) as refused:
        task_outcome(str(task["id"]), OperationFinished.from_row(stored))
    assert "larger than the server keeps in history" in refused.value.message
    assert refused.value.data is not None
    assert refused.value.data["reason"] == "result_not_kept"
    assert refused.value.data["resultBytes"] > 10_000
    assert refused.value.data["taskStatus"] == "completed"


def _stored_bytes() -> int:
    """The bytes the large columns of every history row hold, as their JSON or text."""
    total = 0
    for name in ("arguments", "result_summary", "result", "error", "message"):
        size = Length(Cast(name, output_field=TextField()))
        found = Operation.objects.aggregate(n=Coalesce(Sum(size, output_field=IntegerField()), 0))[
            "n"
        ]
        total += int(found)
    return total


async def test_150_echo_calls_of_900_kb_store_a_bounded_size(
    runner: OperationRunner, writer: HistoryWriter
) -> None:
    principal = await database_sync_to_async(make_principal)("big", "bea")
    echo = registry.get("echo")
    assert echo is not None
    text = "z" * 900_000
    wire = Wire()
    for index in range(150):
        request = CallRequest(
            principal=principal,
            tool=echo,
            arguments={"text": text},
            connection_id="c",
            request_id=index,
            progress_token=None,
        )
        # A third kept whole, as tasks and calls run by workers keep them.
        result = await runner.call(request, send=wire.send, events=wire, published=index % 3 == 0)
        assert result["content"][0]["text"] == text  # the client gets all of it
        if index % 10 == 9:
            await database_sync_to_async(writer.flush)()
    await database_sync_to_async(writer.flush)()
    assert await database_sync_to_async(Operation.objects.count)() == 150
    stored = await database_sync_to_async(_stored_bytes)()
    # 150 x 900 KB of arguments alone would be 135 MB; each value keeps about 1 KiB.
    assert stored < 150 * 8 * 1024, stored
    row = await database_sync_to_async(lambda: Operation.objects.filter(result__isnull=False)[0])()
    assert row.arguments[TRUNCATED] is True
    assert row.arguments["original_bytes"] == len('{"text":""}') + 900_000
    assert row.result[TRUNCATED] is True
