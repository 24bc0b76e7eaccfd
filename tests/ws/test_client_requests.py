"""Requests of the server to the client (elicitation, sampling) through McpSession."""

import asyncio
from typing import Any

import pytest

from mcp_server.protocol.messages import Response
from mcp_server.runtime.context import ToolContext
from mcp_server.runtime.runner import CallRequest
from mcp_server.session import McpSession
from mcp_server.tools.registry import ToolRegistry, build_tool
from tests.ws.session_support import Outbox, call, initialize, make_session, notification

ELICITATION: dict[str, Any] = {"elicitation": {}}
SAMPLING: dict[str, Any] = {"sampling": {}}
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}}


async def ask_name(ctx: ToolContext) -> str:
    """Ask the user for a name."""
    answer = await ctx.elicit("Your name?", SCHEMA)
    return f"{answer['action']}: {answer.get('content')}"


async def summarise(ctx: ToolContext) -> str:
    """Ask the client's model for a summary."""
    messages = [{"role": "user", "content": {"type": "text", "text": "Summarise"}}]
    reply = await ctx.create_message(messages, max_tokens=50, system_prompt="Be brief")
    return str(reply["content"]["text"])


@pytest.fixture
def registry() -> ToolRegistry:
    reg = ToolRegistry()
    reg.register(build_tool(ask_name))
    reg.register(build_tool(summarise))
    return reg


def _client_request(method: str) -> Any:
    return lambda message: isinstance(message, dict) and message.get("method") == method


def _answer(request: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request["id"], "result": result}


async def _ready(
    registry: ToolRegistry, capabilities: dict[str, Any], **options: Any
) -> tuple[McpSession, Outbox]:
    session, outbox = make_session(registry, **options)
    await initialize(session, outbox, capabilities=capabilities)
    return session, outbox


def _text(reply: dict[str, Any]) -> str:
    return str(reply["result"]["content"][0]["text"])


async def test_elicitation_round_trip(registry: ToolRegistry) -> None:
    session, outbox = await _ready(registry, ELICITATION)
    await session.receive(call(1, "ask_name"))
    asked = await outbox.wait_for(_client_request("elicitation/create"))
    assert asked["params"] == {"message": "Your name?", "requestedSchema": SCHEMA}
    # The id is ours, a string no client would pick by chance.
    assert isinstance(asked["id"], str) and len(asked["id"]) > 20

    await session.receive(_answer(asked, {"action": "accept", "content": {"name": "Ada"}}))
    reply = await outbox.response(1)
    assert _text(reply) == "accept: {'name': 'Ada'}"
    assert "isError" not in reply["result"]


async def test_sampling_round_trip(registry: ToolRegistry) -> None:
    session, outbox = await _ready(registry, SAMPLING)
    await session.receive(call(1, "summarise"))
    asked = await outbox.wait_for(_client_request("sampling/createMessage"))
    assert asked["params"]["maxTokens"] == 50
    assert asked["params"]["systemPrompt"] == "Be brief"
    assert asked["params"]["messages"][0]["role"] == "user"

    answer = {"role": "assistant", "content": {"type": "text", "text": "Short."}, "model": "m"}
    await session.receive(_answer(asked, answer))
    assert _text(await outbox.response(1)) == "Short."


@pytest.mark.parametrize(
    ("tool", "capabilities", "missing"),
    [
        ("ask_name", SAMPLING, "elicitation"),
        ("summarise", ELICITATION, "sampling"),
        # Declared for URL mode only: form-mode elicitation is not declared.
        ("ask_name", {"elicitation": {"url": {}}}, "elicitation capability (form mode)"),
    ],
)
async def test_undeclared_capability_is_a_tool_error(
    registry: ToolRegistry, tool: str, capabilities: dict[str, Any], missing: str
) -> None:
    session, outbox = await _ready(registry, capabilities)
    await session.receive(call(1, tool))
    reply = await outbox.response(1)
    assert reply["result"]["isError"] is True
    assert f"did not declare the {missing}" in _text(reply)
    # Nothing was sent to the client but the reply.
    assert [m for m in outbox.messages if isinstance(m, dict) and "method" in m] == []


async def test_client_error_is_a_tool_error(registry: ToolRegistry) -> None:
    session, outbox = await _ready(registry, ELICITATION)
    await session.receive(call(1, "ask_name"))
    asked = await outbox.wait_for(_client_request("elicitation/create"))
    error = {"code": -32600, "message": "user closed the dialog"}
    await session.receive({"jsonrpc": "2.0", "id": asked["id"], "error": error})
    reply = await outbox.response(1)
    assert reply["result"]["isError"] is True
    assert "user closed the dialog" in _text(reply)


