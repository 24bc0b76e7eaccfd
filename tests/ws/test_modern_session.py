"""McpSession serving 2026-07-28 requests: no handshake, the era chosen per request, every
result finished (resultType, serverInfo, caching hints), the removed methods gone."""

import asyncio
import time
import uuid
from typing import Any

import pytest

from mcp_server.cluster.messages import OperationLog
from mcp_server.protocol.errors import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    UNSUPPORTED_PROTOCOL_VERSION,
)
from mcp_server.protocol.log_levels import request_log_rank
from mcp_server.runtime.context import ToolContext
from mcp_server.tools.registry import ToolRegistry, build_tool
from tests.ws.session_support import TIMEOUT, initialize, make_session, notification, request

MODERN = "2026-07-28"
SERVER_INFO = {"name": "test-server", "title": "Test", "version": "0.0.1"}


def modern_meta(**extra: Any) -> dict[str, Any]:
    """A 2026-07-28 request's `_meta` (no client capabilities), with `extra` keys."""
    return {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "pytest", "version": "1"},
        **extra,
    }


def modern(request_id: Any, method: str, params: dict[str, Any] | None = None, **meta: Any) -> Any:
    """A 2026-07-28 request: `params` with the modern `_meta` (and `meta` keys) added."""
    return request(request_id, method, {**(params or {}), "_meta": modern_meta(**meta)})


async def counting(ctx: ToolContext, steps: int = 3) -> str:
    """Report `steps` steps of progress, then finish."""
    for step in range(1, steps + 1):
        ctx.progress(step, steps)
    return f"counted {steps}"


@pytest.fixture
def registry() -> ToolRegistry:
    reg = ToolRegistry()
    reg.register(build_tool(counting))
    return reg


async def test_discover_needs_no_handshake(registry: ToolRegistry) -> None:
    session, outbox = make_session(registry)
    await session.receive(modern(1, "server/discover"))
    result = (await outbox.response(1))["result"]
    assert result["supportedVersions"] == [MODERN]
    assert set(result["capabilities"]) >= {"tools", "resources", "prompts", "completions"}
    assert "tasks" not in result["capabilities"]  # the 2025-11-25 shape has no place here
    assert result["resultType"] == "complete"
    assert result["_meta"] == {"io.modelcontextprotocol/serverInfo": SERVER_INFO}
    assert (result["ttlMs"], result["cacheScope"]) == (60_000, "public")


async def test_list_and_call_with_progress_on_a_connection_that_never_initialized(
    registry: ToolRegistry,
) -> None:
    session, outbox = make_session(registry)
    await session.receive(modern(1, "tools/list"))
    listed = (await outbox.response(1))["result"]
    assert [tool["name"] for tool in listed["tools"]] == ["counting"]
    assert (listed["resultType"], listed["cacheScope"]) == ("complete", "private")

    params = {"name": "counting", "arguments": {"steps": 3}}
    await session.receive(modern(2, "tools/call", params, progressToken="p"))
    called = (await outbox.response(2))["result"]
    assert called["content"] == [{"type": "text", "text": "counted 3"}]
    assert called["resultType"] == "complete"
    assert called["_meta"]["io.modelcontextprotocol/serverInfo"] == SERVER_INFO
    assert "ttlMs" not in called
    progress = [
        message["params"]
        for message in outbox.messages
        if message.get("method") == "notifications/progress"
    ]
    assert progress and all(report["progressToken"] == "p" for report in progress)
    assert progress[-1]["progress"] == 3


async def test_both_eras_on_one_connection(registry: ToolRegistry) -> None:
    session, outbox = make_session(registry)
    await initialize(session, outbox)
    await session.receive(request(1, "tools/list"))
    legacy = (await outbox.response(1))["result"]
    assert "resultType" not in legacy and "ttlMs" not in legacy
    await session.receive(modern(2, "tools/list"))
    assert (await outbox.response(2))["result"]["resultType"] == "complete"
    await session.receive(request(3, "ping"))
    assert (await outbox.response(3))["result"] == {}


