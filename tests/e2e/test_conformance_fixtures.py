"""The conformance fixtures through a real server over WebSocket: only the conformance tenant
has them, and their elicitation and sampling reach a real client and come back."""

import dataclasses
from typing import Any

import pytest
from mcp import ClientSession, McpError, types
from mcp.client.websocket import websocket_client
from mcp.shared.context import RequestContext
from pydantic import AnyUrl

from tests.e2e.conftest import Accounts, ServerFactory
from tests.e2e.support import Deployment, ServerProcess

TENANT = "conformance"
FIXTURE_APPS = "example_tools,conformance_fixtures"


@pytest.fixture(scope="module")
def fixture_server(server_factory: ServerFactory) -> ServerProcess:
    """A server with the fixtures installed."""
    return server_factory(MCP_TOOL_APPS=FIXTURE_APPS)


@pytest.fixture(scope="module")
def conformance_token(deployment: Deployment, fixture_server: ServerProcess) -> str:
    """A token of a member of the conformance tenant, made by `conformance_tenant`."""
    with_fixtures = dataclasses.replace(
        deployment, env={**deployment.env, "MCP_TOOL_APPS": FIXTURE_APPS}
    )
    output = with_fixtures.manage("conformance_tenant")
    assert "conformance fixture tools" in output, output
    deployment.create_user("suite", TENANT)
    return deployment.create_token("suite", name="suite-main")


async def on_elicit(
    context: RequestContext[ClientSession, Any], params: types.ElicitRequestParams
) -> types.ElicitResult:
    assert isinstance(params, types.ElicitRequestFormParams)
    assert params.requestedSchema["required"] == ["response"]
    return types.ElicitResult(action="accept", content={"response": f"re: {params.message}"})


async def on_sample(
    context: RequestContext[ClientSession, Any], params: types.CreateMessageRequestParams
) -> types.CreateMessageResult:
    prompt = params.messages[0].content
    assert isinstance(prompt, types.TextContent)
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text=prompt.text.upper()),
        model="echo-model",
    )


def _text(result: types.CallToolResult) -> str:
    item = result.content[0]
    assert isinstance(item, types.TextContent)
    return item.text


async def test_elicitation_and_sampling_reach_the_client_and_come_back(
    fixture_server: ServerProcess, conformance_token: str
) -> None:
    async with (
        websocket_client(fixture_server.ws_url(conformance_token)) as (read, write),
        ClientSession(
            read, write, elicitation_callback=on_elicit, sampling_callback=on_sample
        ) as session,
    ):
        await session.initialize()
        listed = {tool.name for tool in (await session.list_tools()).tools}
        assert {"test_simple_text", "test_elicitation", "test_sampling"} <= listed
        # Only the fixtures: the tenant names nothing else.
        assert "text_stats" not in listed and "echo" not in listed
        uris = {str(r.uri) for r in (await session.list_resources()).resources}
        assert {"test://static-text", "test://static-binary"} <= uris
        prompt_names = {p.name for p in (await session.list_prompts()).prompts}
        assert "test_prompt_with_arguments" in prompt_names

        elicited = await session.call_tool("test_elicitation", {"message": "name?"})
        assert not elicited.isError, elicited
        assert _text(elicited) == 'User response: action=accept, content={"response":"re: name?"}'
        sampled = await session.call_tool("test_sampling", {"prompt": "hello"})
        assert _text(sampled) == "LLM response: HELLO"


async def test_a_client_without_the_capability_gets_a_tool_error(
    fixture_server: ServerProcess, conformance_token: str
) -> None:
    async with (
        websocket_client(fixture_server.ws_url(conformance_token)) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.call_tool("test_sampling", {"prompt": "hello"})
    assert result.isError
    assert "did not declare the sampling capability" in _text(result)


async def test_other_tenants_neither_see_nor_call_the_fixtures(
    fixture_server: ServerProcess, accounts: Accounts, conformance_token: str
) -> None:
    # alice's tenant has every tool (but the opt-in ones); the fixtures are loaded all the same.
    async with (
        websocket_client(fixture_server.ws_url(accounts.alice)) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        listed = {tool.name for tool in (await session.list_tools()).tools}
        assert "text_stats" in listed
        assert not {name for name in listed if name.startswith("test_")}
        assert "json_schema_2020_12_tool" not in listed
        uris = {str(r.uri) for r in (await session.list_resources()).resources}
        assert not {uri for uri in uris if uri.startswith("test://")}
        templates = (await session.list_resource_templates()).resourceTemplates
        assert not [t for t in templates if t.uriTemplate.startswith("test://")]
        prompt_names = {p.name for p in (await session.list_prompts()).prompts}
        assert not {name for name in prompt_names if name.startswith("test_")}
        with pytest.raises(McpError) as unread:
            await session.read_resource(AnyUrl("test://static-text"))
        with pytest.raises(McpError) as ungot:
            await session.get_prompt("test_simple_prompt")
        with pytest.raises(McpError) as refused:
            await session.call_tool("test_simple_text", {})
    assert unread.value.error.code == -32002
    assert ungot.value.error.code == -32602
    assert refused.value.error.code == -32602
    assert refused.value.error.message == "Unknown tool: test_simple_text"