async def test_a_response_under_another_id_answers_nothing(registry: ToolRegistry) -> None:
    session, outbox = await _ready(registry, ELICITATION)
    await session.receive(call(1, "ask_name"))
    asked = await outbox.wait_for(_client_request("elicitation/create"))
    forged = {"jsonrpc": "2.0", "id": "srv-guess", "result": {"action": "decline"}}
    await session.receive(forged)
    await session.receive({"jsonrpc": "2.0", "id": 1, "result": {"action": "decline"}})
    assert outbox.responses(1) == []

    await session.receive(_answer(asked, {"action": "cancel"}))
    assert _text(await outbox.response(1)) == "cancel: None"
    # A second answer to the same request is ignored too.
    assert not session.handle_response(Response(asked["id"], {"action": "accept"}, None))


async def test_unanswered_request_times_out(registry: ToolRegistry) -> None:
    session, outbox = await _ready(registry, ELICITATION, client_request_timeout=0.2)
    await session.receive(call(1, "ask_name"))
    asked = await outbox.wait_for(_client_request("elicitation/create"))
    reply = await outbox.response(1)
    assert "did not answer elicitation/create within 0.2 s" in _text(reply)
    cancelled = await outbox.wait_for(_client_request("notifications/cancelled"))
    assert cancelled["params"]["requestId"] == asked["id"]
    # The late answer finds nobody waiting.
    await session.receive(_answer(asked, {"action": "accept", "content": {}}))
    assert len(outbox.responses(1)) == 1


async def test_outstanding_requests_are_bounded(registry: ToolRegistry) -> None:
    session, outbox = await _ready(registry, ELICITATION, client_requests_per_connection=2)
    for request_id in (1, 2):
        await session.receive(call(request_id, "ask_name"))
    await outbox.wait_for(
        lambda _: len([m for m in outbox.messages if _client_request("elicitation/create")(m)]) == 2
    )
    await session.receive(call(3, "ask_name"))
    refused = await outbox.response(3)
    assert refused["result"]["isError"] is True
    assert "at most 2 per connection" in _text(refused)

    asked = [m for m in outbox.messages if _client_request("elicitation/create")(m)]
    for request in asked:
        await session.receive(_answer(request, {"action": "decline"}))
    for request_id in (1, 2):
        assert _text(await outbox.response(request_id)) == "decline: None"
    # With the two answered, a new request goes out again.
    await session.receive(call(4, "ask_name"))
    await outbox.wait_for(
        lambda _: len([m for m in outbox.messages if _client_request("elicitation/create")(m)]) == 3
    )


async def test_cancelled_call_cancels_its_request(registry: ToolRegistry) -> None:
    session, outbox = await _ready(registry, ELICITATION)
    await session.receive(call(1, "ask_name"))
    asked = await outbox.wait_for(_client_request("elicitation/create"))
    await session.receive(notification("notifications/cancelled", {"requestId": 1}))
    cancelled = await outbox.wait_for(_client_request("notifications/cancelled"))
    assert cancelled["params"] == {"requestId": asked["id"], "reason": "the call was cancelled"}
    tasks = session._spawned.tasks
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=5)
        assert not pending
    assert outbox.responses(1) == []


async def test_close_ends_the_wait(registry: ToolRegistry) -> None:
    session, outbox = await _ready(registry, ELICITATION)
    await session.receive(call(1, "ask_name"))
    await outbox.wait_for(_client_request("elicitation/create"))
    tasks = session._spawned.tasks
    await asyncio.wait_for(session.close(), timeout=5)
    assert all(task.done() for task in tasks)
    # Closed: no reply, and no cancel notice for a connection that is gone.
    assert outbox.responses(1) == []
    assert not [m for m in outbox.messages if _client_request("notifications/cancelled")(m)]


class Listeners:
    """The listeners of a published run (a task, a call run on a worker): what they hear."""

    def __init__(self) -> None:
        self.outcome: dict[str, Any] | None = None

    async def log(self, level: str, data: Any, logger: str | None) -> None:
        """No log is expected."""

    async def progress(self, report: Any) -> None:
        """No progress is expected."""

    def record_end(self, operation: Any) -> None:
        """Nothing to note."""

    async def asking(self, input_requests: dict[str, Any] | None) -> None:
        """No question is expected (a 2025-11-25 task cannot ask)."""

    async def finished(self, *, status: str, result: dict[str, Any] | None, error: str) -> None:
        self.outcome = {"status": status, "result": result}


async def test_a_published_run_cannot_ask_the_client(registry: ToolRegistry) -> None:
    # Tasks and calls run on workers are published: away from the connection, so refused.
    session, _ = await _ready(registry, ELICITATION)
    runner = session.executor.runner
    request = CallRequest(
        principal=session.principal,
        tool=registry.get("ask_name"),  # type: ignore[arg-type]
        arguments={},
        connection_id="elsewhere",
        request_id=1,
        progress_token=None,
    )
    listeners = Listeners()
    await asyncio.wait_for(runner.run_published(request, listeners), timeout=5)
    assert listeners.outcome is not None
    assert listeners.outcome["status"] == "failed"
    result = listeners.outcome["result"]
    assert result["isError"] is True
    assert (
        "only a call run in the process that holds the connection, a tasks-extension task"
        in (result["content"][0]["text"])
    )