async def test_a_handshake_era_request_before_initialize_is_still_refused(
    registry: ToolRegistry,
) -> None:
    session, outbox = make_session(registry)
    await session.receive(modern(1, "tools/list"))
    await outbox.response(1)
    await session.receive(request(2, "tools/list"))
    assert (await outbox.response(2))["error"]["code"] == INVALID_REQUEST


@pytest.mark.parametrize(
    "method",
    [
        "initialize",
        "ping",
        "logging/setLevel",
        "resources/subscribe",
        "resources/unsubscribe",
        "tasks/list",
        "tasks/result",
        "no/such/method",
    ],
)
async def test_methods_2026_07_28_removed_are_not_found(
    registry: ToolRegistry, method: str
) -> None:
    session, outbox = make_session(registry)
    await session.receive(modern(7, method, {"protocolVersion": MODERN, "level": "debug"}))
    reply = await outbox.response(7)
    assert reply["error"]["code"] == METHOD_NOT_FOUND
    assert session.protocol_version is None  # nothing of the handshake happened


@pytest.mark.parametrize(
    ("meta", "code"),
    [
        ({"io.modelcontextprotocol/protocolVersion": None}, INVALID_PARAMS),
        ({"io.modelcontextprotocol/clientCapabilities": None}, INVALID_PARAMS),
        ({"io.modelcontextprotocol/logLevel": "loud"}, INVALID_PARAMS),
        ({"io.modelcontextprotocol/protocolVersion": "v999"}, UNSUPPORTED_PROTOCOL_VERSION),
    ],
)
async def test_a_bad_envelope_is_refused_with_the_requests_id(
    registry: ToolRegistry, meta: dict[str, Any], code: int
) -> None:
    session, outbox = make_session(registry)
    envelope = {key: value for key, value in modern_meta(**meta).items() if value is not None}
    await session.receive(request("x", "tools/list", {"_meta": envelope}))
    reply = await outbox.response("x")
    assert reply["error"]["code"] == code


# --- logs per request, client capabilities per request -------------------------------------


async def chatty(ctx: ToolContext) -> str:
    """Log at info and at debug."""
    await ctx.log("info", "at info")
    await ctx.log("debug", "at debug")
    return "said"


async def needs_sampling() -> str:
    """A tool whose calls need the client's sampling."""
    return "sampled"


async def asks_user(ctx: ToolContext) -> str:
    """Ask the client for input (a server-to-client request in the handshake era)."""
    await ctx.elicit("Name?", {"type": "object", "properties": {}})
    return "asked"


@pytest.fixture
def talkers() -> ToolRegistry:
    reg = ToolRegistry()
    reg.register(build_tool(chatty))
    reg.register(build_tool(needs_sampling, client_capabilities={"sampling": {}}))
    reg.register(build_tool(asks_user))
    return reg


def logged(messages: list[Any]) -> list[str]:
    return [m["params"]["data"] for m in messages if m.get("method") == "notifications/message"]


@pytest.mark.parametrize(
    ("level", "expected"),
    [(None, []), ("info", ["at info"]), ("debug", ["at info", "at debug"]), ("error", [])],
)
async def test_a_request_gets_the_logs_it_asked_for_and_no_others(
    talkers: ToolRegistry, level: str | None, expected: list[str]
) -> None:
    session, outbox = make_session(talkers)
    # The connection's own level (here: debug, from the handshake era) does not apply.
    await initialize(session, outbox)
    await session.receive(request("lvl", "logging/setLevel", {"level": "debug"}))
    await outbox.response("lvl")
    extra = {} if level is None else {"io.modelcontextprotocol/logLevel": level}
    await session.receive(modern(1, "tools/call", {"name": "chatty"}, **extra))
    assert "result" in await outbox.response(1)
    assert logged(outbox.messages) == expected


async def test_the_connections_level_still_governs_its_handshake_era_requests(
    talkers: ToolRegistry,
) -> None:
    session, outbox = make_session(talkers)
    await initialize(session, outbox)
    await session.receive(request(1, "tools/call", {"name": "chatty", "arguments": {}}))
    await outbox.response(1)
    assert logged(outbox.messages) == ["at info"]


