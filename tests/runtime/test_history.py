from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mcp_server.models import Operation, OperationError, OperationStatus
from mcp_server.operations.store import operation_create
from mcp_server.runtime.history import HistoryWriter, writer_from_settings
from tests.runtime.conftest import history_row

pytestmark = pytest.mark.django_db(transaction=True)


def test_rows_read_back_exactly_as_written(owner) -> None:
    writer = HistoryWriter(interval=3600)
    finished = datetime(2026, 11, 22, 3, 4, 7, tzinfo=UTC)
    snapshot = history_row(
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
    snapshots = [history_row(*owner) for _ in range(1203)]  # several INSERT chunks
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


def test_a_plain_calls_row_leaves_the_execution_columns_to_their_defaults_but_the_runner(
    owner,
) -> None:
    writer = HistoryWriter(interval=3600)
    snapshot = history_row(
        *owner,
        status=OperationStatus.SUCCEEDED,  # a running row is stamped alive as it is written
        is_task=False,
        result=None,
        task_ttl=None,
        progress_token="tok",
        runner="h:1",
    )
    writer.record(snapshot)
    writer.flush()
    row = Operation.objects.get(pk=snapshot["id"])
    # Which process ran it is kept: placement is per tool.
    assert (row.is_task, row.cancel_requested, row.runner) == (False, False, "h:1")
    assert (row.task_ttl, row.progress_token, row.result, row.heartbeat_at) == (None,) * 4
    assert row.tool == snapshot["tool"]
    assert row.arguments == snapshot["arguments"]


def test_a_datetime_in_another_zone_is_stored_as_the_same_instant(owner) -> None:
    writer = HistoryWriter(interval=3600)
    finished = datetime(2026, 11, 22, 5, 4, 7, 250, tzinfo=timezone(timedelta(hours=2)))
    snapshot = history_row(*owner, status=OperationStatus.SUCCEEDED, finished_at=finished)
    writer.record(snapshot)
    writer.flush()
    assert Operation.objects.get(pk=snapshot["id"]).finished_at == finished


@pytest.mark.parametrize("microsecond", [0, 1, 250_000, 999_999])
def test_a_utc_datetime_is_stored_as_django_stores_it(owner, microsecond) -> None:
    writer = HistoryWriter(interval=3600)
    finished = datetime(2026, 11, 22, 5, 4, 7, microsecond, tzinfo=UTC)
    snapshot = history_row(*owner, status=OperationStatus.SUCCEEDED, finished_at=finished)
    writer.record(snapshot)
    writer.flush()
    key = Operation._meta.pk.get_db_prep_value(snapshot["id"], connection)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT CAST(finished_at AS TEXT) FROM mcp_server_operation WHERE id = %s", [key]
        )
        (stored,) = cursor.fetchone()
    expected = connection.ops.adapt_datetimefield_value(finished)
    if connection.vendor == "sqlite":  # text: the very text Django writes, so ordering holds
        assert stored == expected
    assert Operation.objects.get(pk=snapshot["id"]).finished_at == finished


def test_with_history_disabled_only_rows_made_elsewhere_are_written(owner, settings) -> None:
    settings.MCP_HISTORY_ENABLED = False
    settings.MCP_HISTORY_WRITER = "thread"  # flushed here (the process writer: its own tests)
    writer = writer_from_settings()
    assert isinstance(writer, HistoryWriter)
    plain = history_row(*owner, is_task=False, result=None)
    task = history_row(*owner)
    operation_create(snapshot=task)  # a task's row exists before it is answered
    writer.adopt(task["id"])
    error = {"item": "x.png", "message": "bad", "created_at": task["queued_at"]}
    writer.record(plain)
    writer.record_errors([{**error, "operation_id": plain["id"]}])
    writer.record({**task, "status": OperationStatus.SUCCEEDED, "progress": 1.0})
    writer.record_errors([{**error, "operation_id": task["id"]}])
    writer.flush()
    assert not Operation.objects.filter(pk=plain["id"]).exists()
    assert Operation.objects.get(pk=task["id"]).status == OperationStatus.SUCCEEDED
    assert list(OperationError.objects.values_list("operation_id", flat=True)) == [task["id"]]


def test_a_batch_of_updates_never_changes_an_ended_row(owner) -> None:
    writer = HistoryWriter(interval=3600)
    ending, ended = history_row(*owner), history_row(*owner)
    for snapshot in (ending, ended):
        writer.record(snapshot)
    writer.flush()
    Operation.objects.filter(pk=ended["id"]).update(status=OperationStatus.CANCELLED)
    for snapshot in (ending, ended):
        writer.record({**snapshot, "status": OperationStatus.SUCCEEDED, "progress": 1.0})
    writer.flush()
    statuses = dict(Operation.objects.values_list("id", "status"))
    assert statuses == {ending["id"]: OperationStatus.SUCCEEDED, ended["id"]: "cancelled"}


def test_a_round_holds_a_running_calls_first_state_once(owner) -> None:
    writer = HistoryWriter(interval=3600, threaded=False)
    running = history_row(*owner)
    writer.record(running)
    writer.flush(hold=True)
    assert not Operation.objects.filter(pk=running["id"]).exists()
    assert writer.unwritten_ids() == {running["id"]}  # the reaper leaves it alone
    writer.flush(hold=True)
    assert Operation.objects.get(pk=running["id"]).status == OperationStatus.RUNNING


