"""A tenant's new tool set in one session: a call accepted before the change, running or
queued, goes on to its result; a new call of the tool taken away is refused at once."""

from collections.abc import Iterator

import pytest

from mcp_server.protocol.errors import INVALID_PARAMS
from mcp_server.runtime.limits import Limits
from mcp_server.tools.catalog import catalog_for
from mcp_server.tools.registry import build_tool, registry
from tests.ws.session_support import call, initialize, make_session, request
from tests.ws.test_session import SlowTool, _tasks_of, _wait_done


@pytest.fixture
def slow_tool(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlowTool]:
    """A `slow` tool in the global registry for this test only (catalogs rebuilt around it)."""
    slow = SlowTool()
    monkeypatch.setattr(registry, "_tools", dict(registry._tools))
    registry.register(build_tool(slow.slow, name="slow"))
    catalog_for.cache_clear()
    yield slow
    monkeypatch.undo()
    catalog_for.cache_clear()


async def test_calls_accepted_before_a_tool_is_taken_away_go_on(slow_tool: SlowTool) -> None:
    session, outbox = make_session(registry, limits=Limits(per_connection=1))
    await initialize(session, outbox)
    await session.receive(call("running", "slow"))
    await slow_tool.wait_started()
    await session.receive(
        request("queued", "tools/call", {"name": "slow", "_meta": {"progressToken": "q"}})
    )
    queued = await outbox.wait_for(
        lambda m: isinstance(m, dict) and m.get("method") == "notifications/progress"
    )
    assert queued["params"]["message"].startswith("queued")  # behind the one slot

    await session.tenant_changed(None, frozenset({"slow"}), session.principal.limits)
    await outbox.wait_for(
        lambda m: isinstance(m, dict) and m.get("method") == "notifications/tools/list_changed"
    )
    await session.receive(call("new", "slow"))
    refused = (await outbox.response("new"))["error"]
    assert refused == {
        "code": INVALID_PARAMS,
        "message": "Tool 'slow' is not enabled for your tenant",
    }
    assert "slow" not in [tool.name for tool in session.catalog.tools]

    slow_tool.release.set()
    for request_id in ("running", "queued"):
        result = (await outbox.response(request_id))["result"]
        assert result["content"] == [{"type": "text", "text": "released"}]
    assert (slow_tool.finished, slow_tool.cancelled) == (2, 0)
    await _wait_done(_tasks_of(session))
    await session.close()


async def test_prompts_and_templates_that_need_a_tool_go_with_it() -> None:
    session, outbox = make_session(registry)
    await initialize(session, outbox)

    def changed(kind: str) -> list[object]:
        method = f"notifications/{kind}/list_changed"
        return [m for m in outbox.messages if isinstance(m, dict) and m.get("method") == method]

    await session.receive(request("before", "prompts/list"))
    names = [p["name"] for p in (await outbox.response("before"))["result"]["prompts"]]
    assert "process_directory" in names
    await session.tenant_changed(None, frozenset({"process_images"}), session.principal.limits)
    assert (len(changed("tools")), len(changed("prompts")), len(changed("resources"))) == (1, 1, 1)
    await session.receive(request("after", "prompts/list"))
    names = [p["name"] for p in (await outbox.response("after"))["result"]["prompts"]]
    assert "process_directory" not in names
    await session.receive(request("templates", "resources/templates/list"))
    listed = (await outbox.response("templates"))["result"]["resourceTemplates"]
    assert "run-thumbnail" not in [t["name"] for t in listed]

    await session.tenant_changed(
        None, frozenset({"process_images", "add"}), session.principal.limits
    )
    assert (len(changed("tools")), len(changed("prompts")), len(changed("resources"))) == (2, 1, 1)
    await session.close()
