"""The tasks extension (2026-07-28) on a session: negotiated per request, the server's choice
of which calls become tasks, tasks/get, tasks/update, tasks/cancel over the same Operation
rows as the 2025-11-25 tasks (seen there, in the REST API and in the admin)."""

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import Client as DjangoClient
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.services import IssuedToken
from mcp_server.process_runtime import ProcessRuntime
from mcp_server.protocol.errors import INVALID_PARAMS, MISSING_REQUIRED_CLIENT_CAPABILITY
from mcp_server.protocol.tasks import TASKS_EXTENSION
from mcp_server.runtime.context import ToolContext
from mcp_server.tools.registry import ToolRegistry, build_tool
from tests.accounts.factories import member_token
from tests.e2e.support import read_until
from tests.ws.conftest import TIMEOUT, Client, ws_connect
from tests.ws.session_support import make_session
from tests.ws.test_modern_session import modern, modern_meta

WITH_TASKS: dict[str, Any] = {"extensions": {TASKS_EXTENSION: {}}}
REQUIRED: dict[str, Any] = {"requiredCapabilities": {"extensions": {TASKS_EXTENSION: {}}}}
# About 2 s of work, reporting progress on every item (progress no client of the extension
# may hear for a task).
BATCH = {"count": 40, "item_ms": 50}
LONG = {"count": 100_000, "item_ms": 5}


def extension_request(
    request_id: int | str, method: str, params: dict[str, Any], capabilities: Any = WITH_TASKS
) -> dict[str, Any]:
    """A 2026-07-28 request declaring `capabilities` (by default, the tasks extension)."""
    meta = modern_meta(**{"io.modelcontextprotocol/clientCapabilities": capabilities})
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": method,
        "params": {**params, "_meta": meta},
    }


# --- the session alone (no database) --------------------------------------------------------
async def only_as_task(ctx: ToolContext) -> str:
    """A tool that runs only as a task."""
    return "done"


@pytest.fixture
def registry() -> ToolRegistry:
    reg = ToolRegistry()
    reg.register(build_tool(only_as_task, task_support="required"))
    return reg


async def test_discover_offers_the_extension(registry: ToolRegistry) -> None:
    session, outbox = make_session(registry)
    await session.receive(modern(1, "server/discover"))
    capabilities = (await outbox.response(1))["result"]["capabilities"]
    assert capabilities["extensions"] == {TASKS_EXTENSION: {}}
    assert "tasks" not in capabilities


async def test_a_tool_that_runs_only_as_a_task_needs_the_extension(
    registry: ToolRegistry,
) -> None:
    session, outbox = make_session(registry)
    await session.receive(modern(1, "tools/call", {"name": "only_as_task"}))
    error = (await outbox.response(1))["error"]
    assert (error["code"], error["data"]) == (MISSING_REQUIRED_CLIENT_CAPABILITY, REQUIRED)


@pytest.mark.parametrize("method", ["tasks/get", "tasks/update", "tasks/cancel"])
async def test_task_requests_need_the_extension_on_the_request(
    registry: ToolRegistry, method: str
) -> None:
    session, outbox = make_session(registry)
    params = {"taskId": "whatever", "inputResponses": {}}
    await session.receive(modern(1, method, params))
    error = (await outbox.response(1))["error"]
    assert (error["code"], error["data"]) == (MISSING_REQUIRED_CLIENT_CAPABILITY, REQUIRED)


@pytest.mark.parametrize("method", ["tasks/list", "tasks/result"])
async def test_the_2025_only_task_methods_are_unknown_to_a_modern_request(
    registry: ToolRegistry, method: str
) -> None:
    session, outbox = make_session(registry)
    await session.receive(extension_request(1, method, {"taskId": "x"}))
    assert (await outbox.response(1))["error"]["code"] == -32601


# --- on a socket, over history --------------------------------------------------------------
pytestmark_db = pytest.mark.django_db(transaction=True)


async def _reply(client: Client, message: dict[str, Any]) -> dict[str, Any]:
    """Send `message`; its response (other frames are kept in `client.notifications`)."""
    await client.send(message)
    while True:
        frame = await client.receive()
        if frame.get("id") == message["id"] and "method" not in frame:
            return dict(frame)
        client.notifications.append(frame)


async def _create(client: Client, request_id: int, arguments: dict[str, Any]) -> str:
    call = {"name": "process_batch", "arguments": arguments, "_meta": {"progressToken": "p"}}
    reply = await _reply(client, extension_request(request_id, "tools/call", call))
    created = reply["result"]
    assert created["resultType"] == "task"
    assert created["status"] == "working"
    assert {"taskId", "createdAt", "lastUpdatedAt", "ttlMs", "pollIntervalMs"} <= set(created)
    assert not {"task", "result", "ttl", "pollInterval"} & set(created)
    return str(created["taskId"])


