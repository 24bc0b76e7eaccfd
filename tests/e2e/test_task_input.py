"""A task of the tasks extension that asks its client for input, through a real server over
Streamable HTTP (2026-07-28): `input_required` with its `inputRequests` on tasks/get, answered
by tasks/update (one question at a time; a response of the wrong kind refused), then
completed; input-required rounds first, then a task made on the final round with their
answer; the conformance fixtures confirm_delete, multi_input and test_tool_with_task."""

import asyncio
from typing import Any

import pytest

from mcp_server.client.http import HttpSession
from mcp_server.protocol.errors import INVALID_PARAMS
from mcp_server.protocol.tasks import TASKS_EXTENSION
from tests.e2e.conftest import ServerFactory
from tests.e2e.support import Deployment, ServerProcess, read_until
from tests.e2e.test_conformance_fixtures import FIXTURE_APPS, TENANT
from tests.http.conftest import http_session

WAIT = 20.0
CAPABILITIES: dict[str, Any] = {"elicitation": {}, "extensions": {TASKS_EXTENSION: {}}}


@pytest.fixture(scope="module")
def fixture_server(server_factory: ServerFactory) -> ServerProcess:
    """A server with the conformance fixtures installed."""
    return server_factory(MCP_TOOL_APPS=FIXTURE_APPS)


@pytest.fixture(scope="module")
def conformance_token(deployment: Deployment, fixture_server: ServerProcess) -> str:
    """A token of a member of the conformance tenant (`conformance_tenant` made or updated)."""
    deployment.with_env({"MCP_TOOL_APPS": FIXTURE_APPS}).manage("conformance_tenant")
    deployment.create_user("task-asker", TENANT)
    return deployment.create_token("task-asker", name="task-asker")


