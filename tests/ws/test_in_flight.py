"""The session's bound on requests in flight: refused at once past it, freed as they end."""

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