def test_a_running_call_with_item_errors_is_not_held(owner) -> None:
    writer = HistoryWriter(interval=3600, threaded=False)
    running = history_row(*owner)
    writer.record(running)
    error = {"item": "absent.bin", "message": "does not exist", "created_at": running["queued_at"]}
    writer.record_errors([{**error, "operation_id": running["id"]}])
    writer.flush(hold=True)
    # Its errors need its row: both are written this round, none set aside.
    assert Operation.objects.get(pk=running["id"]).status == OperationStatus.RUNNING
    assert list(OperationError.objects.values_list("item", flat=True)) == ["absent.bin"]


def test_a_call_that_ends_by_the_next_round_is_written_once_with_its_end(owner) -> None:
    writer = HistoryWriter(interval=3600, threaded=False)
    running = history_row(*owner)
    writer.record(running)
    writer.flush(hold=True)
    writer.record({**running, "status": OperationStatus.SUCCEEDED})
    writer.flush(hold=True)
    row = Operation.objects.get(pk=running["id"])
    # Written as it ended: never stamped alive, as a row first written running is.
    assert (row.status, row.heartbeat_at) == (OperationStatus.SUCCEEDED, None)
    assert writer.unwritten_ids() == set()


def test_ends_updates_and_asked_for_flushes_are_never_held(owner) -> None:
    writer = HistoryWriter(interval=3600, threaded=False)
    ended = history_row(*owner, status=OperationStatus.SUCCEEDED)
    adopted = history_row(*owner)
    operation_create(snapshot=adopted)
    writer.adopt(adopted["id"])
    writer.record(ended)
    writer.record({**adopted, "message": "half way"})
    writer.flush(hold=True)
    assert Operation.objects.get(pk=ended["id"]).status == OperationStatus.SUCCEEDED
    assert Operation.objects.get(pk=adopted["id"]).message == "half way"
    running = history_row(*owner)
    writer.record(running)
    writer.flush()
    assert Operation.objects.filter(pk=running["id"]).exists()


def test_flush_soon_writes_what_a_round_held(owner) -> None:
    writer = HistoryWriter(interval=3600)
    running = history_row(*owner)
    writer.record(running)
    writer.flush(hold=True)
    writer.flush_soon().result(timeout=30)
    assert Operation.objects.filter(pk=running["id"]).exists()
    writer.stop()


def test_a_connection_lost_between_two_writes_costs_the_batch_nothing(owner, caplog) -> None:
    # The writer checks its connection at most once a second: a write on a connection the
    # server dropped since then fails, and is made again at once on a new one.
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only (a server that drops connections); make test runs it there")
    writer = HistoryWriter(interval=3600, threaded=False)
    first = history_row(*owner, status=OperationStatus.SUCCEEDED, is_task=False, result=None)
    writer.record(first)
    writer.flush()  # checked, and written
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    with psycopg.connect(**_server_of(connection), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", (pid,))
    second = history_row(*owner, status=OperationStatus.SUCCEEDED, is_task=False, result=None)
    writer.record(second)
    writer.flush()
    assert not [record for record in caplog.records if record.levelname != "INFO"]
    assert dict(Operation.objects.values_list("id", "status")) == {
        first["id"]: OperationStatus.SUCCEEDED,
        second["id"]: OperationStatus.SUCCEEDED,
    }
    assert writer.unwritten_ids() == set()


def _server_of(django_connection: Any) -> dict[str, Any]:
    params = django_connection.get_connection_params()
    return {key: params[key] for key in ("host", "port", "user", "dbname") if params.get(key)}


def _synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return str(cursor.fetchone()[0])


@pytest.mark.parametrize("asynchronous", [True, False])
def test_the_rows_of_ended_calls_commit_without_waiting_for_the_disk(
    owner, settings, asynchronous
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only (synchronous_commit); make test runs it there")
    settings.MCP_HISTORY_ASYNCHRONOUS_COMMIT = asynchronous
    connection.close()  # a connection of this test's own
    writer = HistoryWriter(interval=3600, threaded=False)
    ended = history_row(*owner, status=OperationStatus.SUCCEEDED, is_task=False, result=None)
    writer.record(ended)
    writer.flush()
    assert _synchronous_commit() == ("off" if asynchronous else "on")
    # Committed all the same: another connection reads it at once.
    with psycopg.connect(**_server_of(connection), autocommit=True) as other:
        table = Operation._meta.db_table
        found = other.execute(f"SELECT status FROM {table} WHERE id = %s", (ended["id"],))
        assert found.fetchone() == (OperationStatus.SUCCEEDED,)
    connection.close()


def test_task_states_and_item_errors_commit_synchronously_on_the_same_connection(owner) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only (synchronous_commit); make test runs it there")
    connection.close()
    writer = HistoryWriter(interval=3600, threaded=False)
    writer.record(history_row(*owner, status=OperationStatus.SUCCEEDED, is_task=False, result=None))
    writer.flush()  # the session now commits asynchronously
    task = history_row(*owner)
    operation_create(snapshot=task)
    writer.adopt(task["id"])
    writer.record({**task, "status": OperationStatus.SUCCEEDED})
    with CaptureQueriesContext(connection) as queries:
        writer.flush()
    statements = [query["sql"] for query in queries.captured_queries]
    assert statements[:2] == ["BEGIN", "SET LOCAL synchronous_commit TO on"]
    assert any('UPDATE "mcp_server_operation"' in sql for sql in statements[2:])
    assert Operation.objects.get(pk=task["id"]).status == OperationStatus.SUCCEEDED
    connection.close()
