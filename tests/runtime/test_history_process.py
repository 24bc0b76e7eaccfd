"""The history writer process: start, drain at stop, SIGTERM, restart after a crash, the
queue's bound, and a finished call's row within a second."""

import os
import signal
from collections.abc import Iterator
from datetime import timedelta

import pytest

from mcp_server.models import Operation, OperationStatus
from mcp_server.runtime.history_batches import Batch, decode_batch, encode_batch
from mcp_server.runtime.history_process import HistoryProcess, writer_settings
from mcp_server.runtime.history_serve import BatchWriter
from tests.e2e.support import wait_until
from tests.runtime.conftest import history_row

pytestmark = pytest.mark.django_db(transaction=True)

START_TIMEOUT = 60.0  # a Python process importing Django, on a machine loaded by other suites


def _process(*, interval: float = 0.25, queue_limit: int = 1000) -> HistoryProcess:
    return HistoryProcess(
        interval=interval, queue_limit=queue_limit, child_settings=writer_settings
    )


@pytest.fixture
def history() -> Iterator[HistoryProcess]:
    writer = _process()
    yield writer
    writer.stop()


def _started(writer: HistoryProcess, owner: tuple[int, int]) -> None:
    """Start the writer process and wait until it has written a first row."""
    first = history_row(*owner, status=OperationStatus.SUCCEEDED)
    writer.record(first)
    writer.flush_soon().result(timeout=START_TIMEOUT)
    assert Operation.objects.filter(pk=first["id"]).exists()


def _ended(row: dict) -> dict:
    finished = row["queued_at"] + timedelta(seconds=1)
    return {**row, "status": OperationStatus.SUCCEEDED, "finished_at": finished}


def test_a_finished_calls_row_is_visible_within_a_second(history, owner) -> None:
    _started(history, owner)
    row = _ended(history_row(*owner))
    history.record(row)
    wait_until(
        lambda: Operation.objects.filter(pk=row["id"], status="succeeded").exists(),
        1.0,
        "the finished call's row",
    )
    wait_until(lambda: not history.unwritten_ids(), 5.0, "the writer to confirm it")


def test_stop_writes_everything_queued_and_ends_the_process(owner) -> None:
    writer = _process(interval=3600)  # nothing is sent before stop
    _started(writer, owner)
    rows = [history_row(*owner) for _ in range(300)]
    for row in rows:
        writer.record(row)
    writer.record(_ended(rows[0]))
    pid = writer.pid
    writer.stop()
    assert Operation.objects.filter(pk__in=[r["id"] for r in rows]).count() == 300
    assert Operation.objects.get(pk=rows[0]["id"]).status == OperationStatus.SUCCEEDED
    assert pid is not None
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped: it exited


def test_the_writer_ignores_sigterm_and_still_drains(history, owner) -> None:
    _started(history, owner)
    assert history.pid is not None
    os.kill(history.pid, signal.SIGTERM)  # what the server's process group receives
    row = _ended(history_row(*owner))
    history.record(row)
    history.flush_soon().result(timeout=START_TIMEOUT)
    assert Operation.objects.filter(pk=row["id"]).exists()


def test_a_crashed_writer_is_restarted_and_gets_what_it_held(history, owner) -> None:
    _started(history, owner)
    running = history_row(*owner)
    history.record(running)
    history.flush_soon().result(timeout=START_TIMEOUT)  # its running state is written
    first = history.pid
    assert first is not None
    os.kill(first, signal.SIGSTOP)  # receives the next batch but writes nothing
    held = history_row(*owner, status=OperationStatus.SUCCEEDED)
    history.record(held)
    history.record(_ended(running))  # an update of a row the dead writer inserted
    done = history.flush_soon()
    wait_until(lambda: held["id"] in history.unwritten_ids(), 5.0, "the batch to be sent")
    os.kill(first, signal.SIGKILL)
    done.result(timeout=START_TIMEOUT)
    assert history.pid != first
    assert Operation.objects.get(pk=held["id"]).status == OperationStatus.SUCCEEDED
    assert Operation.objects.get(pk=running["id"]).status == OperationStatus.SUCCEEDED
    assert history.unwritten_ids() == set()