async def test_a_tool_needing_an_undeclared_capability_is_refused_before_it_runs(
    talkers: ToolRegistry,
) -> None:
    session, outbox = make_session(talkers)
    await session.receive(modern(1, "tools/call", {"name": "needs_sampling"}))
    error = (await outbox.response(1))["error"]
    assert error["code"] == -32021
    assert error["data"] == {"requiredCapabilities": {"sampling": {}}}

    declared: dict[str, Any] = {"io.modelcontextprotocol/clientCapabilities": {"sampling": {}}}
    await session.receive(modern(2, "tools/call", {"name": "needs_sampling"}, **declared))
    assert (await outbox.response(2))["result"]["content"][0]["text"] == "sampled"


async def test_a_modern_call_never_sends_the_client_a_request(talkers: ToolRegistry) -> None:
    session, outbox = make_session(talkers)
    declared: dict[str, Any] = {"io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}}
    await session.receive(modern(1, "tools/call", {"name": "asks_user"}, **declared))
    result = (await outbox.response(1))["result"]
    # It asks by an input-required result instead (tests/ws/test_input_required.py).
    assert result["resultType"] == "input_required"
    assert [m for m in outbox.messages if "method" in m and "id" in m] == []


@pytest.mark.parametrize(("level", "sent"), [(None, False), ("warning", True), ("critical", False)])
async def test_logs_of_a_call_run_elsewhere_pass_its_requests_threshold(
    registry: ToolRegistry, level: str | None, sent: bool
) -> None:
    # A call run by a worker reports through the connection's listener (worker mode).
    session, outbox = make_session(registry)
    key = uuid.uuid4()
    session.listener.attach(key, None, None, log_rank=request_log_rank(level))
    await session.listener.operation_event(
        OperationLog(id=key, level="error", data="from a worker", logger="w")
    )
    assert logged(outbox.messages) == (["from a worker"] if sent else [])


async def test_only_a_connection_that_initialized_is_pinged(registry: ToolRegistry) -> None:
    later = time.monotonic() + 3600
    modern_only, outbox = make_session(registry)
    await modern_only.receive(modern(1, "tools/list"))
    await outbox.response(1)
    await modern_only.keep_alive(later)
    assert [m for m in outbox.messages if m.get("method") == "ping"] == []

    handshake, outbox = make_session(registry)
    await initialize(handshake, outbox)
    await handshake.keep_alive(later)
    assert [m["method"] for m in outbox.messages if "method" in m] == ["ping"]


async def test_a_connection_that_never_initialized_gets_no_unrequested_log(
    registry: ToolRegistry,
) -> None:
    session, outbox = make_session(registry)
    await session.receive(modern(1, "tools/list"))
    await outbox.response(1)
    await session.log("warning", "a broadcast", "broadcast")  # as the registry sends one
    await session.going_away()
    assert logged(outbox.messages) == []


async def test_a_modern_call_is_cancelled_by_notifications_cancelled_and_ignores_task(
    registry: ToolRegistry,
) -> None:
    slow = ToolRegistry()
    started = asyncio.Event()

    async def waits(ctx: ToolContext) -> str:
        """Wait until cancelled."""
        started.set()
        await asyncio.Event().wait()
        return "never"

    slow.register(build_tool(waits, task_support="optional"))
    session, outbox = make_session(slow)
    # A 2025-11-25 `task` member means nothing in 2026-07-28: a plain call, not a task.
    await session.receive(modern(1, "tools/call", {"name": "waits", "task": {"ttl": 1000}}))
    await asyncio.wait_for(started.wait(), TIMEOUT)
    assert session.in_flight == 1
    await session.receive(notification("notifications/cancelled", {"requestId": 1}))
    await asyncio.wait_for(asyncio.gather(*session._spawned.tasks, return_exceptions=True), TIMEOUT)
    assert session.in_flight == 0
    assert outbox.responses(1) == []  # a cancelled request is not answered
