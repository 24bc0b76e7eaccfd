"""A tasks-extension task that asks its client, across processes: it runs on the worker, one
web process shows it input_required with its question, and the answer sent to the other web
process reaches the worker (operation.answer through Redis); a task made on the final round
of input-required results takes that round's answer to the worker; the conformance fixtures,
on a cluster of their own."""

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from mcp_server.client.http import HttpSession
from mcp_server.protocol.tasks import TASKS_EXTENSION
from tests.cluster.support import WAIT, Cluster
from tests.e2e.support import Deployment, read_until

CAPABILITIES: dict[str, Any] = {"elicitation": {}, "extensions": {TASKS_EXTENSION: {}}}
WITH_FIXTURES = {
    "MCP_TOOL_APPS": "example_tools,conformance_fixtures",
    # Its own channel layer names: the session's cluster has no fixtures to run.
    "MCP_CHANNEL_PREFIX": f"test-{secrets.token_hex(4)}",
}


@pytest.fixture(scope="module")
def with_fixtures(cluster_deployment: Deployment) -> Deployment:
    """The cluster's installation, its commands run with the fixtures."""
    return cluster_deployment.with_env(WITH_FIXTURES)


@pytest.fixture(scope="module")
def fixture_cluster(with_fixtures: Deployment) -> Iterator[tuple[Cluster, str]]:
    """Two web processes and a worker with the fixtures, and a token of the tenant that has
    them."""
    with_fixtures.manage("conformance_tenant")
    with_fixtures.create_user("task-asker", "conformance")
    token = with_fixtures.create_token("task-asker", name="task-asker-cluster")
    cluster = Cluster(deployment=with_fixtures, env={})
    try:
        cluster.start()
        yield cluster, token
    finally:
        cluster.stop()


async def answer(client: HttpSession, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """The result of a 2026-07-28 request declaring elicitation and the tasks extension."""
    reply = await client.modern(method, params, capabilities=CAPABILITIES)
    (response,) = [message for message in reply.messages if "method" not in message]
    assert "result" in response, response  # an error says what went wrong
    return dict(response["result"])


async def until(client: HttpSession, task_id: str, status: str) -> dict[str, Any]:
    """The task as tasks/get shows it once it has `status` (within WAIT seconds); polled, as
    tasks/get shows the history row and nobody is told of its writes."""
    return await read_until(
        lambda: answer(client, "tasks/get", {"taskId": task_id}),
        lambda task: task["status"] == status,
        WAIT,
        f"task {task_id} to be {status}",
    )


async def test_a_question_asked_on_the_worker_is_answered_through_another_process(
    fixture_cluster: tuple[Cluster, str], with_fixtures: Deployment
) -> None:
    cluster, token = fixture_cluster
    first, second = cluster.web
    here = HttpSession(f"{first.http_url}/mcp", token)
    there = here.at(f"{second.http_url}/mcp")
    try:
        call = {"name": "confirm_delete", "arguments": {"filename": "b.txt"}}
        task_id = (await answer(here, "tools/call", call))["taskId"]
        asking = await until(here, task_id, "input_required")
        (key,) = asking["inputRequests"]
        responses = {key: {"action": "accept", "content": {"confirm": True}}}
        await answer(there, "tasks/update", {"taskId": task_id, "inputResponses": responses})
        done = await until(there, task_id, "completed")
    finally:
        await here.close()
        await there.close()
    assert done["result"]["content"][0]["text"] == "Deleted b.txt"
    # It ran on the worker: neither web process held the question.
    runner = with_fixtures.shell(
        "from mcp_server.models import Operation; "
        f"print(Operation.objects.get(pk={task_id!r}).runner)"
    )
    assert runner.strip().endswith(f":{cluster.workers[0].process.pid}")


async def test_a_task_made_on_a_final_round_runs_on_the_worker_with_its_answer(
    fixture_cluster: tuple[Cluster, str], with_fixtures: Deployment
) -> None:
    cluster, token = fixture_cluster
    first, second = cluster.web
    here = HttpSession(f"{first.http_url}/mcp", token)
    there = here.at(f"{second.http_url}/mcp")
    try:
        call: dict[str, Any] = {"name": "test_tool_with_task", "arguments": {}}
        asked = await answer(here, "tools/call", call)
        assert asked["resultType"] == "input_required"
        given = {"user_name": {"action": "accept", "content": {"name": "Alice"}}}
        retry = {**call, "inputResponses": given, "requestState": asked["requestState"]}
        created = await answer(there, "tools/call", retry)
        assert created["resultType"] == "task"
        done = await until(here, created["taskId"], "completed")
    finally:
        await here.close()
        await there.close()
    assert done["result"]["content"][0]["text"] == "Hello, Alice! (from a task)"
    runner = with_fixtures.shell(
        "from mcp_server.models import Operation; "
        f"print(Operation.objects.get(pk={created['taskId']!r}).runner)"
    )
    assert runner.strip().endswith(f":{cluster.workers[0].process.pid}")