async def _get(client: Client, request_id: int, task_id: str) -> dict[str, Any]:
    reply = await _reply(client, extension_request(request_id, "tasks/get", {"taskId": task_id}))
    return dict(reply["result"])


async def _until_ended(client: Client, first_id: int, task_id: str) -> dict[str, Any]:
    """Poll tasks/get (ids from `first_id` on) until the task has ended, as its client does."""
    request_ids = itertools.count(first_id)
    return await read_until(
        lambda: _get(client, next(request_ids), task_id),
        lambda task: task["status"] in ("completed", "failed", "cancelled"),
        TIMEOUT,
        f"task {task_id} to end",
    )


@pytestmark_db
async def test_a_long_call_becomes_a_task_polled_to_its_inlined_result(
    runtime: ProcessRuntime, token_path: Callable[..., str], issued: IssuedToken
) -> None:
    async with ws_connect(runtime, token_path()) as (client, _):
        task_id = await _create(client, 1, BATCH)
        # The row is written before the answer: it resolves at once.
        assert (await _get(client, 2, task_id))["taskId"] == task_id
        done = await _until_ended(client, 3, task_id)
    assert done["status"] == "completed"
    assert done["resultType"] == "complete"
    assert done["result"]["structuredContent"]["processed"] == BATCH["count"]
    assert "io.modelcontextprotocol/related-task" not in (done["result"].get("_meta") or {})
    assert "pollIntervalMs" not in done
    # No progress, logs or 2025 status notices for a task of the extension.
    assert [frame.get("method") for frame in client.notifications] == []

    # The same row in the handshake era, the REST API and the admin.
    async with ws_connect(runtime, token_path()) as (legacy, _):
        await legacy.initialize()
        got = (await legacy.reply("tasks/get", {"taskId": task_id}))["result"]
        assert (got["taskId"], got["status"]) == (task_id, "completed")
        listed = (await legacy.reply("tasks/list", {}))["result"]["tasks"]
        assert [task["taskId"] for task in listed] == [task_id]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw}")
    run = (await sync_to_async(api.get)(f"/api/runs/{task_id}/")).json()
    assert (run["id"], run["tool"], run["status"]) == (task_id, "process_batch", "succeeded")

    def admin_page() -> Any:
        admin = DjangoClient()
        admin.force_login(get_user_model().objects.create_superuser("root", "r@example.com"))
        return admin.get(reverse("admin:mcp_server_operation_change", args=[task_id]))

    page = await sync_to_async(admin_page)()
    assert page.status_code == 200
    assert b"process_batch" in page.content


@pytestmark_db
async def test_without_the_extension_the_same_call_answers_at_once(
    runtime: ProcessRuntime, token_path: Callable[..., str]
) -> None:
    async with ws_connect(runtime, token_path()) as (client, _):
        call = {"name": "process_batch", "arguments": {"count": 3, "item_ms": 0}}
        reply = await _reply(client, extension_request(1, "tools/call", call, capabilities={}))
        assert reply["result"]["resultType"] == "complete"
        assert reply["result"]["structuredContent"]["processed"] == 3
        # A legacy `task` hint does not make a task either.
        hinted = {**call, "task": {"ttl": 1000}}
        again = await _reply(client, extension_request(2, "tools/call", hinted, capabilities={}))
        assert again["result"]["resultType"] == "complete"
        # A short tool never becomes a task, even for a client of the extension.
        add = {"name": "add", "arguments": {"a": 1, "b": 2}}
        added = await _reply(client, extension_request(3, "tools/call", add))
        assert added["result"]["resultType"] == "complete"


@pytestmark_db
async def test_cancel_is_acknowledged_empty_and_the_task_ends_cancelled(
    runtime: ProcessRuntime, token_path: Callable[..., str]
) -> None:
    async with ws_connect(runtime, token_path()) as (client, _):
        task_id = await _create(client, 1, LONG)
        cancel = extension_request(2, "tasks/cancel", {"taskId": task_id})
        ack = (await _reply(client, cancel))["result"]
        assert set(ack) == {"resultType", "_meta"} and ack["resultType"] == "complete"
        ended = await _get(client, 3, task_id)
        assert ended["status"] == "cancelled"
        assert "result" not in ended and "error" not in ended
        # Cancelling an ended task is acknowledged the same way.
        again = extension_request(4, "tasks/cancel", {"taskId": task_id})
        assert (await _reply(client, again))["result"]["resultType"] == "complete"


