"""The session's bound on requests in flight: refused at once past it, freed as they end, and
changed for the next request when the tenant's limits change."""

import dataclasses

from accounts.limits import default_limits
from mcp_server.protocol.errors import LIMIT_EXCEEDED
from mcp_server.session import McpSession
from mcp_server.tools.registry import ToolRegistry, build_tool
from tests.ws.session_support import Outbox, call, initialize, make_session
from tests.ws.test_session import SlowTool, _tasks_of, _wait_done

BOUND = 3


async def _bounded(slow_tool: SlowTool) -> tuple[McpSession, Outbox]:
    registry = ToolRegistry()
    registry.register(build_tool(slow_tool.slow, name="slow"))
    session, outbox = make_session(registry)
    limits = dataclasses.replace(default_limits(), in_flight_per_connection=BOUND)
    session.principal = dataclasses.replace(session.principal, limits=limits)
    await initialize(session, outbox)
    return session, outbox


async def test_past_the_bound_a_request_is_refused_and_places_free_as_requests_end() -> None:
    slow_tool = SlowTool()
    session, outbox = await _bounded(slow_tool)
    admission = session._spawned.admission
    for request_id in range(BOUND):
        await session.receive(call(request_id, "slow"))
    await session.receive(call("excess", "slow"))
    refusal = (await outbox.response("excess"))["error"]
    assert refusal["code"] == LIMIT_EXCEEDED
    assert refusal["data"] == {
        "limit": "in_flight_per_connection",
        "scope": "connection",
        "maximum": BOUND,
    }
    assert session.in_flight == BOUND
    assert admission.count(connection=session.connection_id) == BOUND

    slow_tool.release.set()
    await _wait_done(_tasks_of(session))
    assert admission.count(connection=session.connection_id) == 0
    assert admission.count(user=session.principal.user_id) == 0

    slow_tool.release.clear()
    for request_id in range(10, 10 + BOUND):
        await session.receive(call(request_id, "slow"))
    assert session.in_flight == BOUND  # every place freed was given again
    tasks = _tasks_of(session)
    await session.close()
    await _wait_done(tasks)
    assert admission.count(tenant=session.principal.tenant_id) == 0


async def test_new_limits_bound_the_next_request_of_an_open_session() -> None:
    slow_tool = SlowTool()
    session, outbox = await _bounded(slow_tool)
    for request_id in range(2):
        await session.receive(call(request_id, "slow"))
    principal = session.principal

    lowered = dataclasses.replace(principal.limits, in_flight_per_connection=2)
    await session.tenant_changed(principal.enabled_tools, principal.disabled_tools, lowered)
    await session.receive(call("over-the-lowered-bound", "slow"))
    refusal = (await outbox.response("over-the-lowered-bound"))["error"]
    assert refusal["code"] == LIMIT_EXCEEDED
    assert refusal["data"]["maximum"] == 2

    raised = dataclasses.replace(principal.limits, in_flight_per_connection=5)
    await session.tenant_changed(principal.enabled_tools, principal.disabled_tools, raised)
    for raised_id in ("under-the-raised-bound", "also-under"):
        await session.receive(call(raised_id, "slow"))
    assert session.in_flight == 4
    # Only the limits changed: the client's tool list did not, so it is not told it did.
    sent = [m.get("method") for m in outbox.messages if isinstance(m, dict)]
    assert "notifications/tools/list_changed" not in sent
    slow_tool.release.set()
    assert "result" in await outbox.response("under-the-raised-bound")
    tasks = _tasks_of(session)
    await session.close()
    await _wait_done(tasks)
