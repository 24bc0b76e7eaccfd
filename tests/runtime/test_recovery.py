"""A lost `operation.finished` costs a delay, never a response: outcomes come back from history."""

import asyncio
from typing import Any
from uuid import UUID

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone
from uuid_utils.compat import uuid7

from mcp_server.cluster.database import close_database_connections
from mcp_server.cluster.messages import queued_snapshot
from mcp_server.identity import ServerIdentity
from mcp_server.models import Operation, OperationStatus
from mcp_server.operations.store import operation_create
from mcp_server.process_runtime import ProcessRuntime, build_runtime
from mcp_server.runtime.history import HistoryWriter
from mcp_server.runtime.runner import CallRequest
from mcp_server.session import McpSession
from mcp_server.tools.catalog import catalog_for
from mcp_server.tools.registry import registry
from tests.support import Wire, make_principal, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

RESULT = {"content": [{"type": "text", "text": "done"}], "isError": False}


def _task_row(runtime: ProcessRuntime, principal: Any) -> UUID:
    key = UUID(str(uuid7()))
    tool = registry.get("process_batch")
    assert tool is not None
    request = CallRequest(
        principal=principal,
        tool=tool,
        arguments={"count": 1},
        connection_id="elsewhere",
        request_id=1,
        progress_token=None,
        operation_id=key,
        queued_at=timezone.now(),
        is_task=True,
        task_ttl=1000,
    )
    operation_create(snapshot=queued_snapshot(request, runtime.runner))
    return key


def _finish(key: UUID) -> None:
    Operation.objects.filter(pk=key).update(
        status=OperationStatus.SUCCEEDED, finished_at=timezone.now(), result=RESULT
    )


async def test_a_task_result_waiter_gets_the_outcome_from_history() -> None:
    principal = await sync_to_async(make_principal)("recovery", "rita")
    # Not started: this test runs the recovery round itself.
    runtime = build_runtime(
        web=True, writer=HistoryWriter(interval=0.05), layer=get_channel_layer()
    )
    key = await sync_to_async(_task_row)(runtime, principal)
    liveness = runtime.liveness
    wire = Wire()
    session = McpSession(
        principal=principal,
        catalog=catalog_for(None),
        identity=ServerIdentity(name="t", title="T", version="0"),
        executor=runtime.executor,
        admission=runtime.runner.admission,
        connection_id="here",
        send=wire.send,
        liveness=liveness,
    )
    await session.receive(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "0"},
            },
        }
    )
    await session.receive(
        {"jsonrpc": "2.0", "id": 2, "method": "tasks/result", "params": {"taskId": str(key)}}
    )
    await wait_until(lambda: key in liveness.watched)
    # The runner finished and wrote history, but its message never arrived.
    await sync_to_async(_finish)(key)
    await liveness.recover_outcomes()
    await wait_until(lambda: any(m.get("id") == 2 for m in wire.messages))
    response = next(m for m in wire.messages if m.get("id") == 2)
    assert response["result"]["content"] == RESULT["content"]
    assert response["result"]["_meta"]["io.modelcontextprotocol/related-task"] == {
        "taskId": str(key)
    }
    statuses = [m for m in wire.messages if m.get("method") == "notifications/tasks/status"]
    assert [s["params"]["status"] for s in statuses] == ["completed"]
    assert not liveness.watched
    await session.close()
    # The cluster's database threads keep their connections: close them before the test
    # database is dropped.
    await asyncio.to_thread(close_database_connections)