def test_a_batch_written_twice_changes_nothing(owner) -> None:
    row = history_row(*owner)
    ended = _ended(row)
    batch = Batch(seq=1, snapshots=[row, ended], errors=[], adopted=[])
    BatchWriter(interval=3600, restarted=False).take(Batch(1, [row], [], []))
    first = BatchWriter(interval=3600, restarted=False)
    first.take(batch)
    assert first.write() == 1
    # A restarted writer sent the same batch (its predecessor died before confirming it).
    again = BatchWriter(interval=3600, restarted=True)
    again.take(batch)
    again.take(batch)  # and a duplicate of a re-send is ignored
    assert again.write() == 1
    stored = Operation.objects.get(pk=row["id"])
    assert (stored.status, stored.error) == (OperationStatus.SUCCEEDED, "")


def test_past_its_bound_new_states_are_dropped_and_known_ones_replaced(owner, caplog) -> None:
    writer = _process(interval=3600, queue_limit=2)
    try:
        kept, replaced, dropped = (history_row(*owner) for _ in range(3))
        writer.record(kept)
        writer.record(replaced)
        writer.record(dropped)  # a third operation: no room
        writer.record(_ended(replaced))  # the latest state of one queued: takes no room
        writer.record_errors(
            [
                {
                    "operation_id": kept["id"],
                    "item": "x",
                    "message": "no room",
                    "created_at": kept["queued_at"],
                }
            ]
        )
        assert writer.unwritten_ids() == {kept["id"], replaced["id"]}
        writer.flush_soon().result(timeout=START_TIMEOUT)
        assert set(Operation.objects.values_list("pk", flat=True)) == {kept["id"], replaced["id"]}
        assert Operation.objects.get(pk=replaced["id"]).status == OperationStatus.SUCCEEDED
        assert "history queue full" in caplog.text
        writer.record(dropped)  # written again once the writer confirmed the batch
        writer.flush_soon().result(timeout=START_TIMEOUT)
        assert Operation.objects.filter(pk=dropped["id"]).exists()
    finally:
        writer.stop()


def test_a_bound_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="MCP_HISTORY_QUEUE_LIMIT"):
        _process(queue_limit=0)


def test_a_batch_crosses_the_pipe_unchanged(owner) -> None:
    ended = _ended(history_row(*owner))
    ended["duration"] = ended["finished_at"] - ended["queued_at"]
    error = {
        "operation_id": ended["id"],
        "item": "x",
        "message": "m",
        "created_at": ended["queued_at"],
    }
    batch = Batch(seq=3, snapshots=[ended], errors=[error], adopted=[ended["id"]], limits={"A": 1})
    assert encode_batch(batch)[:1] == b"j"  # JSON: the common case
    assert decode_batch(encode_batch(batch)) == batch
    odd = Batch(seq=4, snapshots=[{**ended, "message": "\ud800"}], errors=[], adopted=[])
    assert encode_batch(odd)[:1] == b"p"  # a lone surrogate: JSON cannot carry it
    assert decode_batch(encode_batch(odd)) == odd


def test_what_a_batch_wrote_is_told_once_it_is_confirmed(history, owner) -> None:
    told: list[tuple[frozenset, frozenset, frozenset]] = []
    history.on_written(lambda *written: told.append(written))
    running, ended = history_row(*owner), _ended(history_row(*owner))
    history.record(running)
    history.record(ended)
    history.record_errors(
        [
            {
                "operation_id": running["id"],
                "item": "x",
                "message": "m",
                "created_at": ended["queued_at"],
            }
        ]
    )
    history.flush_soon().result(timeout=START_TIMEOUT)
    wait_until(lambda: bool(told), 5.0, "the hook")
    changed = frozenset().union(*(t[0] for t in told))
    assert changed == {running["id"], ended["id"]}
    assert frozenset().union(*(t[1] for t in told)) == {running["id"]}
    assert frozenset().union(*(t[2] for t in told)) == {ended["id"]}
