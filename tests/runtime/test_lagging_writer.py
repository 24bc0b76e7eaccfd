"""A lagging history writer never turns a known outcome into another.

The writer here lags by construction: its interval is an hour and the test says when it
writes. Meanwhile the node's real heartbeat and reaper run against the real database, and
the row is made to look silent for an hour, as it would after a long enough lag.
"""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from mcp_server.cluster.bus import OperationBus
from mcp_server.cluster.database import close_database_connections
from mcp_server.cluster.liveness import Liveness
from mcp_server.models import Operation, OperationStatus
from mcp_server.operations.store import operations_reap_lost
from mcp_server.runtime.history import HistoryWriter
from mcp_server.runtime.runner import CallRequest, OperationRunner
from mcp_server.tools.registry import registry
from tests.support import Wire, make_principal, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def node(runner: OperationRunner) -> AsyncIterator[Liveness]:
    """This process's liveness (no channel layer: heartbeat and reaper are all it does here)."""
    yield Liveness(runner=runner, bus=OperationBus(runner=runner, layer=None, web=False))
    await asyncio.to_thread(close_database_connections)


def _sleep_call(principal: Any, **changes: Any) -> CallRequest:
    tool = registry.get("sleep")
    assert tool is not None
    return CallRequest(
        principal=principal,
        tool=tool,
        arguments={"seconds": 3600},
        connection_id="c",
        request_id="lagging",
        progress_token=None,
        **changes,
    )


def _silent_for_an_hour(key: UUID) -> None:
    """The row as the database has it: last stamped alive an hour ago."""
    moment = timezone.now() - timedelta(hours=1)
    Operation.objects.filter(pk=key).update(queued_at=moment, heartbeat_at=moment)


def _row(key: UUID) -> Operation:
    return Operation.objects.get(pk=key)


async def _start(runner: OperationRunner, request: CallRequest) -> tuple[asyncio.Task, UUID]:
    wire = Wire()
    call = asyncio.create_task(runner.call(request, send=wire.send, events=wire))
    await wait_until(lambda: bool(runner.running_ids), timeout=30)
    return call, runner.running_ids[0]


async def test_a_call_cancelled_while_the_writer_lags_stays_cancelled(
    runner: OperationRunner, writer: HistoryWriter, node: Liveness
) -> None:
    principal = await database_sync_to_async(make_principal)("lag", "lea")
    call, key = await _start(runner, _sleep_call(principal))
    await database_sync_to_async(writer.flush)()
    await node.beat()
    assert (await database_sync_to_async(_row)(key)).status == OperationStatus.RUNNING

    call.cancel()
    await asyncio.gather(call, return_exceptions=True)
    assert not runner.is_running(key)
    # Cancelled in memory; the writer has not written it, and the row has looked silent long
    # past the bound. A heartbeat round runs, reaper included.
    assert key in writer.unwritten_ids()
    await database_sync_to_async(_silent_for_an_hour)(key)
    await node.beat()
    await database_sync_to_async(writer.flush)()

    row = await database_sync_to_async(_row)(key)
    assert (row.status, row.error) == (OperationStatus.CANCELLED, "cancelled")


async def test_a_running_call_written_late_is_not_taken_for_one_nobody_took(
    runner: OperationRunner, writer: HistoryWriter, node: Liveness
) -> None:
    principal = await database_sync_to_async(make_principal)("lag", "lou")
    # Queued an hour ago, first written only now, while it runs.
    an_hour_ago = timezone.now() - timedelta(hours=1)
    call, key = await _start(runner, _sleep_call(principal, queued_at=an_hour_ago))
    await database_sync_to_async(writer.flush)()
    # Another process's reaper runs before this process's next heartbeat round.
    reaped = await database_sync_to_async(operations_reap_lost)(lost_after=10, unclaimed_after=60)
    assert key not in reaped
    assert runner.is_running(key)

    call.cancel()
    await asyncio.gather(call, return_exceptions=True)
    await database_sync_to_async(writer.flush)()
    row = await database_sync_to_async(_row)(key)
    assert row.status == OperationStatus.CANCELLED