@pytestmark_db
async def test_update_is_acknowledged_and_checks_its_task_and_responses(
    runtime: ProcessRuntime, token_path: Callable[..., str]
) -> None:
    async with ws_connect(runtime, token_path()) as (client, _):
        task_id = await _create(client, 1, LONG)
        responses = {"never-asked": {"action": "accept", "content": {}}}
        update = {"taskId": task_id, "inputResponses": responses}
        ack = (await _reply(client, extension_request(2, "tasks/update", update)))["result"]
        assert ack["resultType"] == "complete"
        assert (await _get(client, 3, task_id))["status"] == "working"
        bad = {"taskId": task_id, "inputResponses": ["not", "an", "object"]}
        refused = await _reply(client, extension_request(4, "tasks/update", bad))
        assert refused["error"]["code"] == INVALID_PARAMS
        unknown = {"taskId": "0190aaaa-0000-7000-8000-000000000000", "inputResponses": {}}
        missing = await _reply(client, extension_request(5, "tasks/update", unknown))
        assert missing["error"]["code"] == INVALID_PARAMS
        await _reply(client, extension_request(6, "tasks/cancel", {"taskId": task_id}))


@pytestmark_db
async def test_another_users_task_is_exactly_an_unknown_one(
    runtime: ProcessRuntime, token_path: Callable[..., str]
) -> None:
    async with ws_connect(runtime, token_path()) as (client, _):
        task_id = await _create(client, 1, LONG)
    bob = await sync_to_async(member_token)("bob", tenant_slug="acme")
    unknown = "0190aaaa-0000-7000-8000-000000000000"
    async with ws_connect(runtime, f"/mcp?token={bob.raw}") as (other, _):
        for number, method in enumerate(["tasks/get", "tasks/update", "tasks/cancel"]):
            answers = []
            for offset, target in enumerate((task_id, unknown)):
                params = {"taskId": target, "inputResponses": {}}
                reply = await _reply(other, extension_request(10 * number + offset, method, params))
                answers.append((reply["error"]["code"], reply["error"]["message"]))
            assert answers[0][0] == answers[1][0] == INVALID_PARAMS
            assert answers[0][1].replace(task_id, "?") == answers[1][1].replace(unknown, "?")
    async with ws_connect(runtime, token_path()) as (client, _):
        # Bob's cancel changed nothing.
        assert (await _get(client, 1, task_id))["status"] == "working"
        await _reply(client, extension_request(2, "tasks/cancel", {"taskId": task_id}))


async def _frame(client: Client, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first frame, kept aside or still to come, that satisfies `predicate` (within
    TIMEOUT); the others are kept aside."""
    for kept in client.notifications:
        if predicate(kept):
            client.notifications.remove(kept)
            return dict(kept)
    while True:
        frame = await client.receive()
        if predicate(frame):
            return dict(frame)
        client.notifications.append(frame)


def _task_notice(task_id: str, status: str) -> Callable[[dict[str, Any]], bool]:
    return lambda frame: (
        frame.get("method") == "notifications/tasks"
        and frame["params"]["taskId"] == task_id
        and frame["params"]["status"] == status
    )


@pytestmark_db
async def test_a_listen_hears_the_callers_tasks_as_they_are_then_as_they_end(
    runtime: ProcessRuntime, token_path: Callable[..., str]
) -> None:
    subscription = "listen-1"
    unknown = "0190aaaa-0000-7000-8000-000000000000"
    async with ws_connect(runtime, token_path()) as (client, _):
        ended = await _create(client, 1, {"count": 1, "item_ms": 0})
        await _until_ended(client, 2, ended)
        running = await _create(client, 10, BATCH)
        ids = [running, unknown, ended]
        listen = {"notifications": {"taskIds": ids}}
        await client.send(extension_request(subscription, "subscriptions/listen", listen))
        ack = await _frame(
            client, lambda f: f.get("method") == "notifications/subscriptions/acknowledged"
        )
        assert ack["params"]["notifications"]["taskIds"] == [running, ended]
        tag = {"io.modelcontextprotocol/subscriptionId": subscription}
        done_before = await _frame(client, _task_notice(ended, "completed"))
        assert done_before["params"]["_meta"] == tag
        assert done_before["params"]["result"]["structuredContent"]["processed"] == 1
        working = await _frame(client, _task_notice(running, "working"))
        assert working["params"]["pollIntervalMs"] > 0
        done = await _frame(client, _task_notice(running, "completed"))
        assert done["params"]["_meta"] == tag
        assert done["params"]["result"]["structuredContent"]["processed"] == BATCH["count"]
        # No progress or logs of the task, on the listen or anywhere on the socket.
        assert not [f for f in client.notifications if f.get("method") == "notifications/progress"]
        await client.send(
            {
                "jsonrpc": "2.0",
                "method": "notifications/cancelled",
                "params": {"requestId": subscription},
            }
        )


@pytestmark_db
async def test_a_listen_without_the_extension_may_not_ask_for_tasks(
    runtime: ProcessRuntime, token_path: Callable[..., str]
) -> None:
    async with ws_connect(runtime, token_path()) as (client, _):
        params = {"notifications": {"taskIds": ["anything"]}}
        reply = await _reply(
            client, extension_request(1, "subscriptions/listen", params, capabilities={})
        )
        assert reply["error"]["code"] == MISSING_REQUIRED_CLIENT_CAPABILITY
        assert reply["error"]["data"] == REQUIRED
