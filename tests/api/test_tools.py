import pytest

from mcp_server.tools.registry import registry
from tests.api.conftest import _caller

pytestmark = pytest.mark.django_db


def test_tools_list_every_tool_with_schemas():
    caller = _caller("erin", tenant_slug="open")
    tools = caller.client.get("/api/tools/").json()["tools"]
    assert [tool["name"] for tool in tools] == [tool.name for tool in registry]
    sleep = next(tool for tool in tools if tool["name"] == "sleep")
    assert sleep["inputSchema"]["properties"]["seconds"]["type"] == "number"
    assert sleep["description"]
    assert any("outputSchema" in tool for tool in tools)


def test_tools_are_the_tenants_enabled_ones():
    caller = _caller("frank", tenant_slug="narrow", enabled_tools=["echo", "sleep"])
    tools = caller.client.get("/api/tools/").json()["tools"]
    assert sorted(tool["name"] for tool in tools) == ["echo", "sleep"]
