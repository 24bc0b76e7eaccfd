"""The resources and prompts the conformance suite reads and gets by name (the resources-*
and prompts-* scenarios of @modelcontextprotocol/conformance 0.1.16, and the prompt of
0.2.0-alpha.12's input-required-result-non-tool-request).

Each is scoped to the fixture tool `test_simple_text`, an opt-in tool: a tenant sees them only
while it has that tool, which only the conformance tenant has (accounts/tool_sets.py).
"""

import base64
from typing import Any

import orjson

from accounts.principal import Principal
from conformance_fixtures.mcp_tools import DYNAMIC_PROMPT_TOOL, IMAGE_PNG
from mcp_server.prompts.registry import prompts
from mcp_server.protocol.input_required import InputRound, elicitation_request
from mcp_server.protocol.prompts import PromptArgument, user_resource, user_text
from mcp_server.protocol.resources import blob_contents, text_contents
from mcp_server.protocol.tool_results import image_content
from mcp_server.resources.registry import Contents, Scope, resources

FIXTURES = Scope(requires_tool="test_simple_text")
_CONTEXT = {
    "type": "object",
    "properties": {"context": {"type": "string"}},
    "required": ["context"],
}
WATCHED_URI = "test://watched-resource"


def _static_text(principal: Principal, uri: str) -> Contents:
    return [text_contents(uri, "This is the content of the static text resource.")]


def _static_binary(principal: Principal, uri: str) -> Contents:
    return [blob_contents(uri, base64.b64decode(IMAGE_PNG), "image/png")]


def _template_data(principal: Principal, uri: str, id: str) -> Contents:
    body = {"id": id, "templateTest": True, "data": f"Data for ID: {id}"}
    return [text_contents(uri, orjson.dumps(body).decode(), "application/json")]


def _watched(principal: Principal, uri: str) -> Contents:
    return [text_contents(uri, "Watched resource content")]


resources.add_resource(
    "test://static-text",
    name="static-text",
    title="Static Text Resource",
    description="A static text resource for testing",
    mime_type="text/plain",
    read=_static_text,
    scope=FIXTURES,
)
resources.add_resource(
    "test://static-binary",
    name="static-binary",
    title="Static Binary Resource",
    description="A static binary resource (image) for testing",
    mime_type="image/png",
    read=_static_binary,
    scope=FIXTURES,
)
resources.add_resource(
    WATCHED_URI,
    name="watched-resource",
    title="Watched Resource",
    description="A resource to subscribe to",
    mime_type="text/plain",
    read=_watched,
    scope=FIXTURES,
)
resources.add_template(
    "test://template/{id}/data",
    name="template",
    title="Resource Template",
    description="A resource template with parameter substitution",
    mime_type="application/json",
    read=_template_data,
    scope=FIXTURES,
)


def _simple(principal: Principal, arguments: dict[str, str]) -> list[dict[str, Any]]:
    return [user_text("This is a simple prompt for testing.")]


def _with_arguments(principal: Principal, arguments: dict[str, str]) -> list[dict[str, Any]]:
    arg1, arg2 = arguments["arg1"], arguments["arg2"]
    return [user_text(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'")]


def _with_resource(principal: Principal, arguments: dict[str, str]) -> list[dict[str, Any]]:
    embedded = text_contents(arguments["resourceUri"], "Embedded resource content for testing.")
    return [user_resource(embedded), user_text("Please process the embedded resource above.")]


def _with_context(
    principal: Principal, arguments: dict[str, str], inputs: InputRound | None
) -> list[dict[str, Any]]:
    if inputs is None:  # the handshake era: a prompt cannot ask, so it goes without
        return [user_text("Write with no particular context.")]
    question = elicitation_request("What context should the prompt use?", _CONTEXT)
    answer = inputs.take({"user_context": question})["user_context"]
    content = answer.get("content") if answer.get("action") == "accept" else None
    context = content.get("context") if isinstance(content, dict) else None
    return [user_text(f"Write with this context: {context or 'none given'}")]


def _with_image(principal: Principal, arguments: dict[str, str]) -> list[dict[str, Any]]:
    image = {"role": "user", "content": image_content(IMAGE_PNG, "image/png")}
    return [image, user_text("Please analyze the image above.")]


prompts.add(
    "test_simple_prompt",
    title="Simple Test Prompt",
    description="A simple prompt without arguments",
    render=_simple,
    scope=FIXTURES,
)
prompts.add(
    "test_prompt_with_arguments",
    title="Prompt With Arguments",
    description="A prompt with required arguments",
    arguments=(
        PromptArgument("arg1", "First test argument", required=True),
        PromptArgument("arg2", "Second test argument", required=True),
    ),
    render=_with_arguments,
    scope=FIXTURES,
)
prompts.add(
    "test_prompt_with_embedded_resource",
    title="Prompt With Embedded Resource",
    description="A prompt that includes an embedded resource",
    arguments=(PromptArgument("resourceUri", "URI of the resource to embed", required=True),),
    render=_with_resource,
    scope=FIXTURES,
)
prompts.add(
    "test_prompt_with_image",
    title="Prompt With Image",
    description="A prompt that includes image content",
    render=_with_image,
    scope=FIXTURES,
)
prompts.add(
    "test_input_required_result_prompt",
    title="Prompt That Asks",
    description="A prompt that asks the user for its context first (input-required, SEP-2322)",
    render=_with_context,
    scope=FIXTURES,
    asks_input=True,
)


def _dynamic(principal: Principal, arguments: dict[str, str]) -> list[dict[str, Any]]:
    return [user_text("This prompt comes and goes with test_dynamic_prompt_tool.")]


prompts.add(
    "test_dynamic_prompt",
    title="Dynamic Prompt",
    description="A prompt test_trigger_prompt_change takes away and gives back",
    render=_dynamic,
    scope=Scope(requires_tool=DYNAMIC_PROMPT_TOOL),
)
