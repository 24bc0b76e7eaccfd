"""McpSession answering 2026-07-28 requests with input-required results (MRTR): rounds,
retries with new ids, the request state's checks, what history records, and the same tool
asking the handshake-era way on an initialized connection."""

from typing import Any
from uuid import UUID

import pytest

from mcp_server.protocol.errors import INVALID_PARAMS
from mcp_server.protocol.input_required import InputRequest
from mcp_server.runtime.context import ToolContext
from mcp_server.session import McpSession
from mcp_server.tools.registry import ToolRegistry, build_tool
from tests.ws.session_support import Outbox, call, initialize, make_session
from tests.ws.test_modern_session import modern

NAME = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
EVERYTHING: dict[str, Any] = {"elicitation": {}, "sampling": {}, "roots": {}}
CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"


class RecordingHistory:
    """A history writer that keeps every snapshot, for what a call left in history."""

    def __init__(self) -> None:
        self.snapshots: list[dict[str, Any]] = []

    def keeps(self, operation_id: UUID) -> bool:
        """Every operation's states come here."""
        return True

    def record(self, snapshot: dict[str, Any]) -> None:
        """Keep an operation snapshot."""
        self.snapshots.append(dict(snapshot))

    def record_errors(self, rows: list[dict[str, Any]]) -> None:
        """Drop item errors."""

    def last(self) -> dict[str, Any]:
        """The newest snapshot."""
        return self.snapshots[-1]


async def two_questions(ctx: ToolContext, greeting: str = "Hello") -> str:
    """Ask for a name, then for a colour."""
    name = await ctx.elicit("Name?", NAME, key="name")
    color = await ctx.elicit("Colour?", NAME, key="color")
    return f"{greeting} {name['content']['name']}, who likes {color['content']['name']}"


async def careless(ctx: ToolContext) -> str:
    """Ask inside a broad `except Exception`, as tools sometimes do."""
    try:
        answer = await ctx.elicit("Name?", NAME, key="name")
    except Exception:
        return "went on without an answer"
    return str(answer["action"])


@pytest.fixture
def registry() -> ToolRegistry:
    reg = ToolRegistry()
    reg.register(build_tool(two_questions))
    reg.register(build_tool(careless))
    return reg


@pytest.fixture
def served(registry: ToolRegistry) -> tuple[McpSession, Outbox, RecordingHistory]:
    session, outbox = make_session(registry)
    history = RecordingHistory()
    session.executor.runner.writer = history  # type: ignore[assignment]
    return session, outbox, history


def _call(request_id: int, arguments: dict[str, Any] | None = None, **extra: Any) -> Any:
    params = {"name": "two_questions", "arguments": arguments or {}, **extra}
    return modern(request_id, "tools/call", params, **{CAPABILITIES: EVERYTHING})


def _accept(name: str) -> dict[str, Any]:
    return {"action": "accept", "content": {"name": name}}


async def test_two_rounds_then_the_result_each_retry_a_new_id(
    served: tuple[McpSession, Outbox, RecordingHistory],
) -> None:
    session, outbox, history = served
    await session.receive(_call(1))
    first = (await outbox.response(1))["result"]
    assert first["resultType"] == "input_required"
    assert list(first["inputRequests"]) == ["name"]
    assert first["inputRequests"]["name"]["method"] == "elicitation/create"
    # Recorded as what happened: it asked (no success, no failure, no result).
    assert history.last()["status"] == "input_required"
    assert history.last()["result_summary"] == {"inputRequests": ["name"]}

    retry = {"inputResponses": {"name": _accept("Ada")}, "requestState": first["requestState"]}
    await session.receive(_call(2, **retry))
    second = (await outbox.response(2))["result"]
    assert list(second["inputRequests"]) == ["color"]
    assert second["requestState"] != first["requestState"]

    # Only the newest state is needed: it carries the first answer.
    last = {"inputResponses": {"color": _accept("teal")}, "requestState": second["requestState"]}
    await session.receive(_call(3, **last))
    done = (await outbox.response(3))["result"]
    assert done["resultType"] == "complete"
    assert done["content"][0]["text"] == "Hello Ada, who likes teal"
    assert history.last()["status"] == "succeeded"
    # Three runs, one per request: two that asked, one that succeeded.
    ended = [s["status"] for s in history.snapshots if s["finished_at"] is not None]
    assert ended == ["input_required", "input_required", "succeeded"]