async def answer(client: HttpSession, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """The result of a 2026-07-28 request declaring elicitation and the tasks extension."""
    reply = await client.modern(method, params, capabilities=CAPABILITIES)
    (response,) = [message for message in reply.messages if "method" not in message]
    return dict(response["result"])


async def until(client: HttpSession, task_id: str, *, asked: int) -> dict[str, Any]:
    """The task as tasks/get shows it once it asks `asked` questions (0: once it has ended).

    Polled: tasks/get shows the history row, whose writes nobody is told of (a listen hears
    the runner, which may be ahead of the history writer)."""

    def shows(task: dict[str, Any]) -> bool:
        if asked:
            return len(task.get("inputRequests") or {}) == asked
        return task["status"] in ("completed", "failed", "cancelled")

    return await read_until(
        lambda: answer(client, "tasks/get", {"taskId": task_id}),
        shows,
        WAIT,
        f"task {task_id} to ask {asked} questions" if asked else f"task {task_id} to end",
    )


async def test_a_task_asks_is_answered_and_completes(
    fixture_server: ServerProcess, conformance_token: str
) -> None:
    async with http_session(fixture_server, conformance_token, initialize=False) as client:
        call = {"name": "confirm_delete", "arguments": {"filename": "a.txt"}}
        created = await answer(client, "tools/call", call)
        assert created["resultType"] == "task"
        task_id = created["taskId"]
        asking = await until(client, task_id, asked=1)
        assert asking["status"] == "input_required"
        ((key, question),) = asking["inputRequests"].items()
        assert question["method"] == "elicitation/create"
        assert question["params"]["message"] == "Delete a.txt?"
        # A response that is not an ElicitResult is refused, as in an input round.
        wrong = {"taskId": task_id, "inputResponses": {key: {"action": "maybe"}}}
        reply = await client.modern("tasks/update", wrong, capabilities=CAPABILITIES)
        (refused,) = [message for message in reply.messages if "method" not in message]
        assert refused["error"]["code"] == INVALID_PARAMS
        assert (await until(client, task_id, asked=1))["inputRequests"] == asking["inputRequests"]
        responses = {
            "never-asked": {"action": "accept", "content": {}},
            key: {"action": "accept", "content": {"confirm": True}},
        }
        ack = await answer(client, "tasks/update", {"taskId": task_id, "inputResponses": responses})
        assert ack["resultType"] == "complete"
        done = await until(client, task_id, asked=0)
    assert done["status"] == "completed"
    assert done["result"]["content"][0]["text"] == "Deleted a.txt"
    assert "inputRequests" not in done


async def test_questions_are_answered_one_at_a_time(
    fixture_server: ServerProcess, conformance_token: str
) -> None:
    async with http_session(fixture_server, conformance_token, initialize=False) as client:
        task_id = (await answer(client, "tools/call", {"name": "multi_input"}))["taskId"]
        both = await until(client, task_id, asked=2)
        first, second = both["inputRequests"]
        update = {"taskId": task_id, "inputResponses": {first: {"action": "decline"}}}
        await answer(client, "tasks/update", update)
        # Answered here, the update is in history before its acknowledgement.
        left = await answer(client, "tasks/get", {"taskId": task_id})
        assert (left["status"], list(left["inputRequests"])) == ("input_required", [second])
        # An answered key is not asked again: answering it twice changes nothing.
        update = {"taskId": task_id, "inputResponses": {second: {"action": "accept"}}}
        await answer(client, "tasks/update", update)
        await answer(client, "tasks/update", update)
        done = await until(client, task_id, asked=0)
    assert done["status"] == "completed"
    assert done["result"]["content"][0]["text"] == "Answered: decline, accept"


async def test_a_listen_hears_the_question_and_the_end(
    fixture_server: ServerProcess, conformance_token: str
) -> None:
    async with http_session(fixture_server, conformance_token, initialize=False) as client:
        call = {"name": "confirm_delete", "arguments": {"filename": "c.txt"}}
        task_id = (await answer(client, "tools/call", call))["taskId"]
        asked = {"taskIds": [task_id]}
        async with client.subscribe(asked, capabilities=CAPABILITIES) as (_, _, events):
            assert events is not None

            async def next_state() -> dict[str, Any]:
                async for event in events:
                    message = event.json() if event.data else None
                    if message and message.get("method") == "notifications/tasks":
                        return dict(message["params"])
                raise AssertionError("the listen ended")

            async def asking() -> dict[str, Any]:
                while True:
                    state = await next_state()
                    if state["status"] == "input_required":
                        return state

            question = await asyncio.wait_for(asking(), WAIT)
            (key,) = question["inputRequests"]
            responses = {key: {"action": "accept", "content": {"confirm": False}}}
            await answer(client, "tasks/update", {"taskId": task_id, "inputResponses": responses})

            async def ended() -> dict[str, Any]:
                while True:
                    state = await next_state()
                    assert state["status"] != "input_required" or key in state["inputRequests"]
                    if state["status"] == "completed":
                        return state

            done = await asyncio.wait_for(ended(), WAIT)
    assert done["result"]["content"][0]["text"] == "Kept c.txt"


async def test_input_rounds_first_then_a_task_with_their_answer(
    fixture_server: ServerProcess, conformance_token: str
) -> None:
    async with http_session(fixture_server, conformance_token, initialize=False) as client:
        call: dict[str, Any] = {"name": "test_tool_with_task", "arguments": {}}
        asked = await answer(client, "tools/call", call)
        assert asked["resultType"] == "input_required" and "taskId" not in asked
        assert list(asked["inputRequests"]) == ["user_name"]
        given = {"user_name": {"action": "accept", "content": {"name": "Alice"}}}
        retry = {**call, "inputResponses": given, "requestState": asked["requestState"]}
        created = await answer(client, "tools/call", retry)
        assert created["resultType"] == "task"
        assert not {"requestState", "inputRequests"} & set(created)
        done = await until(client, created["taskId"], asked=0)
    assert done["status"] == "completed"
    assert done["result"]["content"][0]["text"] == "Hello, Alice! (from a task)"
    # In history: the round that ended by asking (input_required, no task), then the task.
    status, runs = fixture_server.get_json("/api/runs/?tool=test_tool_with_task", conformance_token)
    assert status == 200
    assert [(run["status"], run["id"] == created["taskId"]) for run in runs["results"]] == [
        ("succeeded", True),
        ("input_required", False),
    ]