@pytest.mark.parametrize(
    "change",
    [
        {"arguments": {"greeting": "Hi"}},  # other arguments than the state was made for
        {"tamper": True},
    ],
)
async def test_a_state_for_another_request_or_tampered_is_refused_before_the_tool_runs(
    served: tuple[McpSession, Outbox, RecordingHistory], change: dict[str, Any]
) -> None:
    session, outbox, history = served
    await session.receive(_call(1))
    state = (await outbox.response(1))["result"]["requestState"]
    runs = len(history.snapshots)
    if change.get("tamper"):
        state = state[:-3] + ("AAA" if not state.endswith("AAA") else "BBB")
    retry = {"inputResponses": {"name": _accept("Ada")}, "requestState": state}
    await session.receive(_call(2, change.get("arguments"), **retry))
    reply = await outbox.response(2)
    assert reply["error"]["code"] == INVALID_PARAMS
    assert reply["error"]["message"] == "requestState failed verification"
    assert len(history.snapshots) == runs  # nothing ran, nothing recorded


@pytest.mark.parametrize(
    ("responses", "code"),
    [
        (None, INVALID_PARAMS),
        ({"name": 12345}, INVALID_PARAMS),
        ({"name": {"x": 1}}, INVALID_PARAMS),
    ],
)
async def test_malformed_input_responses_are_errors_not_results(
    served: tuple[McpSession, Outbox, RecordingHistory], responses: Any, code: int
) -> None:
    session, outbox, _ = served
    await session.receive(_call(1, inputResponses=responses))
    assert (await outbox.response(1))["error"]["code"] == code


async def test_a_client_without_elicitation_is_not_asked(registry: ToolRegistry) -> None:
    session, outbox = make_session(registry)
    params = {"name": "two_questions", "arguments": {}}
    await session.receive(modern(1, "tools/call", params, **{CAPABILITIES: {"sampling": {}}}))
    result = (await outbox.response(1))["result"]
    assert result["isError"] is True and result["resultType"] == "complete"
    assert "did not declare the elicitation capability" in result["content"][0]["text"]


async def test_the_same_tool_asks_the_client_on_an_initialized_connection(
    registry: ToolRegistry,
) -> None:
    session, outbox = make_session(registry)
    await initialize(session, outbox, capabilities={"elicitation": {}})
    await session.receive(call(7, "two_questions"))
    for answer in ("Ada", "teal"):
        seen = len(outbox.messages)

        def asks(message: Any, after: int = seen) -> bool:
            return (
                isinstance(message, dict)
                and message.get("method") == "elicitation/create"
                and outbox.messages.index(message) >= after
            )

        asked = await outbox.wait_for(asks)
        await session.receive({"jsonrpc": "2.0", "id": asked["id"], "result": _accept(answer)})
    reply = await outbox.response(7)
    assert reply["result"]["content"][0]["text"] == "Hello Ada, who likes teal"
    assert "resultType" not in reply["result"]


async def test_a_tools_broad_except_does_not_swallow_the_question(registry: ToolRegistry) -> None:
    session, outbox = make_session(registry)
    params = {"name": "careless", "arguments": {}}
    await session.receive(modern(1, "tools/call", params, **{CAPABILITIES: EVERYTHING}))
    result = (await outbox.response(1))["result"]
    assert result["resultType"] == "input_required"
    assert list(result["inputRequests"]) == ["name"]


async def test_only_elicitation_sampling_and_roots_can_be_asked(registry: ToolRegistry) -> None:
    async def odd(ctx: ToolContext) -> str:
        """Ask something no client answers."""
        await ctx.ask({"x": InputRequest("tools/list", {})})
        return "asked"

    registry.register(build_tool(odd))
    session, outbox = make_session(registry)
    params = {"name": "odd", "arguments": {}}
    await session.receive(modern(1, "tools/call", params, **{CAPABILITIES: EVERYTHING}))
    result = (await outbox.response(1))["result"]
    assert result["isError"] is True  # the tool's own bug, reported with a reference
    assert "failed unexpectedly" in result["content"][0]["text"]
